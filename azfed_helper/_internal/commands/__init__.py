"""The commands: each module is a thin adapter (parse → call → print) with ``run(args) -> int``.

This table says which module runs each command, its one-line summary, examples for its help, and
the environment variables it reads beyond its options (those are in ``options.OPTIONS``). The CLI
imports a command's module only when that command runs.
"""

from __future__ import annotations


class Command:
    """One subcommand: where it lives and what its help says beyond the option list."""

    __slots__ = ("environment", "examples", "module", "name", "summary")

    def __init__(
        self,
        name: str,
        module: str,
        summary: str,
        examples: tuple[str, ...] = (),
        environment: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.name = name
        self.module = module
        self.summary = summary.format_map(_Spelled())  # ``{dest}``: as in the examples
        self.examples = examples
        self.environment = environment

    def epilog(self) -> str:
        """Examples and the other variables it reads, for the end of its ``--help``; in the
        examples (and the summary), ``{dest}`` stands for an option's flag and ``{dest_env}``
        for its variable."""
        parts = []
        if self.environment:
            width = max(len(name) for name, _ in self.environment)
            lines = [f"  {name:<{width}}  {meaning}" for name, meaning in self.environment]
            parts.append("other environment variables:\n" + "\n".join(lines))
        if self.examples:
            lines = [f"  {line.format_map(_Spelled())}" for line in self.examples]
            parts.append("examples:\n" + "\n".join(lines))
        return "\n\n".join(parts)


class _Spelled(dict[str, str]):
    """``{token_file}`` → ``--token-file``, ``{credentials_env}`` → its variable: examples name
    options as the option table spells them."""

    def __missing__(self, key: str) -> str:
        from ..options import BY_DEST, OPTIONS

        if key.endswith("_env"):
            return str(BY_DEST[key.removesuffix("_env")].env)
        return next(option.flag for option in OPTIONS if option.dest == key)


_PKG = "azfed_helper._internal.commands."
_GOOGLE = (
    ("GCE_METADATA_HOST", "host:port of the metadata server (google-auth's variable)"),
    ("GCE_METADATA_ROOT", "the same, google-auth's older name (read when the above is unset)"),
    ("GCE_METADATA_IP", "address for google-auth's metadata availability check"),
)
_GITHUB = (
    (
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "set by GitHub Actions (id-token: write): the source's endpoint",
    ),
    ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "set by GitHub Actions with it: the endpoint's bearer"),
)
_CA = (("REQUESTS_CA_BUNDLE", "CA bundle for https requests (also CURL_CA_BUNDLE)"),)
_AZ = (
    ("AZURE_CONFIG_DIR", "the Azure CLI's configuration directory (default ~/.azure)"),
    ("AZURE_CLOUD_NAME", "the Azure CLI's active cloud, when set"),
)
_XDG = (("XDG_CACHE_HOME", "base of the default cache directory"),)
_CONFIG = (("XDG_CONFIG_HOME", "base of the default config file"),)
_COLOUR = (("NO_COLOR", "set: no colour (colour is used on a terminal; TERM=dumb: none)"),)

COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        Command(
            "write",
            _PKG + "write",
            "make the token file hold a fresh ID token (from Google unless {source})",
            (
                "azfed-helper write {token_file} /run/azfed/token {create_dirs}",
                "{credentials_env}=key.json azfed-helper write {token_file} ./token",
            ),
            (*_GOOGLE, *_GITHUB, *_CA, *_CONFIG),
        ),
        Command(
            "status",
            _PKG + "status",
            "inspect the token file (exit 1 when stale)",
            ("azfed-helper status {json}", "azfed-helper status {min_remaining} 15m  # a probe"),
            (*_CONFIG, *_COLOUR),
        ),
        Command(
            "daemon",
            _PKG + "daemon",
            "keep the token file fresh forever (sidecar/service)",
            (
                "azfed-helper daemon {token_file} /run/azfed/token {health_addr} :8080",
                "azfed-helper daemon --exec -- python app.py",
            ),
            (
                *_GOOGLE,
                *_GITHUB,
                *_CA,
                ("NOTIFY_SOCKET", "systemd's readiness socket (Type=notify)"),
                *_XDG,
                *_CONFIG,
            ),
        ),
        Command(
            "env",
            _PKG + "env",
            "print the environment that Azure clients read",
            (
                'eval "$(azfed-helper env {client_id} APP {tenant_id} TENANT)"',
                "azfed-helper env --for terraform --format json",
            ),
            (("NO_PROXY", "kept, with loopback added, by --for managed-identity"), *_XDG, *_CONFIG),
        ),
        Command(
            "az-login",
            _PKG + "az_login",
            "keep the Azure CLI logged in (run before az)",
            (
                "azfed-helper az-login {client_id} APP {tenant_id} TENANT",
                'eval "$(azfed-helper az-login --print-hook bash)"  # in ~/.bashrc',
            ),
            (*_AZ, *_GOOGLE, *_GITHUB, *_CA, *_XDG, *_CONFIG),
        ),
        Command(
            "az",
            _PKG + "az",
            "run the az-login hook, then become `az ARGS...`",
            ("azfed-helper az -- account get-access-token",),
            (*_AZ, *_GOOGLE, *_GITHUB, *_CA, *_XDG, *_CONFIG),
        ),
        Command(
            "token",
            _PKG + "token",
            "print an Azure access token (no Azure secret)",
            (
                "azfed-helper token {resource} https://management.azure.com",
                "azfed-helper token {scopes} https://storage.azure.com/.default -o json",
            ),
            (
                ("KUBERNETES_EXEC_INFO", "set by kubectl: the ExecCredential apiVersion it wants"),
                *_GOOGLE,
                *_GITHUB,
                *_CA,
                *_XDG,
                *_CONFIG,
            ),
        ),
        Command(
            "serve",
            _PKG + "serve",
            "run a local managed-identity endpoint for az/SDKs",
            (
                "azfed-helper serve {client_id} APP {tenant_id} TENANT",
                'eval "$(azfed-helper env --for managed-identity)" && az login --identity',
            ),
            (
                ("NO_PROXY", "written to the env file with loopback added"),
                *_GOOGLE,
                *_GITHUB,
                *_CA,
                *_XDG,
            ),
        ),
        Command(
            "doctor",
            _PKG + "doctor",
            "diagnose the set-up, each check with its fix",
            ("azfed-helper doctor", "azfed-helper doctor --reader app-user {json}"),
            (*_GOOGLE, *_GITHUB, *_CA, *_AZ, *_XDG, *_CONFIG, *_COLOUR),
        ),
        Command(
            "settings",
            _PKG + "settings",
            "show every setting in effect and where it came from (no network)",
            ("azfed-helper settings", "azfed-helper settings {profile} payments {json}"),
            (*_XDG, *_CONFIG),
        ),
        Command(
            "emulator",
            "azfed_helper.emulator.command",
            "run the offline Google + Entra emulator",
            ("azfed-helper emulator --key-file ./sa.json --env-file ./emulator.env",),
        ),
        Command(
            "demo",
            _PKG + "demo",
            "walk the whole flow against the embedded emulator",
            ("azfed-helper demo",),
        ),
        Command(
            "completion",
            _PKG + "completion",
            "print a shell completion script (bash, zsh or fish)",
            (
                'eval "$(azfed-helper completion bash)"  # in ~/.bashrc',
                "source <(azfed-helper completion zsh)  # in ~/.zshrc, after compinit",
                "azfed-helper completion fish > ~/.config/fish/completions/azfed-helper.fish",
            ),
        ),
    )
}

"""Every option of the commands that read settings, declared once.

One row per option: its flags, the setting it fills (``dest``), its environment variable, default,
value parser, help, help group and the commands that take it. From this table come the argparse
options, the no-op fast path's argument reading, ``config.resolve`` (flag > environment > config
file > default), the config file's keys, the "(env X; default Y)" part of every help line, the
printed az hook, the ``settings`` listing and the "where can I give it" part of error messages.

Adding an option is one row here (plus a typed attribute on ``config.Settings`` when it is a
setting). The consumers derive from it: ``parser.add_options`` (argparse), ``fastpath``,
``config.resolve``, ``configfile``, ``azcli.hooks.hook_command``, ``settingsview`` and
``completion``. Standard library only and no argparse: this is read on every command's path.
"""

from __future__ import annotations

from . import TYPE_CHECKING
from .option import (
    Option,
    address,
    boolean,
    duration,
    group_name,
    https_url,
    mode,
    non_empty,
    port,
    scopes,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_PORT = 50342
OUTPUTS = ("raw", "json", "exec-credential", "env")
# Where the assertion comes from (sources/__init__.py maps each to its module).
SOURCES = ("google", "file", "github-actions", "command")
# The audience federated credentials expect by default (Entra's token exchange).
DEFAULT_AUDIENCE = "api://AzureADTokenExchange"
# Set by the GitHub Actions runner in a job with `permissions: id-token: write`.
ACTIONS_URL = "ACTIONS_ID_TOKEN_REQUEST_URL"
ACTIONS_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"  # noqa: S105 (a variable's name)


def default_source(environ: Mapping[str, str]) -> str:
    """``github-actions`` inside a GitHub Actions job that may mint ID tokens, else ``google``
    (declared with the option: resolving it must not load the sources)."""
    return "github-actions" if environ.get(ACTIONS_URL) and environ.get(ACTIONS_TOKEN) else "google"


SOURCE = ("write", "daemon", "token", "az-login", "az", "serve", "doctor")
# The token file's readers judge its claims, so they need to know which issuer to expect.
CLAIMS = (*SOURCE, "status")
FILE_WRITERS = ("write", "daemon", "doctor")
AZURE = ("daemon", "env", "token", "az-login", "az", "serve", "doctor")
EXCHANGERS = ("daemon", "token", "az-login", "az", "serve", "doctor")
ENDPOINT = ("serve", "daemon")


def _in(group: str, commands: tuple[str, ...]) -> Callable[..., Option]:
    """Options of one help group that the same commands take, declared without repeating those."""

    def make(name: str, help: str, **kw: Any) -> Option:
        return Option(name, help, commands, group=group, **kw)

    return make


_source = _in("token source", SOURCE)
_file_writing = _in("token file", FILE_WRITERS)
_azure = _in("Azure", AZURE)
_endpoint = _in("managed-identity endpoint", ENDPOINT)
_daemon = _in("daemon", ("daemon",))
_request = _in("what to request", ("token",))
_az = _in("Azure CLI", ("az-login", "az"))
_claims = _in("token source", CLAIMS)
# Which file the token's readers use follows the source (sources.readers_file).
_readers = _in("token source", (*CLAIMS, "env"))
_logging = _in("logging", ("daemon", "serve"))
_config = _in("configuration file", (*SOURCE, "status", "env", "settings"))
SECONDS: dict[str, Any] = {"parse": duration(1), "metavar": "DURATION"}  # timeouts, margins ...


def _switch(name: str, help: str, commands: tuple[str, ...], **kw: Any) -> Option:
    """A flag of one invocation (never a setting): ``--force``, ``--json`` ..."""
    return Option(name, help, commands, action="store_true", setting=False, **kw)


OPTIONS: tuple[Option, ...] = (
    # -- the token file and the token in it
    Option(
        "token-file",
        "the federated token file",
        (*SOURCE, "status", "env"),
        env="AZURE_FEDERATED_TOKEN_FILE",
        metavar="PATH",
        is_path=True,
    ),
    _claims(
        "audience",
        "the token's audience, as the federated credential names it",
        env="AZFED_AUDIENCE",
        default=DEFAULT_AUDIENCE,
        parse=non_empty,
        metavar="AUD",
    ),
    _readers(
        "source",
        "where the ID token comes from",
        env="AZFED_SOURCE",
        default="google",
        choices=SOURCES,
        default_text="github-actions in a GitHub Actions job allowed to mint ID tokens "
        f"({ACTIONS_URL} and _TOKEN set), else google",
    ),
    _claims(
        "issuer",
        "the issuer ('iss') the token must name",
        env="AZFED_ISSUER",
        parse=https_url,
        metavar="URL",
        default_text="the source's: Google's, GitHub's, any https issuer for file and command",
    ),
    _readers(
        "assertion-file",
        "--source file: the JWT file another process keeps fresh (a projected "
        "service-account token); read before each exchange, never written; with this "
        "source, status and env name it instead of the token file",
        env="AZFED_ASSERTION_FILE",
        metavar="PATH",
        is_path=True,
    ),
    _source(
        "assertion-command",
        "--source command: a command that prints a JWT on stdout (alone, or in an executable "
        "response or ExecCredential), split like a shell line but run without one",
        env="AZFED_ASSERTION_COMMAND",
        metavar="CMD",
    ),
    _source(
        "credentials",
        "Google credentials file",
        env="GOOGLE_APPLICATION_CREDENTIALS",
        metavar="FILE",
        is_path=True,
        default_text="the metadata server",
    ),
    _source(
        "impersonate",
        "service account to impersonate for the ID token",
        env="AZFED_IMPERSONATE",
        metavar="EMAIL",
    ),
    _source(
        "token-format",
        "metadata server token format; 'full' adds project and instance claims",
        env="AZFED_TOKEN_FORMAT",
        default="standard",
        choices=("standard", "full"),
    ),
    _source(
        "refresh-margin",
        "refresh once less than this lifetime, or half the token's lifetime, remains",
        env="AZFED_REFRESH_MARGIN",
        default=1200,
        **SECONDS,
    ),
    _source(
        "source-timeout",
        "longest wait for one request to the token source; a whole fetch takes at most 3 times it plus 2s",
        env="AZFED_SOURCE_TIMEOUT",
        default=10,
        **SECONDS,
    ),
    _source(
        "iam-endpoint",
        "IAM Credentials API base URL for impersonation (Private Service Connect, emulator)",
        env="AZFED_IAM_ENDPOINT",
        metavar="URL",
        default_text="Google's",
    ),
    _file_writing(
        "mode",
        "token file mode, applied on every write",
        env="AZFED_MODE",
        default=0o600,
        parse=mode,
        metavar="OCTAL",
    ),
    _file_writing(
        "group",
        "token file group, name or gid",
        env="AZFED_GROUP",
        parse=group_name,
        metavar="GROUP",
        default_text="unchanged",
    ),
    _file_writing(
        "create-dirs",
        "create missing parent directories (mode 0700)",
        env="AZFED_CREATE_DIRS",
        default=False,
        parse=boolean,
        action="store_true",
    ),
    # -- the Azure app and Entra
    _azure("client-id", "app (client) id", env="AZURE_CLIENT_ID", metavar="ID"),
    _azure("tenant-id", "tenant id", env="AZURE_TENANT_ID", metavar="ID"),
    _azure(
        "authority-host",
        "Entra authority host (sovereign clouds)",
        env="AZURE_AUTHORITY_HOST",
        default=DEFAULT_AUTHORITY_HOST,
        metavar="URL",
    ),
    Option(
        "entra-timeout",
        "longest wait for one Entra request (4 attempts at most, 0.5s, 1s, 2s apart)",
        EXCHANGERS,
        env="AZFED_ENTRA_TIMEOUT",
        default=10,
        **SECONDS,
        group="Azure",
    ),
    Option(
        "cache-dir",
        "token cache directory",
        (*EXCHANGERS, "env"),
        env="AZFED_CACHE_DIR",
        metavar="DIR",
        group="Azure",
        is_path=True,
        default_text="~/.cache/azfed-helper",
    ),
    Option(
        "scopes",
        "scope to request, repeatable, e.g. https://storage.azure.com/.default "
        "(space-separated in the variable)",
        ("token", "doctor"),
        flags=("--scope",),
        env="AZFED_SCOPES",
        parse=scopes,
        metavar="SCOPE",
        action="append",
        group="what to request",
        aliases=("scope",),
    ),
    _request(
        "resource",
        "resource as az takes it: https://management.azure.com requests "
        "https://management.azure.com/.default",
        env="AZFED_RESOURCE",
        metavar="URL",
    ),
    _request(
        "output",
        "raw: the token only; json: as `az account get-access-token -o json`; "
        "exec-credential: a Kubernetes ExecCredential (default scope: AKS); env: export lines",
        flags=("--output", "-o"),
        env="AZFED_OUTPUT",
        default="raw",
        choices=OUTPUTS,
    ),
    # -- the daemon
    Option(
        "min-remaining",
        "least lifetime that counts as healthy (status) or ready (/readyz); the readers reuse "
        "what they read for 10m",
        ("status", "daemon"),
        env="AZFED_MIN_REMAINING",
        default=600,
        parse=duration(0),
        metavar="DURATION",
        group="daemon",
    ),
    _daemon(
        "max-backoff",
        "longest wait between retries when the source fails",
        env="AZFED_MAX_BACKOFF",
        default=60,
        **SECONDS,
    ),
    _daemon(
        "health-addr",
        "serve /livez, /readyz and /metrics there (:PORT means 127.0.0.1)",
        env="AZFED_HEALTH_ADDR",
        parse=address,
        metavar="HOST:PORT",
        default_text="off",
    ),
    _logging(
        "log-format",
        "log lines as text or one JSON object each",
        env="AZFED_LOG_FORMAT",
        default="human",
        choices=("human", "json"),
    ),
    # -- the Azure CLI
    _az("az", "the az executable", env="AZFED_AZ", metavar="PATH", default_text="az on PATH"),
    _az(
        "subscription",
        "subscription to select at login (default: none, so login makes no ARM call)",
        env="AZFED_SUBSCRIPTION",
        metavar="ID_OR_NAME",
    ),
    # -- the managed-identity endpoint
    _endpoint(
        "port",
        "port to listen on (0 picks a free one)",
        env="AZFED_PORT",
        default=DEFAULT_PORT,
        parse=port,
        metavar="N",
    ),
    _endpoint(
        "bind",
        "address to listen on (others than loopback need --allow-remote)",
        env="AZFED_BIND",
        default="127.0.0.1",
        metavar="HOST",
    ),
    _endpoint(
        "secret-file",
        "read the X-IDENTITY-HEADER secret from FILE (default: a new random one per start)",
        env="AZFED_SECRET_FILE",
        metavar="FILE",
        is_path=True,
    ),
    Option(
        "env-file",
        "the file holding IDENTITY_ENDPOINT/IDENTITY_HEADER/NO_PROXY for shells, mode 0600",
        (*ENDPOINT, "env"),
        env="AZFED_ENV_FILE",
        metavar="FILE",
        group="managed-identity endpoint",
        is_path=True,
        default_text="<cache dir>/identity-endpoint.env",
    ),
    _switch(
        "allow-remote",
        "allow a non-loopback --bind: anyone who can reach it and knows the secret gets tokens",
        ENDPOINT,
        group="managed-identity endpoint",
    ),
    _switch(
        "imds",
        "also answer IMDS-shaped requests that carry no secret (Metadata: true only); any "
        "local process can then get tokens",
        ENDPOINT,
        group="managed-identity endpoint",
    ),
    # -- the configuration file itself (resolved first: it decides where the rest comes from)
    _config(
        "config",
        "TOML config file",
        env="AZFED_CONFIG",
        metavar="FILE",
        setting=False,
        fast=True,
        is_path=True,
        default_text="~/.config/azfed-helper/config.toml, then /etc/azfed-helper/config.toml",
    ),
    _config(
        "profile",
        "profile in the config file",
        env="AZFED_PROFILE",
        metavar="NAME",
        setting=False,
        fast=True,
    ),
    # -- switches of one invocation
    _switch(
        "force",
        "act even when nothing is due (write: fetch a new token; az-login: log in again)",
        ("write", "az-login"),
    ),
    _switch(
        "quiet",
        "print nothing on success",
        ("write", "az-login"),
        flags=("-q", "--quiet"),
        fast=True,
    ),
    _logging(
        "verbose", "more log (repeatable)", flags=("-v", "--verbose"), action="count", setting=False
    ),
    _logging(
        "log-quiet",
        "less log (repeatable)",
        flags=("-q", "--quiet"),
        dest="quiet",
        action="count",
        setting=False,
    ),
    _switch("json", "machine-readable output", ("status", "doctor", "settings")),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
SETTINGS: tuple[Option, ...] = tuple(option for option in OPTIONS if option.setting)
BY_DEST: dict[str, Option] = {
    option.dest: option
    for option in OPTIONS
    if option.setting or option.name in ("config", "profile")
}
# Config-file keys (and their aliases) to setting names.
CONFIG_KEYS: dict[str, str] = {
    key: option.dest for option in SETTINGS for key in (option.name, *option.aliases)
}


def for_command(command: str) -> list[Option]:
    """The options ``command`` takes, in table order (which is also help order).

    ``settings`` takes every setting, so that it shows what any command would see.
    """
    if command == "settings":
        return [o for o in OPTIONS if o.setting or command in o.commands]
    return [option for option in OPTIONS if command in option.commands]

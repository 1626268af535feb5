"""Answer the no-op case of hot commands without building the argparse tree.

``azfed-helper write`` runs before other commands and from timers; when the token file is already
fresh, the interpreter's own start-up should be nearly all it costs. argparse (and the formatter
it sets up) costs about as much as the interpreter itself, so here we read the simple argument
forms directly. Anything unusual (an unknown option, ``--help``, ``--force``, a value that does
not parse, a file that is not fresh) returns None and the normal argparse path handles it, so
errors and real work always go through one implementation.
"""

from __future__ import annotations

from . import TYPE_CHECKING
from .config import resolve
from .errors import AzfedError

if TYPE_CHECKING:
    from collections.abc import Sequence

# The option tables below are kept equal to the commands' argparse declarations by the tests
# (tests/test_fastpath.py, test_azcli.py, test_token_cli.py); they share these groups.
SOURCE_VALUES = {  # options.add_token_file + options.add_source
    "--token-file": "token_file",
    "--audience": "audience",
    "--credentials": "credentials",
    "--impersonate": "impersonate",
    "--token-format": "token_format",
    "--refresh-margin": "refresh_margin",
    "--source-timeout": "source_timeout",
    "--iam-endpoint": "iam_endpoint",
}
AZURE_VALUES = {  # options.add_azure
    "--client-id": "client_id",
    "--tenant-id": "tenant_id",
    "--authority-host": "authority_host",
}
# Accepted by every command that reads Settings (cli._add_config_options).
CONFIG_VALUES = {"--config": "config", "--profile": "profile"}
QUIET_FLAGS = {"-q": "quiet", "--quiet": "quiet"}

WRITE_VALUES = {**SOURCE_VALUES, "--mode": "mode", "--group": "group"}
WRITE_FLAGS = {"--create-dirs": "create_dirs", **QUIET_FLAGS}
AZ_LOGIN_VALUES = {**SOURCE_VALUES, **AZURE_VALUES, "--az": "az", "--subscription": "subscription"}
AZ_LOGIN_FLAGS = QUIET_FLAGS
TOKEN_VALUES = {
    "--scope": "scopes",
    "--resource": "resource",
    "--output": "output",
    "-o": "output",
    **AZURE_VALUES,
    "--cache-dir": "cache_dir",
    **SOURCE_VALUES,
}
TOKEN_REPEATED = frozenset({"scopes"})


class _Flags:
    """A namespace holding only the parsed options (absent ones read as None in resolve)."""

    def __init__(self, values: dict[str, object]) -> None:
        self.__dict__.update(values)


def parse_simple(
    argv: Sequence[str],
    values: dict[str, str],
    flags: dict[str, str],
    repeated: frozenset[str] = frozenset(),
) -> dict[str, object] | None:
    """Parse ``--opt value``, ``--opt=value`` and bare flags; None for anything else.

    Options whose destination is in ``repeated`` collect their values in a list (argparse's
    ``action="append"``).
    """
    parsed: dict[str, object] = {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        name, equals, inline = arg.partition("=")
        if name in values or name in CONFIG_VALUES:
            if equals:
                value = inline
            elif index + 1 < len(argv) and not argv[index + 1].startswith("-"):
                index += 1
                value = argv[index]
            else:
                return None
            dest = values.get(name) or CONFIG_VALUES[name]
            if dest in repeated:
                collected = parsed.setdefault(dest, [])
                assert isinstance(collected, list)
                collected.append(value)
            else:
                parsed[dest] = value
        elif arg in flags:
            parsed[flags[arg]] = True
        else:
            return None
        index += 1
    return parsed


def try_fast_path(argv: Sequence[str]) -> int | None:
    """Exit code when the command needs no work, else None (take the normal path).

    For ``az -- ARGS`` with nothing to do, this never returns: the process becomes az.
    """
    if argv[0] == "write":
        return _write(argv[1:])
    if argv[0] == "token":
        return _token(argv[1:])
    if argv[0] == "az-login":
        parsed = parse_simple(argv[1:], AZ_LOGIN_VALUES, AZ_LOGIN_FLAGS)
        return 0 if parsed is not None and _az_is_current(parsed) else None
    if argv[0] == "az" and "--" in argv:
        split = argv.index("--")
        parsed = parse_simple(argv[1:split], AZ_LOGIN_VALUES, {})
        if parsed is not None and _az_is_current(parsed):
            from .azcli.process import exec_az

            try:
                exec_az(parsed.get("az"), argv[split + 1 :])  # type: ignore[arg-type]
            except AzfedError:
                pass  # the normal path reports it properly
    return None


def _write(argv: Sequence[str]) -> int | None:
    parsed = parse_simple(argv, WRITE_VALUES, WRITE_FLAGS)
    if parsed is None:
        return None
    from .sync import current_if_fresh

    try:
        settings = resolve(_Flags(parsed))
        if settings.token_file and current_if_fresh(settings) is not None:
            return 0
    except AzfedError:
        pass  # the normal path reports it properly
    return None


def _token(argv: Sequence[str]) -> int | None:
    """A cache hit for ``token``: printed without argparse or MSAL."""
    parsed = parse_simple(argv, TOKEN_VALUES, {}, TOKEN_REPEATED)
    if parsed is None:
        return None
    import os
    import time

    from . import formats
    from .entra import cache

    try:
        settings = resolve(_Flags(parsed))
        exec_info = os.environ.get("KUBERNETES_EXEC_INFO")
        if settings.output == "exec-credential":
            formats.exec_api_version(exec_info)
        hit = cache.lookup(settings, time.time())
        if hit is None:
            return None
        tenant, _ = settings.require_app()
        print(formats.render(settings.output, hit, tenant, exec_info))
        return 0
    except AzfedError:
        return None  # the normal path reports it properly


def _az_is_current(parsed: dict[str, object]) -> bool:
    """True when az already holds our validated assertion: files only, no az process."""
    from .azcli import state as azcli

    flags = _Flags(parsed)
    try:
        return azcli.is_current(azcli.target_from_args(resolve(flags), flags))
    except AzfedError:
        return False  # the normal path reports it properly

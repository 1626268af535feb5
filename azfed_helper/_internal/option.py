"""Options as data: one option's declaration (see the table in options.py) and the value parsers.

Each parser turns text from a flag, a variable or a config file into a typed value, or raises
:class:`BadValue` (what is wrong, and how to write a good one); ``config.resolve`` adds where the
text came from. Digits are ASCII only: ``str.isdigit`` also accepts ``²``, which ``int`` refuses.
Standard library only: this is on every command's path.
"""

from __future__ import annotations

from . import TYPE_CHECKING
from .errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

MAX_DURATION = 86400  # a day: longer timeouts, margins and back-offs are typos, not settings


class BadValue(ValueError):
    """A value an option cannot take; ``hint`` says how to write a good one."""

    def __init__(self, detail: str, hint: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.hint = hint


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def text(value: str) -> str:
    return value


def non_empty(value: str) -> str:
    if not value.strip():
        raise BadValue("it is empty")
    return value


def boolean(value: str) -> bool:
    word = value.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    raise BadValue("not a boolean", "write true or false")


def duration(minimum: int) -> Callable[[str], int]:
    """Whole seconds between ``minimum`` and a day."""

    def parse(value: str) -> int:
        from .durations import format_duration, parse_duration  # only when one is given

        try:
            seconds = parse_duration(value)
        except UsageError as exc:
            raise BadValue("not a duration", exc.hint) from None
        if not minimum <= seconds <= MAX_DURATION:
            low = format_duration(minimum)
            raise BadValue(f"must be between {low} and 1 day", "e.g. 90s, 10m or 1h")
        return seconds

    return parse


def mode(value: str) -> int:
    """An octal file mode for a credential: owner read/write, never group- or world-writable."""
    bits = int(value, 8) if value and len(value) <= 4 and set(value) <= set("01234567") else -1
    if not 0 <= bits <= 0o777 or bits & 0o600 != 0o600:
        raise BadValue("not an octal mode that keeps owner read/write", "e.g. 0600 or 0640")
    if bits & 0o022:
        raise BadValue(
            "lets group or others write the token file",
            "the token is a credential: give write to the owner only, e.g. 0600, 0640 or 0644",
        )
    return bits


def port(value: str) -> int:
    if not (_digits(value) and len(value) <= 5 and int(value) <= 65535):
        raise BadValue("not a port number", "give 0-65535 (0 picks a free port)")
    return int(value)


def group_name(value: str) -> str:
    if _digits(value) and len(value) > 10:
        raise BadValue(f"group id {value} is out of range", "give a group name or a numeric gid")
    return value


def https_url(value: str) -> str:
    """An https URL with a host, as Entra requires of an issuer (compared exactly: no slash
    is added or removed)."""
    host = value[len("https://") :].split("/", 1)[0] if value.startswith("https://") else ""
    if not host or any(char.isspace() for char in value):
        raise BadValue("not an https URL", "e.g. https://token.actions.githubusercontent.com")
    return value


def scopes(value: str) -> list[str]:
    return value.split()


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise BadValue("not a valid choice", f"use one of: {', '.join(allowed)}")
        return value

    return parse


def address(value: str) -> str:
    """``HOST:PORT``, ``:PORT`` (loopback) or ``[IPv6]:PORT``, checked now, parsed by health."""
    _host, sep, port_text = value.rpartition(":")
    if not sep:
        raise BadValue("not HOST:PORT", "e.g. :8080, 0.0.0.0:8080 or [::1]:8080")
    port(port_text)
    return value


def compact_duration(seconds: int) -> str:
    """``20m``, ``1h``, ``90s``: a duration as an operator would write it."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# -- the declaration ----------------------------------------------------------------------------


class Option:
    """One option: how it is written on the command line, in the environment and in a config file.

    ``setting`` options fill ``config.Settings`` (and are listed by ``settings``); the others are
    switches of one invocation, found only on the argparse namespace. ``fast`` options may appear
    on the no-op fast path (fastpath.py); anything else sends a command down the argparse path.
    """

    __slots__ = (
        "action",
        "aliases",
        "choices",
        "commands",
        "default",
        "default_text",
        "dest",
        "env",
        "fast",
        "flags",
        "group",
        "help",
        "is_path",
        "metavar",
        "name",
        "parse",
        "setting",
    )

    def __init__(
        self,
        name: str,
        help: str,
        commands: Iterable[str],
        *,
        flags: tuple[str, ...] | None = None,
        env: str | None = None,
        default: object = None,
        parse: Callable[[str], object] = text,
        metavar: str | None = None,
        choices: tuple[str, ...] | None = None,
        action: str = "store",
        group: str | None = None,
        dest: str | None = None,
        setting: bool = True,
        fast: bool | None = None,
        is_path: bool = False,
        aliases: tuple[str, ...] = (),
        default_text: str | None = None,
    ) -> None:
        self.name = name
        self.help = help
        self.commands = frozenset(commands)
        self.flags = flags or ("--" + name,)
        self.env = env
        self.default = default
        self.parse = choice(*choices) if choices and parse is text else parse
        self.metavar = metavar
        self.choices = choices
        self.action = action
        self.group = group
        self.dest = dest or name.replace("-", "_")
        self.setting = setting
        self.fast = setting if fast is None else fast
        self.is_path = is_path
        self.aliases = aliases
        self.default_text = default_text

    @property
    def flag(self) -> str:
        """The long flag, the one messages show."""
        return next(f for f in self.flags if f.startswith("--"))

    @property
    def takes_value(self) -> bool:
        return self.action in ("store", "append")

    def shown_default(self) -> str | None:
        if self.default_text is not None:
            return self.default_text
        if self.default is None or self.default is False:
            return None
        if self.parse is mode and isinstance(self.default, int):
            return f"{self.default:04o}"
        if isinstance(self.default, int) and not isinstance(self.default, bool) and self.metavar:
            return (
                compact_duration(self.default) if self.metavar == "DURATION" else str(self.default)
            )
        return str(self.default)

    def help_line(self) -> str:
        """The help text plus where else the option can be given and what it is by default."""
        extra = [f"env {self.env}"] if self.env else []
        default = self.shown_default()
        if default is not None:
            extra.append(f"default {default}")
        return f"{self.help} ({'; '.join(extra)})" if extra else self.help

    def where(self) -> str:
        """How a user can give it, for error hints: ``--tenant-id or AZURE_TENANT_ID``."""
        ways = [f"{self.flag} {self.metavar}" if self.metavar else self.flag]
        if self.env:
            ways.append(self.env)
        return " or ".join(ways)

"""Logging for long-running commands: human lines or one JSON object a line, on stderr.

Events carry structured fields (``event`` plus e.g. ``sub``/``exp``) through ``extra`` so that the
JSON form is machine-readable while the human form stays a sentence. Tokens never enter a record:
callers pass claims, not the JWT. Third-party libraries are kept at WARNING or quieter, because
google-auth logs each of its own metadata retries as a warning and would drown the daemon's own
"refresh failed, retrying in N s" line during an outage.

Text that a client or a token controls (a request line, a ``resource``, a claim) must not forge
log lines or drive the terminal: :func:`printable` escapes it, and the human formatter applies it
to every message (and indents tracebacks, whose exception text may span lines); the JSON
formatter's output is escaped by ``json`` itself.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from . import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TextIO

LOGGER_NAME = "azfed_helper"
# Libraries whose records we only want when something is really wrong (or with -vv).
_QUIET_LIBRARIES = ("google", "google_auth_httplib2", "urllib3", "requests", "filelock", "msal")
# Record attributes that are plumbing, not event fields.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "event"}


def printable(text: object) -> str:
    """``text`` as one harmless line: each character that is not printable (control characters,
    ANSI escapes, line and paragraph separators, bidirectional overrides) shown as its Python
    escape, e.g. ``\\n`` or ``\\x1b``. Printable text, backslashes included, is unchanged, so
    applying it twice changes nothing."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, object]:
    """The event's structured fields: ours only. Libraries attach whole HTTP requests as extras
    (google-auth's ``httpRequest`` holds the signed grant assertion and Authorization headers)."""
    if record.name != LOGGER_NAME and not record.name.startswith(LOGGER_NAME + "."):
        return {}
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, event, message, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", record.name),
            "message": record.getMessage(),
        }
        document.update(_fields(record))
        if record.exc_info:
            document["traceback"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, separators=(",", ":"))


class HumanFormatter(logging.Formatter):
    """``TIME LEVEL message``: the message already reads as a sentence with its key facts."""

    def format(self, record: logging.LogRecord) -> str:
        message = printable(record.getMessage())
        line = f"{_iso(record.created)} {record.levelname.lower():<7} {message}"
        if record.exc_info:  # indented, so that only a record's own line starts at column 0
            lines = self.formatException(record.exc_info).split("\n")
            line += "".join("\n  " + printable(text) for text in lines)
        return line


def level_for(verbosity: int) -> int:
    """-q/-v counts to a level: 0 is INFO, each -v one step louder, each -q one step quieter."""
    levels = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)
    return levels[min(max(1 - verbosity, 0), len(levels) - 1)]


def setup(log_format: str = "human", verbosity: int = 0, stream: TextIO | None = None) -> None:
    """Send every record to ``stream`` (stderr) in ``log_format``; quiet chatty libraries.

    Replaces the root logger's handlers: this is for the process's main command, not a library.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else HumanFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = level_for(verbosity)
    root.setLevel(level)
    library_level = level if verbosity >= 2 else max(level, logging.ERROR)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(library_level)

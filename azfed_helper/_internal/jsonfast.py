"""JSON decoding for the no-op paths, without importing ``json``.

Importing ``json`` compiles regular expressions (and imports ``re`` and ``enum``): about 7 ms, as
much as half of a bare interpreter's start, on paths that run before every command. The C scanner
that ``json.loads`` itself uses is importable on its own (``_json``); where it is missing (another
Python implementation), this falls back to ``json.loads``. Every way a document can be wrong is a
``ValueError``, as there, on every Python version: on 3.10 and 3.11 the bare scanner raises
``SystemError`` for some invalid documents (it looks up ``json.decoder`` without importing it), and
any version raises ``RecursionError`` for documents nested thousands deep.
"""

from __future__ import annotations

from . import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    _Scanner = Callable[[str, int], tuple[object, int]]

_WHITESPACE = " \t\n\r"


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


class _Context:
    """The attributes json.decoder.JSONDecoder gives its scanner, with the default behaviour."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_reject_constant)
    memo: dict[str, str] = {}  # noqa: RUF012 - the scanner's own interning table


def _make_scanner() -> _Scanner | None:
    try:
        import _json
    except ImportError:
        return None
    scanner: _Scanner = _json.make_scanner(_Context())  # type: ignore[arg-type] # duck-typed
    return scanner


_scan = _make_scanner()


def loads(data: str | bytes) -> object:
    """Parse one JSON document (str, or UTF-8 bytes with or without a BOM); ValueError if invalid."""
    # Strip a BOM by hand: the utf-8-sig codec would be one more import.
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8") if isinstance(data, bytes) else data
    try:
        return _loads(text)
    except RecursionError:
        raise ValueError("the JSON document is nested too deeply") from None


def _loads(text: str) -> object:
    if _scan is None:
        return _slow_loads(text)
    text = text.strip(_WHITESPACE)
    try:
        value, end = _scan(text, 0)
    except StopIteration as exc:
        raise ValueError(f"expecting a JSON value at character {exc.value}") from None
    except SystemError:
        # Python 3.10/3.11: the scanner found an error but could not build JSONDecodeError
        # without json.decoder imported. An error path only: let json say what is wrong.
        return _slow_loads(text)
    if end != len(text):
        raise ValueError(f"extra data after the JSON value at character {end}")
    return value


def _slow_loads(text: str) -> object:
    import json

    return json.loads(text)

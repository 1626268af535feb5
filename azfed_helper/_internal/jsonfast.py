"""JSON decoding for the no-op paths, without importing ``json``.

Importing ``json`` compiles regular expressions (and imports ``re`` and ``enum``): about 7 ms, as
much as half of a bare interpreter's start, on paths that run before every command. The C scanner
that ``json.loads`` itself uses is importable on its own (``_json``); where it is missing (another
Python implementation), this falls back to ``json.loads``. Errors are ``ValueError``, as there.
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
    """Parse one JSON document (str, or UTF-8 bytes with or without a BOM)."""
    # Strip a BOM by hand: the utf-8-sig codec would be one more import.
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8") if isinstance(data, bytes) else data
    if _scan is None:
        import json

        return json.loads(text)
    text = text.strip(_WHITESPACE)
    try:
        value, end = _scan(text, 0)
    except StopIteration as exc:
        raise ValueError(f"expecting a JSON value at character {exc.value}") from None
    if end != len(text):
        raise ValueError(f"extra data after the JSON value at character {end}")
    return value

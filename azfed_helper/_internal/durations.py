"""Durations written the way operators write them: ``90s``, ``10m``, ``1h``, ``1h30m`` or plain seconds."""

from __future__ import annotations

from .errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, what: str = "duration") -> int:
    """Return whole seconds; raise UsageError naming ``what`` when ``text`` is not a duration."""
    raw = text.strip().lower()
    if not raw.isascii():  # str.isdigit accepts "²", which int() refuses
        raw = "?"
    if raw.isdigit() and len(raw) <= 12:
        return int(raw)
    total = 0
    number = ""
    for char in raw:
        if char.isdigit() and len(number) < 12:
            number += char
        elif char in _UNITS and number:
            total += int(number) * _UNITS[char]
            number = ""
        else:
            number = "x"  # poison: fall through to the error below
            break
    if number or not raw:
        raise UsageError(
            f"invalid {what} {text!r}",
            "write a duration as plain seconds (600) or with units: 90s, 10m, 1h, 1h30m",
        )
    return total


def format_duration(seconds: float) -> str:
    """Render seconds as a short human string (``-5m3s`` for the past)."""
    sign = "-" if seconds < 0 else ""
    rest = int(abs(seconds))
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{sign}{minutes}m{secs:02d}s"
    return f"{sign}{secs}s"

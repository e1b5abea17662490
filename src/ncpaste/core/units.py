"""Human units on the command line, in paste options and in answers: sizes,
durations and moments (ISO 8601, UTC)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_SIZE_RE = re.compile(r"\s*([0-9]+)\s*([a-zA-Z]*)\s*", re.ASCII)

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"([0-9]+)([smhdw])")
# A duration longer than this is a typo, not an intent (and keeps the
# arithmetic far away from the 64-bit millisecond timestamps we store).
MAX_DURATION_S = 100 * 365 * 86400
# Bound on option strings so a hostile client cannot make us regex-scan megabytes.
MAX_UNIT_TEXT = 32


def parse_size(text: str) -> int:
    """``100000``, ``512KiB``, ``10MiB``, ``1GB`` -> bytes. Raises ValueError."""
    if len(text) > MAX_UNIT_TEXT:
        raise ValueError(f"size too long: {text[:MAX_UNIT_TEXT]!r}...")
    match = _SIZE_RE.fullmatch(text)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"bad size {text!r}: use bytes or a unit like 512KiB, 10MiB")
    value = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if value <= 0:
        raise ValueError(f"bad size {text!r}: must be positive")
    return value


def parse_duration(text: str) -> int:
    """``30s``, ``10m``, ``1h``, ``2d``, ``1w`` (or ``1h30m``, or bare seconds) -> seconds."""
    if len(text) > MAX_UNIT_TEXT:
        raise ValueError(f"duration too long: {text[:MAX_UNIT_TEXT]!r}...")
    if text.isascii() and text.isdigit():
        seconds = int(text)
    else:
        pos = 0
        seconds = 0
        for match in _DURATION_RE.finditer(text):
            if match.start() != pos:
                break
            seconds += int(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or pos == 0:
            raise ValueError(f"bad duration {text!r}: use e.g. 30s, 10m, 1h, 2d, 1w")
    if seconds <= 0:
        raise ValueError(f"bad duration {text!r}: must be positive")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"bad duration {text!r}: longer than 100 years")
    return seconds


def parse_seconds(text: str) -> float:
    """A timeout: ``5``, ``2.5``, ``500ms``, ``1m``. Raises ValueError."""
    stripped = text.strip()
    if len(stripped) > MAX_UNIT_TEXT:
        raise ValueError(f"timeout too long: {stripped[:MAX_UNIT_TEXT]!r}...")
    if not stripped.isascii():
        raise ValueError(f"bad timeout {text!r}: use e.g. 5, 2.5, 500ms")
    if stripped.endswith("ms") and stripped[:-2].replace(".", "", 1).isdigit():
        value = float(stripped[:-2]) / 1000
    elif stripped.replace(".", "", 1).isdigit():
        value = float(stripped)
    else:
        value = float(parse_duration(stripped))
    if value <= 0:
        raise ValueError(f"bad timeout {text!r}: must be positive")
    return value


def format_size(n: int) -> str:
    """Bytes as the largest exact binary unit: 10485760 -> '10 MiB'."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"


def format_duration(seconds: int) -> str:
    """Seconds as the largest exact unit: 604800 -> '7d'."""
    for unit in ("w", "d", "h", "m"):
        factor = _DURATION_UNITS[unit]
        if seconds >= factor and seconds % factor == 0:
            return f"{seconds // factor}{unit}"
    return f"{seconds}s"


def iso_utc(ms: int, *, millis: bool = True) -> str:
    """Unix milliseconds as ``2026-09-21T10:00:00.000Z`` (the admin commands'
    JSON), or with ``millis=False`` as ``2026-09-21T10:00:00Z``: the HTTP
    port's JSON, whole seconds like its date headers and the form jq's
    ``fromdateiso8601`` reads."""
    try:
        moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000 if millis else 0)
    except (OverflowError, ValueError, OSError):
        return f"{ms} ms since the epoch"  # beyond datetime's years 1..9999
    return moment.isoformat(timespec="milliseconds" if millis else "seconds").replace("+00:00", "Z")

"""Paste options: the ``#!ncpaste`` preamble line and HTTP query parameters.

Both carry the same options; both are parsed into one ``PasteOptions`` and then
resolved against the server's limits into a ``PastePlan``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from ncpaste.core import keys, units
from ncpaste.core.errors import BadOption, InvalidAlias, echo

PREAMBLE_MAGIC = b"#!ncpaste"
# The preamble is one short line of options; anything longer is not a preamble
# we wrote, and bounding it keeps a hostile first line from being buffered.
MAX_PREAMBLE_BYTES = 1024
MAX_QUERY_BYTES = 2048
OPTION_NAMES = ("expire", "alias", "burn", "token", "redact")

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


@dataclass(frozen=True)
class PasteOptions:
    """What a client asked for, before the server's limits are applied."""

    expire_s: int | None = None
    alias: str | None = None
    burn: bool = False
    token: bool = False
    redact: bool = False


@dataclass(frozen=True)
class PastePlan:
    """Options resolved against the server's limits: what will be stored."""

    expire_s: int
    alias: str | None
    burn: bool
    token: bool
    #: Mask secrets before storing (asked for, or the server's default).
    redact: bool = False
    #: The client asked for redaction, so the netcat reply reports the count.
    report_redactions: bool = False


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise BadOption(f"bad option {name}={echo(value)}: use {name}=1 or {name}=0")


def options_from_pairs(pairs: list[tuple[str, str]]) -> PasteOptions:
    values: dict[str, object] = {}
    for name, value in pairs:
        if name not in OPTION_NAMES:
            raise BadOption(
                f"unknown option '{echo(name)}': known options are {', '.join(OPTION_NAMES)}"
            )
        if name in values:
            raise BadOption(f"option {name} given twice")
        if name == "expire":
            try:
                values[name] = units.parse_duration(value)
            except ValueError:
                raise BadOption(
                    f"bad option expire={echo(value)}: use e.g. 30s, 10m, 1h, 2d, 1w"
                ) from None
        elif name == "alias":
            try:
                values[name] = keys.check_alias(value)
            except ValueError as exc:
                raise InvalidAlias(f"invalid alias '{echo(value)}': {exc}") from None
        else:
            values[name] = _parse_bool(name, value)
    return PasteOptions(
        expire_s=values.get("expire"),  # type: ignore[arg-type]
        alias=values.get("alias"),  # type: ignore[arg-type]
        burn=bool(values.get("burn", False)),
        token=bool(values.get("token", False)),
        redact=bool(values.get("redact", False)),
    )


def parse_preamble(line: bytes) -> PasteOptions:
    """Parse ``#!ncpaste k=v k=v`` (without its newline)."""
    if not line.startswith(PREAMBLE_MAGIC):
        raise BadOption("options line must start with #!ncpaste")
    rest = line[len(PREAMBLE_MAGIC) :]
    if rest and not rest[:1].isspace():
        raise BadOption("options line must be '#!ncpaste k=v ...' with a space after #!ncpaste")
    try:
        text = rest.decode("ascii").strip()
    except UnicodeDecodeError:
        raise BadOption("options line must be plain ASCII") from None
    pairs = []
    for word in text.split():
        name, sep, value = word.partition("=")
        if not sep or not value:
            raise BadOption(f"bad option '{echo(word)}': write name=value, e.g. expire=1h")
        pairs.append((name, value))
    return options_from_pairs(pairs)


def parse_query(query: str) -> PasteOptions:
    """Options from an HTTP query string, e.g. ``expire=1h&burn=1``."""
    return options_from_pairs(query_pairs(query))


def query_pairs(query: str) -> list[tuple[str, str]]:
    """``name=value`` pairs of a query string, each with a value."""
    if len(query) > MAX_QUERY_BYTES:
        raise BadOption("query string too long")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise BadOption("malformed query string: use ?name=value&name=value") from None
    for name, value in pairs:
        if not value:
            raise BadOption(f"option {echo(name)} needs a value, e.g. {echo(name)}=1")
    return pairs


def resolve(
    options: PasteOptions, *, default_expire_s: int, max_expire_s: int, redact_default: bool = False
) -> PastePlan:
    """Apply the server's limits. An expiry above the maximum is capped to it."""
    expire_s = options.expire_s if options.expire_s is not None else default_expire_s
    return PastePlan(
        expire_s=min(expire_s, max_expire_s),
        alias=options.alias,
        burn=options.burn,
        token=options.token,
        redact=options.redact or redact_default,
        report_redactions=options.redact,
    )

"""Paste keys, aliases and delete tokens.

Keys are drawn from a CSPRNG over an alphabet without look-alike characters
(no 0/O/o, 1/l/I), so a key read aloud or retyped from a screenshot survives.
56 symbols give log2(56) = 5.807 bits a character; the default 12 characters
give 69.7 bits (see README, "Why links cannot be guessed").
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets

KEY_ALPHABET = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
DEFAULT_KEY_LENGTH = 12
# Below 60 bits a key is guessable at scale (brief: "at least 60 bits").
MIN_KEY_LENGTH = math.ceil(60 / math.log2(len(KEY_ALPHABET)))
# Keys longer than this stop being pleasant to share; the store caps key bytes too.
MAX_KEY_LENGTH = 32

ALIAS_MIN = 3
ALIAS_MAX = 64
# First character alphanumeric so an alias is never ".", ".." or "-flag".
ALIAS_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{%d,%d}" % (ALIAS_MIN - 1, ALIAS_MAX - 1))
# Every path our HTTP server answers itself; an alias must never shadow one.
RESERVED_NAMES = frozenset(
    {
        "healthz",
        "robots.txt",
        "favicon.ico",
        "metrics",
        "static",
        "api",
        "admin",
        "raw",
        "about",
        "help",
        "index.html",
        "sitemap.xml",
        ".well-known",
    }
)

TOKEN_BYTES = 16  # 128-bit delete tokens: brute force is out of the question.


def key_bits(length: int) -> float:
    """Entropy of a random key of ``length`` characters."""
    return length * math.log2(len(KEY_ALPHABET))


# Random bytes below this map onto the alphabet without bias (4 * 56 = 224);
# the rest are drawn again (rejection sampling).
_UNBIASED_BELOW = 256 - 256 % len(KEY_ALPHABET)


def new_key(length: int) -> str:
    """A uniformly random key from the OS CSPRNG: one read of random bytes,
    not one call per character (this runs inside the write transaction)."""
    chars: list[str] = []
    while len(chars) < length:
        for byte in secrets.token_bytes(length + length // 4 + 2):
            if byte < _UNBIASED_BELOW:
                chars.append(KEY_ALPHABET[byte % len(KEY_ALPHABET)])
                if len(chars) == length:
                    break
    return "".join(chars)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> bytes:
    """Tokens are stored only as hashes. They carry 128 random bits, so one round
    of SHA-256 is enough: there is no dictionary to attack."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def token_matches(token: str, stored_hash: bytes) -> bool:
    """Constant-time comparison of a presented token with the stored hash."""
    return hmac.compare_digest(token_hash(token), stored_hash)


def check_alias(name: str) -> str:
    """Return ``name`` if it is a valid alias, else raise ValueError with why."""
    if not ALIAS_MIN <= len(name) <= ALIAS_MAX:
        raise ValueError(f"alias must be {ALIAS_MIN} to {ALIAS_MAX} characters")
    if not ALIAS_RE.fullmatch(name):
        raise ValueError(
            "alias may use only A-Z a-z 0-9 . _ - and must start with a letter or digit"
        )
    if name.lower() in RESERVED_NAMES:
        raise ValueError(f"alias {name!r} is reserved")
    return name


def is_plausible_name(name: str) -> bool:
    """Could ``name`` be a key or alias at all? Cheap filter before any store look-up."""
    return bool(ALIAS_RE.fullmatch(name))

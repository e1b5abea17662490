"""Secret redaction for CI logs: mask credentials in a paste body before it is stored.

People paste whole CI logs, and CI logs leak: a debug ``env`` dump, a
``curl -v`` against a URL with credentials in it, a service-account JSON file
printed by mistake. ``redact`` is applied to the whole body once, before the
store sees it, and replaces each secret it recognises with ``MASK`` while
keeping enough around it (the variable name, the URL host, the PEM armour
lines) that the reader can still tell what was there.

This is a safety net, not a guarantee. It knows the shapes listed in
``PATTERNS`` and nothing else: a password in a form it does not know, a token
split across lines, or a key in an encoding it does not expect is stored as
sent. Where it must guess, it errs toward masking (a ``token=`` in code may be
masked although it held no secret), except for the prose and placeholder
shapes described on the ``secret-assignment`` pattern and ``_PLACEHOLDER_RE``.
Anyone who pasted a real secret should still rotate it.

Every pattern is linear on hostile input: no nested quantifier can split the
same bytes two ways, every repetition has a named bound, and a token must not
start inside a longer word, checked by a fixed-width look-behind placed after
its literal prefix so the regex engine can still jump from one occurrence of
the prefix to the next with a fast literal search.

How the table is applied: each pattern scans the body on its own, the part of
each match in its ``secret`` group is what gets masked, and overlapping secret
spans found by different patterns (``token=ghp_...`` is both an assignment and a
GitHub token) are merged into one mask and counted once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

MASK = b"[REDACTED]"

# A PEM private key body: a 16384-bit RSA key is about 12 KiB of base64 and a
# PGP private key block with several subkeys a few times that. Bounding the
# body keeps a BEGIN line without an END from making us scan the whole paste.
MAX_PEM_BODY_BYTES = 64 * 1024
# Base64 lines in PEM are 64 characters (RFC 7468) and PGP armour 76; allow
# some slack for odd writers before a line stops looking like key material.
MAX_PEM_LINE_CHARS = 100
# Lines of a key whose END line is missing (a log cut off mid-key): enough for
# the largest key above.
MAX_PEM_LINES = MAX_PEM_BODY_BYTES // 64
# Words between "BEGIN" and "PRIVATE KEY" ("RSA", "OPENSSH", "ENCRYPTED",
# "PGP"), and how long each may be: real labels are one or two short words.
MAX_PEM_LABEL_WORDS = 3
MAX_PEM_LABEL_WORD_CHARS = 16
# Whatever a log writer puts before the END line on the same line, such as the
# "2024-05-01T10:00:00.1234567Z " GitHub Actions adds to downloaded logs.
MAX_LINE_PREFIX_CHARS = 64
# GitHub documents that its tokens may grow to 255 characters; the other
# vendors' tokens are shorter. One cap for all of them.
MAX_TOKEN_CHARS = 255
# One base64url segment of a JWT. Tokens with many claims run to a few KiB;
# past this we still mask the first MAX bytes, so at worst the tail of a
# signature (useless on its own) stays visible.
MAX_JWT_SEGMENT_CHARS = 8 * 1024
# The value of a ``password=`` style assignment: room for a JWT or a long
# connection string, and a bound on what one hostile line can make us scan.
MAX_VALUE_CHARS = 4 * 1024
# Spaces or tabs allowed around ``=`` and ``:`` (``password   =   x``,
# aligned YAML); beyond that it is layout, not an assignment.
MAX_SEPARATOR_SPACES = 8
# A letters-only word after ``name:`` is read as prose ("invalid token:
# expired"); a word longer than this is not prose, so we stop reading.
MAX_PROSE_WORD_CHARS = 64
# userinfo (``user:password``) in a URL; RFC 3986 sets no limit, real ones
# are short, and the bound keeps ``://`` followed by a long line cheap.
MAX_USERINFO_CHARS = 256

# Variable and key names whose value is a secret. Matched case-insensitively
# and anywhere in a longer name, so DB_PASSWORD, GITHUB_TOKEN, client_secret,
# X-Api-Key and refresh_token are all covered. Deliberately absent: "pwd" (the
# shell's working directory in every env dump) and "pass" (test counts).
# Every name must start with one of the literals in _ANCHORS["secret-assignment"].
ASSIGNMENT_NAMES = rb"passw(?:or)?d|secret(?:[_-]?(?:access[_-]?)?key)?|token|api[_-]?key"

# A line break inside a PEM block: a real one, or the two characters "\n" of a
# key embedded in a JSON string (Google service-account files).
_NEWLINE = rb"(?:\r?\n|\\n)"
# One byte of a PEM body: anything except the start of "-----", so the body
# stops at the next armour line. The two branches never match the same byte,
# so the repetition cannot be split two ways.
_PEM_BODY_BYTE = rb"(?:[^-]|-(?!----))"
_PEM_BEGIN = rb"""
    -----BEGIN[ ]
    (?P<label>(?:[A-Z0-9]{1,%(word)d}[ ]){0,%(words)d})
    PRIVATE[ ]KEY(?P<block>(?:[ ]BLOCK)?)-----
""" % {b"word": MAX_PEM_LABEL_WORD_CHARS, b"words": MAX_PEM_LABEL_WORDS}
_BASE64_LINE = rb"[A-Za-z0-9+/=]{1,%d}" % MAX_PEM_LINE_CHARS
# Spaces or tabs on either side of "=" or ":" in an assignment.
_SPACES = rb"[ \t]{0,%d}" % MAX_SEPARATOR_SPACES
# Bytes an unquoted value stops at: whitespace, quotes, and the separators of
# query strings and lists. "<" and ">" also end it, so "<your-password>"
# placeholders never match.
_VALUE_END = rb"""\s"'`&,;<>"""


def _compile(pattern: bytes) -> re.Pattern[bytes]:
    """Verbose, so the longer patterns can be laid out; spaces are written [ ]."""
    return re.compile(pattern, re.VERBOSE)


@dataclass(frozen=True)
class SecretPattern:
    """One kind of secret: how to find it, and a sample the tests hold it to.

    ``regex`` must have a group named ``secret``: that span is replaced by
    ``MASK`` and the rest of the match is kept. An optional group named
    ``value`` is what is checked for placeholders (``***``, ``${VAR}``); it
    defaults to ``secret``.
    """

    name: str
    regex: re.Pattern[bytes]
    example: bytes
    masked: bytes


PATTERNS: tuple[SecretPattern, ...] = (
    SecretPattern(
        name="pem-private-key",
        regex=_compile(
            _PEM_BEGIN
            + _NEWLINE
            + rb"(?P<secret>%s{1,%d})" % (_PEM_BODY_BYTE, MAX_PEM_BODY_BYTES)
            + _NEWLINE
            + rb"[^\r\n]{0,%d}?" % MAX_LINE_PREFIX_CHARS
            + rb"-----END[ ](?P=label)PRIVATE[ ]KEY(?P=block)-----"
        ),
        example=(
            b"+ cat deploy_key\n"
            b"-----BEGIN RSA PRIVATE KEY-----\n"
            b"MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi3Z1gY0nF6mJMiFkXq0v2BnbDN\n"
            b"k6TuLqlGwQrpFDhRCx+pPzK2m6ZJtm6ytWgn0EuYXnWZXKjL2VsNkVUXLk4wC1Tl\n"
            b"Jf8s1Uq8lN0bF0wQkMXv9x5mzE7k2GJ+0y3q0b8Z6n4Xg==\n"
            b"-----END RSA PRIVATE KEY-----\n"
            b"+ ssh-add deploy_key\n"
        ),
        masked=(
            b"+ cat deploy_key\n"
            b"-----BEGIN RSA PRIVATE KEY-----\n"
            b"[REDACTED]\n"
            b"-----END RSA PRIVATE KEY-----\n"
            b"+ ssh-add deploy_key\n"
        ),
    ),
    SecretPattern(
        # The END line is missing: the log was cut off, or someone printed
        # the first lines with head. Mask the base64 lines that follow BEGIN.
        name="pem-private-key-truncated",
        regex=_compile(
            _PEM_BEGIN
            + _NEWLINE
            + rb"(?P<secret>%s(?:%s%s){0,%d})"
            % (_BASE64_LINE, _NEWLINE, _BASE64_LINE, MAX_PEM_LINES)
        ),
        example=(
            b"$ head -3 id_ed25519\n"
            b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
            b"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
            b"QyNTUxOQAAACBmZ2s0dGVzdGtleWRvbm90dXNlZm9ycmVhbHB1cnBvc2VzAAAAmJ4bW4Kf\n"
            b"$ echo done\n"
        ),
        masked=(
            b"$ head -3 id_ed25519\n"
            b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
            b"[REDACTED]\n"
            b"$ echo done\n"
        ),
    ),
    SecretPattern(
        # AKIA: long-term key ID; ASIA: temporary (STS) key ID. Exactly 20
        # characters; the look-behind keeps "XAKIA..." inside a longer word out.
        name="aws-access-key-id",
        regex=_compile(
            rb"(?P<secret>A[KS]IA(?<![A-Z0-9]A[KS]IA)[A-Z0-9]{16})(?![A-Za-z0-9])"
        ),
        example=b"Using AWS credentials AKIAIOSFODNN7EXAMPLE from environment\n",
        masked=b"Using AWS credentials [REDACTED] from environment\n",
    ),
    SecretPattern(
        # The 40-character secret only means something next to its name, so
        # it is matched only when assigned (credentials file, env, JSON).
        name="aws-secret-access-key",
        regex=_compile(
            rb"(?i:aws_?secret_?access_?key)[\"']?"
            + _SPACES
            + rb"[=:]"
            + _SPACES
            + rb"[\"']?(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        example=b"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        masked=b"aws_secret_access_key = [REDACTED]\n",
    ),
    SecretPattern(
        # Classic and OAuth/app tokens: ghp_ (personal), gho_ (OAuth), ghu_
        # (user-to-server), ghs_ (server-to-server), ghr_ (refresh).
        name="github-token",
        regex=_compile(
            rb"(?P<secret>gh[pousr]_(?<![A-Za-z0-9_]gh[pousr]_)[A-Za-z0-9]{36,%d})"
            % MAX_TOKEN_CHARS
        ),
        example=b"remote: Authenticating with ghp_16C7e42F292c6912E7710c838347Ae178B4a\n",
        masked=b"remote: Authenticating with [REDACTED]\n",
    ),
    SecretPattern(
        name="github-fine-grained-token",
        regex=_compile(
            rb"(?P<secret>github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{22,%d})"
            % MAX_TOKEN_CHARS
        ),
        example=(
            b"Authenticating as bot with github_pat_11ABCDEFG0abcdefghijkl_"
            b"mnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklm\n"
        ),
        masked=b"Authenticating as bot with [REDACTED]\n",
    ),
    SecretPattern(
        name="gitlab-token",
        regex=_compile(
            rb"(?P<secret>glpat-(?<![A-Za-z0-9_-]glpat-)[A-Za-z0-9_-]{20,%d})" % MAX_TOKEN_CHARS
        ),
        example=b"Cloning with deploy credentials glpat-xYz12AbC34dEf56GhI78j for group/app\n",
        masked=b"Cloning with deploy credentials [REDACTED] for group/app\n",
    ),
    SecretPattern(
        # xoxb bot, xoxp user, xoxa app, xoxr refresh, xoxs session tokens.
        name="slack-token",
        regex=_compile(
            rb"(?P<secret>xox[abprs]-(?<![A-Za-z0-9_-]xox[abprs]-)[A-Za-z0-9-]{10,%d})"
            % MAX_TOKEN_CHARS
        ),
        example=b"notify: posting as xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx\n",
        masked=b"notify: posting as [REDACTED]\n",
    ),
    SecretPattern(
        # Anyone holding the path can post to the channel; keep the host so
        # the reader sees it was a Slack webhook.
        name="slack-webhook-url",
        regex=_compile(
            rb"hooks\.slack\.com/(?:services|workflows|triggers)/"
            rb"(?P<secret>[A-Za-z0-9_/-]{20,%d})" % MAX_TOKEN_CHARS
        ),
        example=(
            b"curl -X POST https://hooks.slack.com/services/"
            b"T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX -d @payload.json\n"
        ),
        masked=b"curl -X POST https://hooks.slack.com/services/[REDACTED] -d @payload.json\n",
    ),
    SecretPattern(
        # Header and payload are base64url JSON objects, so both start "eyJ"
        # ('{"'); the signature may be empty (alg "none").
        name="jwt",
        regex=_compile(
            rb"(?P<secret>eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{1,%(n)d}"
            rb"\.eyJ[A-Za-z0-9_-]{1,%(n)d}\.[A-Za-z0-9_-]{0,%(n)d})"
            % {b"n": MAX_JWT_SEGMENT_CHARS}
        ),
        example=(
            b"Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
            b".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
            b".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c\n"
        ),
        masked=b"Authorization: Bearer [REDACTED]\n",
    ),
    SecretPattern(
        # name = value, name: value, "name": "value". The name and separator
        # stay; only the value is masked. Not matched: "==" and "=>"/"=~"
        # (comparisons), "::" (paths in code), an empty value, and a
        # letters-only word after a colon, which is prose or a type
        # ("invalid token: expired", "password: Option<String>"). After a
        # colon with no space, "@" ends the value: that is the userinfo of
        # "https://x-access-token:TOKEN@github.com", and the host stays. A
        # value that is a placeholder is left alone by redact() itself.
        name="secret-assignment",
        regex=_compile(
            rb"(?i:%s)[\"']?" % ASSIGNMENT_NAMES
            + _SPACES
            + rb"(?:=(?![=>~])%s" % _SPACES
            + rb"|:(?!:)(?!%s[A-Za-z]{1,%d}(?![^%s]))"
            % (_SPACES, MAX_PROSE_WORD_CHARS, _VALUE_END)
            + rb"(?:[ \t]{1,%d}|(?P<tight>)))" % MAX_SEPARATOR_SPACES
            + rb"(?P<quote>[\"'])?"
            + (
                rb"(?P<secret>(?(quote)[^\"'\r\n]{1,%(n)d}"
                # A template expression is one value even with spaces inside:
                # GitHub's "${{ secrets.X }}", Jinja's "{{ x }}".
                rb"|(?:\$?\{\{[^{}\r\n]{0,%(n)d}\}\}|(?(tight)[^%(end)s@]|[^%(end)s]){1,%(n)d})))"
                % {b"n": MAX_VALUE_CHARS, b"end": _VALUE_END}
            )
        ),
        example=b"  DB_PASSWORD=hunter2 DB_USER=ci ./manage.py migrate\n",
        masked=b"  DB_PASSWORD=[REDACTED] DB_USER=ci ./manage.py migrate\n",
    ),
    SecretPattern(
        # scheme://user:password@host -> scheme://[REDACTED]@host. A URL with
        # a user and no password (ssh://git@host) carries no secret, and
        # neither does an image pinned by digest (docker://alpine:3.19@sha256:...).
        name="url-credentials",
        regex=_compile(
            rb"://(?P<secret>[^\s/?#@:\"'<>]{0,%(n)d}:(?P<value>[^\s/?#@\"'<>]{1,%(n)d}))"
            rb"@(?!sha(?:256|384|512):)" % {b"n": MAX_USERINFO_CHARS}
        ),
        example=b"Cloning into 'app'... https://ci-bot:s3cr3t-Pa55@git.example.com/team/app.git\n",
        masked=b"Cloning into 'app'... https://[REDACTED]@git.example.com/team/app.git\n",
    ),
)

# Values that stand for a secret without being one: what CI systems print
# instead of a masked secret (GitHub "***", GitLab "[MASKED]", Rails
# "[FILTERED]"), template and shell references, and literals that are
# settings rather than secrets. Checked with fullmatch on a value of at most
# MAX_VALUE_CHARS bytes, each branch a single scan.
_PLACEHOLDER_RE = re.compile(
    rb"""
      \*+ | x{3,} | \.{3} | (?:\xe2\x80\xa2)+
    | \[(?:redacted|masked|filtered|hidden|secure)\] | <[^<>]*>
    | \$[A-Za-z_][A-Za-z0-9_]* | \$\{[^{}]*\} | \$\{\{[^{}]*\}\} | \{\{[^{}]*\}\} | \{[^{}]*\}
    | %s | %\([a-z_]+\)s
    | null | none | nil | true | false | undefined | changeme | redacted
    """,
    re.VERBOSE | re.IGNORECASE,
)


def _is_placeholder(value: bytes) -> bool:
    """A value that needs no masking: a placeholder, or already masked."""
    # startswith, not ==: a value longer than MAX_VALUE_CHARS was masked only
    # up to the cap, and masking what follows again would not be idempotent.
    return value.startswith(MASK) or _PLACEHOLDER_RE.fullmatch(value) is not None


# The literals, lowercase, that every match of a case-insensitive pattern
# starts with. The regex engine can jump straight to a case-sensitive literal
# prefix but must try a case-insensitive pattern at every byte, which for the
# assignment pattern was most of the time spent on a large log (and time spent
# holding the GIL). bytes.find on a lowercased copy finds the same starts.
_ANCHORS: dict[str, tuple[bytes, ...]] = {
    "aws-secret-access-key": (b"aws",),
    "secret-assignment": (b"passw", b"secret", b"token", b"api"),
}
# Checking each candidate start costs a Python loop turn, about as much as the
# engine spends scanning a few dozen bytes. An ordinary CI log has one
# candidate in about 300 bytes; a body denser than one in this many (say
# "apiapiapi...") is scanned by finditer instead.
MIN_BYTES_PER_ANCHOR = 32


def _matches(
    pattern: SecretPattern, body: bytes | bytearray, lowered: bytes | bytearray
) -> Iterator[re.Match[bytes]]:
    """The same matches as ``pattern.regex.finditer(body)``, found faster.

    ``lowered`` is ``body.lower()``: same length, ASCII case folded, which is
    all the folding a bytes pattern does.
    """
    anchors = _ANCHORS.get(pattern.name)
    if anchors is None or (
        sum(lowered.count(anchor) for anchor in anchors) * MIN_BYTES_PER_ANCHOR > len(body)
    ):
        yield from pattern.regex.finditer(body)
        return
    starts = set()
    for anchor in anchors:
        found = lowered.find(anchor)
        while found >= 0:
            starts.add(found)
            found = lowered.find(anchor, found + 1)
    resume = 0  # finditer goes on searching where the last match ended
    for start in sorted(starts):
        if start < resume:
            continue
        match = pattern.regex.match(body, start)
        if match:
            yield match
            resume = match.end()


def _secret_spans(body: bytes | bytearray) -> list[tuple[int, int]]:
    """Every (start, end) to mask, as found by each pattern, unsorted."""
    lowered = body.lower()
    spans = []
    for pattern in PATTERNS:
        for match in _matches(pattern, body, lowered):
            value = match.group("value") if "value" in pattern.regex.groupindex else None
            if value is None:
                value = match.group("secret")
            if not _is_placeholder(value):
                spans.append(match.span("secret"))
    return spans


def redact(body: bytes | bytearray) -> tuple[bytes, int]:
    """Return the body with every secret masked, and how many were masked.

    Secret spans that overlap (one secret found by two patterns) become one
    mask and count once; bytes outside every span come back unchanged.
    """
    spans = _secret_spans(body)
    if not spans:
        return bytes(body), 0
    spans.sort()
    merged = [list(spans[0])]
    for start, end in spans[1:]:
        if start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces: list[bytes | bytearray] = []
    kept_from = 0  # first byte not yet copied or masked
    for start, end in merged:
        pieces += (body[kept_from:start], MASK)
        kept_from = end
    pieces.append(body[kept_from:])
    return b"".join(pieces), len(merged)

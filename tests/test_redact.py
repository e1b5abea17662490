"""Tier 1: secret redaction in the sans-IO core. No sockets, no store, no clock."""

from __future__ import annotations

import base64
import hashlib
import uuid
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ncpaste.core import redact as redact_module
from ncpaste.core.redact import MASK, PATTERNS, redact

from conftest import hang_guard

# A hostile input must finish in linear time; this bounds a hang, it does not
# measure speed (each case takes milliseconds when the patterns are linear).
# Big enough that a quadratic or exponential pattern would blow the guard.
HOSTILE_BYTES = 1024 * 1024

# Lowercase substrings without which no pattern in the table can match
# (checked against the lowercased input). Written out here, not derived from
# the module, so the property test holds the table to an independent spec.
TRIGGERS = (
    b"-----begin",  # PEM private keys
    b"akia",
    b"asia",  # AWS access key IDs
    b"aws",  # aws_secret_access_key
    b"ghp_",
    b"gho_",
    b"ghu_",
    b"ghs_",
    b"ghr_",
    b"github_pat_",
    b"glpat-",
    b"xox",  # Slack tokens
    b"hooks.slack.com",
    b"eyj",  # JWTs
    b"passw",
    b"secret",
    b"token",
    b"api",  # assignments
    b"://",  # credentials in URLs
)



def _sha(seed: object) -> str:
    return hashlib.sha1(str(seed).encode()).hexdigest()


def _ci_log() -> bytes:
    """A few hundred lines of an ordinary CI log with no secret in it, full of
    things that look close: the words token and password, URLs, hashes,
    UUIDs, base64 that is not a JWT, key: value output and code."""
    lines = [
        "##[group]Run actions/checkout@b4ffde65f46336ab88eb53be808477a3936bae11",
        "with:",
        "  repository: acme/app",
        "  token: ***",
        "  ssh-strict: true",
        "  persist-credentials: true",
        "##[endgroup]",
        "Syncing repository: acme/app",
        "Temporarily overriding HOME='/home/runner/work/_temp/3f2a' before making global git config changes",
        "[command]/usr/bin/git config --global --add safe.directory /home/runner/work/app/app",
        "[command]/usr/bin/git remote add origin https://github.com/acme/app",
        "[command]/usr/bin/git -c protocol.version=2 fetch --no-tags --prune --no-recurse-submodules --depth=1 origin",
        "[command]/usr/bin/git log -1 --format='%H'",
        "'8c3f1e2a9b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e'",
        "GITHUB_TOKEN Permissions",
        "  Contents: read",
        "  Metadata: read",
        "Secret source: Actions",
        "Prepare workflow directory",
        "env:",
        "  PWD: /home/runner/work/app/app",
        "  PYTHONHASHSEED: 0",
        "  DATABASE_URL: postgres://localhost:5432/app_test",
        "  password_reset_ttl_s=3600",
        "  max_tokens=4096 tokenizer=bpe token_type=bearer",
        "  secrets: inherit",
        "  api_version=2 api_base=https://api.example.com/v2?page=2&sort=asc",
        "Collecting requests==2.31.0",
        "  Downloading https://files.pythonhosted.org/packages/70/8e/"
        "0e2d847013cb52cd35b38c009bb167a1a26b2ce6cd6965bf26b47bc0bf44/requests-2.31.0-py3-none-any.whl (62 kB)",
        "Successfully installed certifi-2024.2.2 charset-normalizer-3.3.2 idna-3.6 urllib3-2.2.1",
        "  Cloning ssh://git@github.com/acme/vendored-lib.git to /tmp/pip-req-build-k2j3",
        "  Cloning git@github.com:acme/other.git (from 'git@github.com:acme/other.git')",
        "  Resolved https://user@gitlab.example.com/acme/tools.git to commit 0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e",
        "Step 4/12 : RUN pip install --no-cache-dir -r requirements.txt",
        " ---> Running in 4b825dc642cb",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "docker.io/library/python:3.11-slim@sha256:ad2c4e5229a56a4b0b6d2eb2c6cd4e1b4bb2d1f0a7d0e3f1c9d8b7a6e5f4d3c2",
        "============================= test session starts ==============================",
        "platform linux -- Python 3.11.7, pytest-8.0.0, pluggy-1.4.0",
        "tests/test_auth.py::test_password_reset_sends_email PASSED              [ 10%]",
        "tests/test_auth.py::test_token_refresh_rotates_cookie PASSED            [ 20%]",
        "tests/test_auth.py::test_expired_token_is_rejected PASSED               [ 30%]",
        "tests/test_auth.py::test_login_with_wrong_password_fails PASSED         [ 40%]",
        "WARNING auth: invalid token: expired",
        "WARNING auth: password: too short (min 12 characters)",
        "INFO auth: password reset requested for user id=42",
        "INFO oauth: refreshing access token for tenant 9b2e5c1e-7d3a-4f8b-a6c2-0e1f2d3c4b5a",
        "INFO oauth: token refresh scheduled in 300s",
        "DEBUG session cookie=eyJhdXRocyI6e319 (base64 JSON, not a JWT)",
        "DEBUG payload=eyJ1c2VyIjoxfQ== signature missing",
        "  File \"/home/runner/work/app/app/auth.py\", line 88, in check",
        "    if token == expected_token:",
        "    fn check(token: &str) -> bool {",
        "    let password: Option<String> = None;",
        "    Token::new(kind)",
        "Email: ci-bot@example.com, reply-to: noreply@example.com",
        "See https://docs.example.com/auth#tokens and http://[::1]:8080/healthz",
        "AKIA is the prefix of an AWS access key ID; ours come from OIDC.",
        "Uploading artifact coverage.xml (14.2 kB) to https://pipelines.actions.githubusercontent.com/abc/_apis/pipelines/1/runs/7/artifacts",
        "Password: ",
        "password=",
        "token: [REDACTED]",
        "api_key: ${{ secrets.API_KEY }}",
        "password = \"{password}\"",
        "SECRET_KEY=$DJANGO_SECRET_KEY",
        "-----BEGIN CERTIFICATE-----",
        "MIIBszCCAVmgAwIBAgIUTestCertificateNotAKeyAAAAAAAAAAAAwCgYIKoZIzj0EAwIw",
        "-----END CERTIFICATE-----",
        "=================== 142 passed, 3 skipped in 12.34s ===================",
    ]
    body = []
    for i in range(6):
        body.extend(lines)
        for j in range(30):
            n = i * 100 + j
            blob = base64.b64encode(hashlib.sha256(str(n).encode()).digest() * 2).decode()
            body.append(f"2024-05-01T10:{i:02d}:{j:02d}.1234567Z commit {_sha(n)} build {uuid.UUID(int=n * 7919)}")
            body.append(f"  artifact digest sha256:{hashlib.sha256(str(n).encode()).hexdigest()} blob {blob}")
    return ("\n".join(body) + "\n").encode()


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.name)
def test_each_pattern_masks_its_example(pattern: redact_module.SecretPattern) -> None:
    assert redact(pattern.example) == (pattern.masked, 1)


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.name)
def test_each_example_is_found_by_its_own_pattern(pattern: redact_module.SecretPattern) -> None:
    # Otherwise an example could pass only because another pattern caught it.
    match = pattern.regex.search(pattern.example)
    assert match is not None
    assert MASK not in pattern.example and MASK in pattern.masked


def test_pattern_names_are_unique() -> None:
    names = [p.name for p in PATTERNS]
    assert len(names) == len(set(names))


def test_several_secrets_in_one_body_each_count_once() -> None:
    body = b"".join(p.example for p in PATTERNS)
    assert redact(body) == (b"".join(p.masked for p in PATTERNS), len(PATTERNS))


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        # One secret found by two patterns is one mask, one count.
        (b"export GITHUB_TOKEN=ghp_16C7e42F292c6912E7710c838347Ae178B4a\n", b"export GITHUB_TOKEN=[REDACTED]\n"),
        (
            b"git clone https://x-access-token:ghs_16C7e42F292c6912E7710c838347Ae178B4a@github.com/acme/app\n",
            b"git clone https://[REDACTED]@github.com/acme/app\n",
        ),
        (
            b'{"id_token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."}\n',
            b'{"id_token": "[REDACTED]"}\n',
        ),
        (
            b"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
            b"AWS_SECRET_ACCESS_KEY=[REDACTED]\n",
        ),
    ],
)
def test_overlapping_matches_count_once(line: bytes, masked: bytes) -> None:
    assert redact(line) == (masked, 1)


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        (b'"password": "correct horse battery"', b'"password": "[REDACTED]"'),
        (b"client_secret: 'abc123'", b"client_secret: '[REDACTED]'"),
        (b"X-Api-Key: 5f2b9c1d7e", b"X-Api-Key: [REDACTED]"),
        (b"apikey:Zx81", b"apikey:[REDACTED]"),
        (b"PASSWD   =   hunter2", b"PASSWD   =   [REDACTED]"),
        (b"GET /callback?access_token=abc.def&state=xyz", b"GET /callback?access_token=[REDACTED]&state=xyz"),
        (b"db: postgres://app:p4ss@db:5432/app", b"db: postgres://[REDACTED]@db:5432/app"),
        (
            # A Google service-account key: the PEM block inside a JSON string.
            b'"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n'
            b'BKcwggSjAgEAAoIBAQC7\\n-----END PRIVATE KEY-----\\n",',
            b'"private_key": "-----BEGIN PRIVATE KEY-----\\n[REDACTED]\\n-----END PRIVATE KEY-----\\n",',
        ),
        (
            # GitHub Actions log downloads put a timestamp before every line.
            b"2024-05-01T10:00:00.1Z -----BEGIN EC PRIVATE KEY-----\n"
            b"2024-05-01T10:00:00.2Z MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oGfVZ2XvGXxU\n"
            b"2024-05-01T10:00:00.3Z -----END EC PRIVATE KEY-----\n",
            b"2024-05-01T10:00:00.1Z -----BEGIN EC PRIVATE KEY-----\n"
            b"[REDACTED]\n"
            b"2024-05-01T10:00:00.3Z -----END EC PRIVATE KEY-----\n",
        ),
    ],
)
def test_assignment_and_pem_variants(line: bytes, masked: bytes) -> None:
    assert redact(line) == (masked, 1)


@pytest.mark.parametrize(
    "line",
    [
        b"password=",  # empty
        b"password= \n",
        b'password=""',
        b"password=[REDACTED]",
        b"token: ***",  # what GitHub Actions prints for a masked secret
        b"secret=********",
        b"api_key=[MASKED]",
        b"password=${DB_PASSWORD}",
        b"password=$DB_PASSWORD",
        b"api_key: {{ secrets.API_KEY }}",
        b"password=<your-password>",
        b"token=null",
        b"invalid token: expired",  # prose, not an assignment
        b"if token == expected:",
        b"std::string token; Token::new()",
        b"https://[REDACTED]@github.com/acme/app",
        b"ssh://git@github.com/acme/app",
        b"https://user:***@example.com",
        b"uses: docker://alpine:3.19@sha256:ad2c4e5229a56a4b0b6d2eb2c6cd4e1b",
        b"x-access-token:***@github.com",
    ],
)
def test_placeholders_and_near_misses_are_left_alone(line: bytes) -> None:
    assert redact(line) == (line, 0)


def test_ci_log_without_secrets_comes_back_identical() -> None:
    log = _ci_log()
    assert log.count(b"\n") >= 300
    assert redact(log) == (log, 0)


def test_bytearray_input_gives_bytes() -> None:
    example = PATTERNS[0].example
    assert redact(bytearray(example)) == (PATTERNS[0].masked, 1)
    assert type(redact(bytearray(b"nothing here"))[0]) is bytes


def test_redacting_twice_changes_nothing_more() -> None:
    body = _ci_log() + b"".join(p.example for p in PATTERNS) + _ci_log()
    once, count = redact(body)
    assert count == len(PATTERNS)
    assert redact(once) == (once, 0)


def _has_trigger(data: bytes) -> bool:
    lowered = data.lower()
    return any(trigger in lowered for trigger in TRIGGERS)


# Fragments that get close to the patterns without completing a trigger, so
# random inputs exercise the edges rather than only plain text.
_NEAR_MISSES = st.sampled_from(
    [b"-----BEGI", b"PRIVATE KEY-----", b"AKI", b"gh", b"_", b"glpat", b"xo", b"ey", b"J",
     b"pass", b"secre", b"toke", b"ap", b"=", b":", b"//", b"@", b'"', b"'", b" ", b"\n", b"\\n",
     b"-----END ", b".", b"[REDACTED]", b"A" * 20, b"0123456789abcdef" * 3]
)
_INPUTS = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=500).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.lists(st.one_of(_NEAR_MISSES, st.binary(max_size=8)), max_size=60).map(b"".join),
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.filter_too_much])
@given(_INPUTS.filter(lambda data: not _has_trigger(data)))
def test_input_without_a_trigger_is_never_changed(data: bytes) -> None:
    assert redact(data) == (data, 0)


# Inputs that do contain triggers and secrets, in any case and any order.
_PIECES = st.sampled_from(
    [p.example for p in PATTERNS]
    + [b"PassWord", b"TOKEN", b"Secret_Key", b"API-KEY", b"aws_SECRET_access_KEY", b"= ", b": ",
       b'"', b"hunter2", b"***", b"[REDACTED]", b"${X}", b"://", b"u:p@h", b"eyJ", b"ghp_", b"\n"]
)
_NAMES = [b"password", b"passwd", b"secret", b"secret_key", b"secret-access-key", b"token",
          b"access_token", b"api_key", b"apikey", b"api-key", b"aws_secret_access_key"]


def _any_case(word: bytes) -> st.SearchStrategy[bytes]:
    flips = st.lists(st.booleans(), min_size=len(word), max_size=len(word))
    return flips.map(lambda up: b"".join(word[i : i + 1].upper() if u else word[i : i + 1] for i, u in enumerate(up)))


_ASSIGNMENTS = st.tuples(
    st.sampled_from([b"", b"DB_", b"x-", b'"', b"?"]),
    st.sampled_from(_NAMES).flatmap(_any_case),
    st.sampled_from([b"=", b" = ", b":", b": ", b'": "', b"==", b"::", b"=>"]),
    st.sampled_from([b"hunter2", b"expired", b"***", b"[REDACTED]", b"${{ x }}", b"p@ss",
                     b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", b"", b"a b", b'"q"']),
).map(b"".join)
_SECRET_INPUTS = st.lists(
    st.one_of(_PIECES, _ASSIGNMENTS, _NEAR_MISSES, st.binary(max_size=6)), max_size=40
).map(b"".join)


@settings(max_examples=300)
@given(_SECRET_INPUTS)
def test_redact_never_raises_and_is_idempotent(data: bytes) -> None:
    once, count = redact(data)
    assert count >= 0
    assert redact(once) == (once, 0)


@settings(max_examples=300)
@given(_SECRET_INPUTS)
def test_anchored_search_finds_what_finditer_finds(data: bytes) -> None:
    # redact looks for case-insensitive patterns only where their first word
    # occurs; that shortcut must not change which matches are found. The
    # density cut-off is patched out so short inputs take the shortcut too.
    with mock.patch.object(redact_module, "MIN_BYTES_PER_ANCHOR", 0):
        for pattern in PATTERNS:
            fast = [m.span() for m in redact_module._matches(pattern, data, data.lower())]
            assert fast == [m.span() for m in pattern.regex.finditer(data)], pattern.name


_BASE64_LINE = b"MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi3Z1gY0nF6mJMiFkXq0v2BnbDN\n"
_HOSTILE = {
    "pem-begin-without-end": b"-----BEGIN RSA PRIVATE KEY-----" * (HOSTILE_BYTES // 31),
    "pem-begin-lines-without-end": b"-----BEGIN RSA PRIVATE KEY-----\n" * (HOSTILE_BYTES // 32),
    "pem-body-without-end": b"-----BEGIN RSA PRIVATE KEY-----\n" + _BASE64_LINE * (HOSTILE_BYTES // 65),
    "pem-many-short-blocks-without-end": (b"-----BEGIN PRIVATE KEY-----\n" + _BASE64_LINE * 3) * 4000,
    "pem-dashes": b"-----BEGIN PRIVATE KEY-----\n" + b"-" * HOSTILE_BYTES,
    "pem-body-of-newlines": b"-----BEGIN PRIVATE KEY-----\n" + b"\n" * HOSTILE_BYTES + b"-----END",
    "jwt-prefix-repeated": b"eyJ" * (HOSTILE_BYTES // 3),
    "jwt-segments-repeated": b"eyJa." * (HOSTILE_BYTES // 5),
    "jwt-long-segment": b"eyJ" + b"A" * HOSTILE_BYTES,
    "password-repeated": b"password=" * 100_000,
    "assignment-names-dense": b"apiTokenPASSWsecret" * (HOSTILE_BYTES // 19),
    "password-colon-repeated": b"password: " * 100_000,
    "token-colon-words": b"token: " + b"a" * HOSTILE_BYTES,
    "quoted-value-repeated": b'"password": "' * 100_000,
    "url-without-at": b"://" + b"a" * HOSTILE_BYTES,
    "url-userinfo-repeated": b"://a:b" * (HOSTILE_BYTES // 6),
    "uppercase-run": b"A" * HOSTILE_BYTES,
    "akia-repeated": b"AKIA" * (HOSTILE_BYTES // 4),
    "github-prefix-repeated": b"ghp_" * (HOSTILE_BYTES // 4),
    "github-long-token": b"ghp_" + b"a" * HOSTILE_BYTES,
    "slack-webhook-repeated": b"hooks.slack.com/services/" * (HOSTILE_BYTES // 25),
    "aws-secret-repeated": b"aws_secret_access_key=" * (HOSTILE_BYTES // 22),
}


@pytest.mark.parametrize("data", _HOSTILE.values(), ids=_HOSTILE.keys())
def test_hostile_input_finishes(data: bytes) -> None:
    with hang_guard():
        out, count = redact(data)
    # Masking only ever shortens a long secret to MASK or keeps the bytes.
    assert count >= 0
    assert len(out) <= len(data) + count * len(MASK)

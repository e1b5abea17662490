"""The browser door on the real server's real HTTP port: the form at ``/``,
its 303 to a one-time notice, the delete button, errors as pages, the
cross-site refusal; and that curl's answers stay exactly what they were.
(Chromium drives the same pages in test_browser_form.py.)"""

from __future__ import annotations

import html
import re
import subprocess

import pytest
import trio
from test_workers import wait_until

from ncpaste.core.ingest import PasteBuilder
from ncpaste.core.pages import FORM_SCRIPT, FORM_SCRIPT_HASH, PAGE_STYLE_HASH
from ncpaste.core.view import sha256_source
from ncpaste.net.multipart import FormPaste

from conftest import TEST_TIMEOUT_S, fetch, key_of, start_server

# What Chromium sends when it navigates (a form post or a link).
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"}
BOUNDARY = "----WebKitFormBoundary7MA4YWxkTrZu0gW"


def form_body(fields: list[tuple[str, bytes]], files: list[tuple[str, str, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    """A multipart body as a browser builds it from the form."""
    parts = []
    for name, value in fields:
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n")
    for name, filename, value in files:
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: text/plain\r\n\r\n".encode() + value + b"\r\n"
        )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def browser_post(port: int, body: bytes, origin: str | None = "same", **extra: str) -> dict[str, str]:
    headers = {**BROWSER, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **extra}
    if origin == "same":
        headers["Origin"] = f"http://127.0.0.1:{port}"
    elif origin is not None:
        headers["Origin"] = origin
    return headers


async def post_form(port: int, paste: bytes, *, expire: bytes = b"1w", alias: bytes = b"", burn: bool = False,
                    origin: str | None = "same"):  # type: ignore[no-untyped-def]
    fields = [("paste", paste), ("expire", expire), ("alias", alias)] + ([("burn", b"1")] if burn else [])
    body = form_body(fields)
    return await fetch(port, "POST", "/", body, browser_post(port, body, origin))


def notice_token(page: bytes) -> str | None:
    match = re.search(rb'<code id="token">([^<]+)</code>', page)
    return match.group(1).decode() if match else None


def error_line(page: bytes) -> str:
    match = re.search(rb'<p class="x" id="error">(.*?)</p>', page)
    assert match, page[:300]
    return html.unescape(match.group(1).decode())


# -- GET / --------------------------------------------------------------------------------


async def test_curl_gets_the_usage_text_and_a_browser_the_form(server):
    port = server.http_port
    text = await fetch(port, "GET", "/")
    assert text.status == 200 and text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.body.startswith(b"ncpaste: pipe text in, get a URL out.\n") and b"<html" not in text.body
    assert (await fetch(port, "GET", "/", headers={"Accept": "*/*"})).body == text.body
    assert (await fetch(port, "GET", "/", headers={"Accept": "text/plain"})).body == text.body

    page = await fetch(port, "GET", "/", headers=BROWSER)
    assert page.status == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["vary"] == "accept" and text.headers["vary"] == "accept"
    policy = page.headers["content-security-policy"]
    assert policy.startswith("default-src 'none'; ") and "form-action 'self'" in policy
    assert f"script-src '{FORM_SCRIPT_HASH}'" in policy and f"style-src '{PAGE_STYLE_HASH}'" in policy
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    # The hashes are of what the page carries: the browser runs exactly that.
    script = re.search(rb"<script>(.*?)</script>", page.body, re.S).group(1).decode()
    assert script == FORM_SCRIPT and sha256_source(script) == FORM_SCRIPT_HASH
    style = re.search(rb"<style>(.*?)</style>", page.body, re.S).group(1).decode()
    assert sha256_source(style) == PAGE_STYLE_HASH
    assert b'method="post"' in page.body and b'enctype="multipart/form-data"' in page.body
    assert b'<textarea name="paste"' in page.body
    # Expiry presets up to the server's maximum; the default chosen.
    assert b'<option value="1w" selected>1w (default)</option>' in page.body
    assert b'<option value="90d">90d (longest)</option>' in page.body
    # The terminal usage below, escaped, with the real host and ports.
    assert html.escape(text.body.decode(), quote=True).encode() in page.body
    assert (await fetch(port, "HEAD", "/", headers=BROWSER)).body == b""


async def test_the_form_offers_only_expiries_within_the_maximum(nursery, config, clock):
    server = await start_server(nursery, config, clock, default_expire_s=3600, max_expire_s=86400)
    page = (await fetch(server.http_port, "GET", "/", headers=BROWSER)).body
    values = re.findall(rb'<option value="([^"]+)"', page)
    assert values == [b"10m", b"1h", b"1d"]
    assert b'value="1h" selected' in page and b"1d (longest)" in page


# -- POST from the form: 303 and the one-time notice ---------------------------------------


async def test_form_post_lands_on_the_view_with_the_token_shown_once(server):
    port = server.http_port
    posted = await post_form(port, b"first line\r\nsecond line\r\n")
    assert posted.status == 303
    location = posted.headers["location"]
    key, _, handle = location.partition("?created=")
    assert handle and "/" not in location  # relative: the form's own site
    assert "x-delete-token" not in posted.headers and "set-cookie" not in posted.headers
    # curl reads the exact text typed, line endings as LF.
    assert (await fetch(port, "GET", "/" + key)).body == b"first line\nsecond line\n"

    landing = await fetch(port, "GET", "/" + location, headers=BROWSER)
    assert landing.status == 200 and landing.headers["cache-control"] == "no-store"
    assert "form-action 'self'" in landing.headers["content-security-policy"]
    assert "set-cookie" not in landing.headers
    token = notice_token(landing.body)
    assert token and f"http://127.0.0.1:{port}/{key}".encode() in landing.body
    assert b'id="L1"' in landing.body  # the view itself, below the notice
    # Once: the same address again (a reload, a shared copy) shows the view only.
    again = await fetch(port, "GET", "/" + location, headers=BROWSER)
    assert again.status == 200 and notice_token(again.body) is None and b'id="L1"' in again.body
    # The token shown is the paste's real delete token (DELETE stays the API).
    deleted = await fetch(port, "DELETE", "/" + key, headers={"X-Delete-Token": token})
    assert deleted.status == 204 and (await fetch(port, "GET", "/" + key)).status == 404


async def test_only_the_browser_takes_the_notice_and_only_on_its_own_paste(server):
    port = server.http_port
    posted = await post_form(port, b"mine\n")
    key, _, handle = posted.headers["location"].partition("?created=")
    other = key_of((await fetch(port, "POST", "/", b"someone else's\n")).body)
    # curl on the landing address gets the bytes and leaves the notice.
    plain = await fetch(port, "GET", f"/{key}?created={handle}")
    assert plain.body == b"mine\n"
    # Another paste's address does not show it, nor take it...
    elsewhere = await fetch(port, "GET", f"/{other}?created={handle}", headers=BROWSER)
    assert elsewhere.status == 200 and notice_token(elsewhere.body) is None
    # ... and naming another paste as a notice neither shows nor deletes it.
    crafted = await fetch(port, "GET", f"/{key}?created={other}", headers=BROWSER)
    assert notice_token(crafted.body) is None
    assert (await fetch(port, "GET", "/" + other)).body == b"someone else's\n"
    assert notice_token((await fetch(port, "GET", f"/{key}?created={handle}", headers=BROWSER)).body)


async def test_a_burn_after_read_paste_from_the_form_keeps_its_one_read(server):
    port = server.http_port
    posted = await post_form(port, b"read me once\n", burn=True)
    key = posted.headers["location"].partition("?")[0]
    landing = await fetch(port, "GET", "/" + posted.headers["location"], headers=BROWSER)
    assert landing.status == 200 and notice_token(landing.body)
    assert b"burn after read" in landing.body and b'id="L1"' not in landing.body
    assert (await fetch(port, "GET", "/" + key)).body == b"read me once\n"
    assert (await fetch(port, "GET", "/" + key)).status == 404


async def test_text_box_line_endings_become_lf_but_files_and_curl_keep_their_bytes(server):
    port = server.http_port
    crlf = b"a\r\nb\r\n\r\nlone\rcr\r\n"
    # The browser's text box: CRLF (the browser's doing) back to LF; a lone CR stays.
    key = (await post_form(port, crlf)).headers["location"].partition("?")[0]
    assert (await fetch(port, "GET", "/" + key)).body == b"a\nb\n\nlone\rcr\n"
    # A file chosen in a browser form: byte for byte.
    body = form_body([("expire", b"1h")], [("f", "win.log", crlf)])
    key = (await fetch(port, "POST", "/", body, browser_post(port, body))).headers["location"].partition("?")[0]
    assert (await fetch(port, "GET", "/" + key)).body == crlf
    # curl -F 'f=<file' (no browser Accept): byte for byte, as always.
    body = form_body([("paste", crlf)])
    reply = await fetch(port, "POST", "/", body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert reply.status == 201
    assert (await fetch(port, "GET", "/" + key_of(reply.body))).body == crlf


def test_text_box_normalisation_holds_across_any_chunking():
    text = b"x\r\n" * 50 + b"end\r" + b"\r\n\r\r\n"
    body = form_body([("paste", text)])
    expected = text.replace(b"\r\n", b"\n")
    for size in (1, 2, 3, 7, 64, len(body)):
        builder = PasteBuilder(1 << 20)
        form = FormPaste(BOUNDARY.encode(), builder, text_box=True)
        for start in range(0, len(body), size):
            form.feed(body[start : start + size])
        form.finish()
        assert bytes(builder.finish()[1]) == expected, size


async def test_empty_fields_from_the_form_mean_not_set_but_curl_keeps_its_errors(server):
    port = server.http_port
    body = form_body([("paste", b"x\n"), ("alias", b""), ("expire", b"")])
    assert (await fetch(port, "POST", "/", body, browser_post(port, body))).status == 303
    reply = await fetch(port, "POST", "/", body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert reply.status == 400 and reply.body.startswith(b"error: ")


async def test_curl_creates_answer_exactly_as_before(server):
    port = server.http_port
    reply = await fetch(port, "POST", "/", b"plain\n")
    assert reply.status == 201 and reply.body == f"http://127.0.0.1:{port}/{key_of(reply.body)}\n".encode()
    assert set(reply.headers) == {"content-type", "location", "x-delete-token", "x-expires", "content-length"}


# -- the delete button ------------------------------------------------------------------


async def test_the_delete_button_deletes_with_the_token_and_only_with_it(server):
    port = server.http_port
    posted = await post_form(port, b"to delete\n")
    key = posted.headers["location"].partition("?")[0]
    landing = (await fetch(port, "GET", "/" + posted.headers["location"], headers=BROWSER)).body
    token = notice_token(landing)
    assert token and f'<form method="post" action="{key}">'.encode() in landing
    form = {**BROWSER, "Content-Type": "application/x-www-form-urlencoded", "Origin": f"http://127.0.0.1:{port}"}
    wrong = await fetch(port, "POST", "/" + key, b"token=not-the-token", form)
    assert wrong.status == 403 and error_line(wrong.body).startswith("error: ")
    assert (await fetch(port, "GET", "/" + key)).status == 200
    # Another site's page cannot press it, even with the token.
    cross = await fetch(port, "POST", "/" + key, f"token={token}".encode(), {**form, "Origin": "http://evil.example"})
    assert cross.status == 403 and "cross-site" in error_line(cross.body)
    done = await fetch(port, "POST", "/" + key, f"token={token}".encode(), form)
    assert done.status == 200 and b"<h1>Deleted</h1>" in done.body
    assert (await fetch(port, "GET", "/" + key)).status == 404
    # Not a form: told to use DELETE.
    odd = await fetch(port, "POST", "/" + key, b"{}", {"Content-Type": "application/json"})
    assert odd.status == 415 and b"X-Delete-Token" in odd.body


# -- errors as pages ---------------------------------------------------------------------


async def same_error_as_page(port: int, body: bytes, text_headers: dict[str, str], expect: int) -> str:
    """The browser's page says the one-line message curl gets, with the same status."""
    text = await fetch(port, "POST", "/", body, text_headers)
    page = await fetch(port, "POST", "/", body, browser_post(port, body))
    assert text.status == page.status == expect, (text.body, page.status)
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    line = error_line(page.body)
    assert line == text.body.decode().rstrip("\n")
    return line


async def test_every_refusal_is_a_readable_page_with_the_same_message(nursery, config, clock):
    server = await start_server(nursery, config, clock, max_paste_bytes=1024)
    port = server.http_port
    multipart = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    assert "too large" in await same_error_as_page(port, form_body([("paste", b"x" * 2000)]), multipart, 413)
    assert "text" in await same_error_as_page(port, form_body([("paste", b"bin\x00ary")]), multipart, 415)
    await fetch(port, "PUT", "/taken-name", b"first\n")
    taken = form_body([("paste", b"second\n"), ("alias", b"taken-name")])
    assert "taken-name" in await same_error_as_page(port, taken, multipart, 409)
    assert "alias" in await same_error_as_page(port, form_body([("paste", b"x\n"), ("alias", b"a b")]), multipart, 400)
    missing = await fetch(port, "GET", "/nosuchpaste", headers=BROWSER)
    assert missing.status == 404 and error_line(missing.body).startswith("error: no such paste")
    assert "script-src" not in missing.headers["content-security-policy"]  # the pages run nothing


async def test_rate_limited_page_says_when_to_retry(nursery, config, clock):
    server = await start_server(nursery, config, clock, pastes_per_minute=1)
    port = server.http_port
    assert (await post_form(port, b"one\n")).status == 303
    refused = await post_form(port, b"two\n")
    assert refused.status == 429 and int(refused.headers["retry-after"]) >= 1
    assert error_line(refused.body).startswith("error: rate limited")
    assert f"Try again in {refused.headers['retry-after']} s".encode() in refused.body


# -- another site's page -----------------------------------------------------------------


async def test_another_sites_page_cannot_paste_in_the_visitors_name(server):
    port = server.http_port
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{port + 1}"):
        refused = await post_form(port, b"spam\n", origin=origin)
        assert refused.status == 403, origin
        assert "cross-site" in error_line(refused.body)
    body = form_body([("paste", b"spam\n")])
    sec = await fetch(port, "POST", "/", body, browser_post(port, body, None, **{"Sec-Fetch-Site": "cross-site"}))
    assert sec.status == 403
    # The site itself, by its configured URL or by the name it was reached at.
    assert (await post_form(port, b"ok\n")).status == 303
    assert (await post_form(port, b"ok\n", origin=None)).status == 303
    ok = await fetch(port, "POST", "/", body, {**browser_post(port, body, f"http://localhost:{port}"),
                                                "Host": f"localhost:{port}"})
    assert ok.status == 303
    # curl sends no Origin: scripts paste as always.
    assert (await fetch(port, "POST", "/", b"from a script\n")).status == 201


async def test_real_curl_follows_the_form_to_the_notice(server):
    """curl -L with a browser's Accept, as a person testing the form from a shell would."""
    port = server.http_port
    with trio.fail_after(TEST_TIMEOUT_S):
        result = await trio.run_process(
            ["curl", "-s", "-L", "-H", f"Accept: {BROWSER['Accept']}", "-H", f"Origin: http://127.0.0.1:{port}",
             "-F", "paste=hello from curl", "-F", "expire=1h", f"http://127.0.0.1:{port}/"],
            capture_stdout=True, stderr=subprocess.DEVNULL,
        )
    assert notice_token(result.stdout) and b"hello from curl" in result.stdout


@pytest.mark.slow
def test_the_notice_reaches_the_browser_whichever_worker_serves_the_landing(cli_server):
    """With --workers 2 the 303's GET comes on a new connection, often to the
    other process (the kernel spreads connections over the two listeners:
    all twelve landings on the worker that took their post has odds of
    1 in 4,096): the notice lives in the store, so it is shown all the same."""
    import http.client

    server = cli_server("--workers", "2", "--limits", "off")
    wait_until(lambda: "2 workers serving" in server.log_text())
    port = server.http_port
    for n in range(12):
        body = form_body([("paste", b"from worker test %d\r\n" % n)])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TEST_TIMEOUT_S)
        conn.request("POST", "/", body, browser_post(port, body))
        posted = conn.getresponse()
        posted.read()
        conn.close()
        assert posted.status == 303
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TEST_TIMEOUT_S)
        conn.request("GET", "/" + posted.getheader("location"), headers=BROWSER)
        landing = conn.getresponse()
        page = landing.read()
        conn.close()
        assert landing.status == 200 and notice_token(page), n

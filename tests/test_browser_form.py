"""The paste form at ``/`` in a real headless Chromium (Debian's), driven by
Playwright: with and without JavaScript, read back with the real curl."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import datetime

import pytest

from conftest import CHROMIUM, REPO

CURL = shutil.which("curl")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed"),
    pytest.mark.skipif(CURL is None, reason="curl not installed"),
]

TIMEOUT_MS = 15000
KEY_PATH = re.compile(r"^/([A-Za-z0-9._-]+)$")
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">\n'


@pytest.fixture
def new_page(browser):
    """A fresh context (JS on or off) and its page; both closed after the test."""
    contexts = []

    def make(*, js: bool = True, **options):
        context = browser.new_context(java_script_enabled=js, **options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.console_errors = []  # type: ignore[attr-defined]
        page.on("console", lambda msg: page.console_errors.append(msg.text) if msg.type == "error" else None)
        return context, page

    yield make
    for context in contexts:
        context.close()


def curl(*args: str) -> bytes:
    return subprocess.run([CURL, "-s", "--max-time", "10", *args], check=True, capture_output=True, timeout=15).stdout


def status_of(url: str) -> int:
    return int(curl("-o", "/dev/null", "-w", "%{http_code}", url))


def created_count(server) -> float:
    """How many pastes the HTTP port created (from /metrics)."""
    text = curl(server.base_url + "/metrics").decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("ncpaste_pastes_total{") and 'outcome="created"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def key_of(page) -> str:
    path = path_of(page.url).split("?", 1)[0]
    match = KEY_PATH.match(path)
    assert match, page.url
    return match.group(1)


def csp_errors(page) -> list[str]:
    return [e for e in page.console_errors if "Content Security Policy" in e]


def submit(page, selector: str = "#send"):
    """Click a submit button and return the response of the navigation it causes."""
    with page.expect_navigation() as nav:
        page.click(selector)
    return nav.value


# -- the form page ----------------------------------------------------------------


def test_form_page_shape_csp_and_curl_still_gets_text(cli_server, new_page):
    server = cli_server("--limits", "off")
    _, page = new_page()
    response = page.goto(server.base_url + "/")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp
    assert re.search(r"script-src 'sha256-[^']+'", csp) and re.search(r"style-src 'sha256-[^']+'", csp)
    form = page.locator("form#f")
    assert form.get_attribute("method") == "post" and form.get_attribute("action") == "."
    assert form.get_attribute("enctype") == "multipart/form-data"
    assert page.locator("textarea#paste[name=paste]").count() == 1
    values = page.locator("#expire option").evaluate_all("os => os.map(o => o.value)")
    for value in ("10m", "1h", "1d", "7d", "30d", "90d"):
        assert value in values or (value == "7d" and "1w" in values), values
    selected = page.locator("#expire option:checked")
    assert "(default)" in selected.inner_text()
    assert "(longest)" in page.locator("#expire option").last.inner_text()
    assert page.locator("input#alias[name=alias]").get_attribute("pattern")
    assert page.locator("#burn").get_attribute("value") == "1" and page.locator("#redact").get_attribute("value") == "1"
    assert page.locator("#send").count() == 1
    assert page.locator("#e").is_hidden()
    assert "nc" in page.locator("pre").inner_text()
    assert not csp_errors(page), page.console_errors
    # curl (no browser Accept) still gets the plain-text usage.
    usage = curl(server.base_url + "/")
    assert b"<html" not in usage.lower() and b"<form" not in usage
    assert usage.strip()


# -- the happy path -------------------------------------------------------------


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_paste_from_form_lf_unicode_one_time_notice_and_delete(cli_server, new_page, js):
    server = cli_server("--limits", "off")
    context, page = new_page(js=js)
    page.goto(server.base_url + "/")
    text = "line 1\nline 2\nnaïve ✓ 日本\n"
    page.fill("#paste", text)
    response = submit(page)
    assert response.status == 200
    # The 303 from the form post, and its relative Location.
    redirected = response.request.redirected_from
    assert redirected is not None and redirected.method == "POST"
    first = redirected.response()
    assert first.status == 303
    location = first.headers["location"]
    assert re.fullmatch(r"[A-Za-z0-9._-]+\?created=\S+", location), location
    key = location.split("?", 1)[0]
    if js:
        assert page.url == f"{server.base_url}/{key}"  # replaceState dropped ?created=
    else:
        assert page.url.startswith(f"{server.base_url}/{key}?created=")
    # The paste view, with the one-time notice.
    assert page.locator("#L1").count() == 1 and page.locator("#L3").count() == 1
    notice = page.locator("section.nt#notice")
    assert notice.count() == 1
    share = f"{server.base_url}/{key}"
    assert share in notice.inner_text()
    token = page.locator("#notice code#token").inner_text().strip()
    assert token
    assert context.cookies() == []
    assert not csp_errors(page), page.console_errors
    # The bytes, exactly: the browser's CRLF is LF again.
    assert curl(share) == text.encode()
    # One time only: a reload and a fresh open show no notice.
    page.reload()
    assert page.locator("#notice").count() == 0
    page.goto(share)
    assert page.locator("#notice").count() == 0
    page.goto(f"{server.base_url}/{location}")
    assert page.locator("#notice").count() == 0
    assert page.locator("#L1").count() == 1
    # The delete button, on the landing page of a second paste.
    page.goto(server.base_url + "/")
    page.fill("#paste", "to delete\n")
    submit(page)
    doomed = key_of(page)
    response = submit(page, "#notice form button")
    assert response.status == 200
    assert page.locator("h1").inner_text() == "Deleted"
    assert status_of(f"{server.base_url}/{doomed}") == 404
    assert curl(share) == text.encode()  # the other paste is untouched
    assert context.cookies() == []
    if js and os.environ.get("NCPASTE_SCREENSHOT") == "1":
        screenshot(server, context.browser)


def screenshot(server, browser) -> None:
    """docs/browser-form.png: the form with a CI log typed in."""
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server.base_url + "/")
        page.fill(
            "#paste",
            "$ make test\n"
            ".venv/bin/pytest -q\n"
            "........................................................ [ 85%]\n"
            ".........                                                [100%]\n"
            "12 passed in 0.41s\n",
        )
        (REPO / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "browser-form.png"))
    finally:
        context.close()


def test_ctrl_enter_submits(cli_server, new_page):
    server = cli_server("--limits", "off")
    _, page = new_page(js=True)
    page.goto(server.base_url + "/")
    page.fill("#paste", "sent with ctrl+enter\n")
    with page.expect_navigation():
        page.press("#paste", "Control+Enter")
    key = key_of(page)
    assert page.locator("#notice").count() == 1
    assert curl(f"{server.base_url}/{key}") == b"sent with ctrl+enter\n"


def test_drop_a_file_on_the_text_box(cli_server, new_page):
    server = cli_server("--limits", "off")
    _, page = new_page(js=True)
    page.goto(server.base_url + "/")
    page.evaluate(
        """() => {
            const dt = new DataTransfer();
            dt.items.add(new File(["dropped\\nfile ✓\\n"], "log.txt", {type: "text/plain"}));
            document.getElementById("paste").dispatchEvent(
                new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
        }"""
    )
    page.wait_for_function("document.getElementById('paste').value.length > 0")
    assert page.input_value("#paste") == "dropped\nfile ✓\n"
    submit(page)
    assert curl(f"{server.base_url}/{key_of(page)}") == "dropped\nfile ✓\n".encode()


# -- burn after read --------------------------------------------------------------


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_burn_after_read_shows_notice_alone_and_leaves_one_read(cli_server, new_page, js):
    server = cli_server("--limits", "off")
    context, page = new_page(js=js)
    page.goto(server.base_url + "/")
    page.fill("#paste", "secret line\nsecond\n")
    page.check("#burn")
    submit(page)
    key = key_of(page)
    assert page.locator("#notice").count() == 1
    assert page.locator("#notice code#token").inner_text().strip()
    assert page.locator("#L1").count() == 0
    assert "secret line" not in page.locator("body").inner_text()
    assert context.cookies() == []
    url = f"{server.base_url}/{key}"
    assert curl(url) == b"secret line\nsecond\n"
    assert status_of(url) == 404


# -- paste content never runs -------------------------------------------------


def test_script_in_the_paste_never_runs(cli_server, new_page):
    server = cli_server("--limits", "off")
    _, page = new_page(js=True)
    page.goto(server.base_url + "/")
    form_errors = csp_errors(page)
    page.fill("#paste", XSS)
    submit(page)
    key = key_of(page)
    page.wait_for_timeout(200)
    assert page.evaluate("window.__pwned") is None
    assert "<script>window.__pwned=1</script>" in page.locator("#L1").inner_text()
    landing_errors = csp_errors(page)
    page.goto(f"{server.base_url}/{key}")
    page.wait_for_timeout(200)
    assert page.evaluate("window.__pwned") is None
    assert not form_errors and not landing_errors, page.console_errors
    assert curl(f"{server.base_url}/{key}") == XSS.encode()


# -- alias and expiry ---------------------------------------------------------


def test_alias_and_expiry_then_taken_alias_is_a_409_page(cli_server, new_page):
    server = cli_server("--limits", "off")
    _, page = new_page(js=True)
    page.goto(server.base_url + "/")
    page.fill("#paste", "build log\n")
    page.fill("#alias", "build-42")
    page.select_option("#expire", "1h")
    submit(page)
    assert path_of(page.url) == "/build-42"
    url = f"{server.base_url}/build-42"
    assert curl(url) == b"build log\n"
    meta = json.loads(curl(url + "?meta"))
    created = datetime.fromisoformat(meta["created"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(meta["expires"].replace("Z", "+00:00"))
    assert abs((expires - created).total_seconds() - 3600) <= 5, meta
    # The same alias again: an error page, 409.
    before = created_count(server)
    page.goto(server.base_url + "/")
    page.fill("#paste", "another\n")
    page.fill("#alias", "build-42")
    response = submit(page)
    assert response.status == 409
    assert response.headers["content-type"].startswith("text/html")
    error = page.locator("#error").inner_text()
    assert error.startswith("error: ") and "build-42" in error, error
    assert not csp_errors(page), page.console_errors
    assert created_count(server) == before
    assert curl(url) == b"build log\n"


# -- the size limit -------------------------------------------------------------


def test_too_large_is_a_413_page_without_js(cli_server, new_page):
    server = cli_server("--limits", "off", "--max-size", "1KiB")
    _, page = new_page(js=False)
    page.goto(server.base_url + "/")
    before = created_count(server)
    page.fill("#paste", "x" * 2000)
    response = submit(page)
    assert response.status == 413
    assert page.locator("#error").inner_text() == "error: paste too large: the limit is 1 KiB"
    assert created_count(server) == before


def test_too_large_is_refused_before_sending_with_js(cli_server, new_page):
    server = cli_server("--limits", "off", "--max-size", "1KiB")
    _, page = new_page(js=True)
    requests: list[str] = []
    page.goto(server.base_url + "/")
    page.on("request", lambda r: requests.append(r.method))
    before = created_count(server)
    page.fill("#paste", "x" * 2000)
    page.click("#send")
    page.wait_for_selector("#e", state="visible")
    assert page.locator("#e").inner_text() == "error: paste too large: the limit is 1 KiB"
    assert path_of(page.url) == "/"
    assert "POST" not in requests
    assert created_count(server) == before
    # Typing again clears the message; a paste within the limit goes through.
    page.fill("#paste", "x" * 1000)
    assert page.locator("#e").is_hidden()
    submit(page)
    assert curl(f"{server.base_url}/{key_of(page)}") == b"x" * 1000


def test_size_check_counts_line_endings_as_lf(cli_server, new_page):
    """1024 bytes with LF (which is 1024 + 511 with CRLF) fits: the browser's
    CRLF must not count against the limit, with or without the script."""
    server = cli_server("--limits", "off", "--max-size", "1KiB")
    text = "x\n" * 512
    for js in (True, False):
        _, page = new_page(js=js)
        page.goto(server.base_url + "/")
        page.fill("#paste", text)
        response = submit(page)
        assert response.status == 200, (js, page.locator("body").inner_text())
        assert curl(f"{server.base_url}/{key_of(page)}") == text.encode()


# -- cross-site posts ------------------------------------------------------------


def test_cross_site_post_is_refused(cli_server, new_page):
    server = cli_server("--limits", "off")
    _, page = new_page(js=True)
    before = created_count(server)
    page.set_content(
        f'<form method=post action="{server.base_url}/" enctype="multipart/form-data">'
        "<textarea name=paste>x</textarea><button id=b>go</button></form>"
    )
    response = submit(page, "#b")
    assert response.status == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "cross-site" in page.locator("body").inner_text()
    assert created_count(server) == before

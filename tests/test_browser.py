"""The HTML view in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import pytest

from conftest import CHROMIUM, paste_blocking

pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")]

def make_log() -> bytes:
    lines = [f"line {n}: plain text" for n in range(1, 101)]
    lines[9] = "\x1b[31mline 10: red error\x1b[0m and \x1b[1;32mbold green\x1b[0m"
    lines[19] = "progress 10%\rprogress 50%\rprogress 100%"
    lines[29] = "<script>window.__pwned = 1</script> <img src=x onerror=\"window.__pwned=2\">"
    return ("\n".join(lines) + "\n").encode()


def test_view_renders_lines_anchors_colours_and_never_runs_paste_content(cli_server, browser):
    server = cli_server("--limits", "off")
    url = paste_blocking(server.tcp_port, make_log()).decode().strip()
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(url + "#L42")
    # Line numbers and anchors.
    assert page.locator("#L1").count() == 1 and page.locator("#L100").count() == 1
    assert page.locator("#L42").evaluate("el => el.matches(':target')")
    highlighted = page.locator("#L42").evaluate("el => getComputedStyle(el).backgroundColor")
    normal = page.locator("#L41").evaluate("el => getComputedStyle(el).backgroundColor")
    assert highlighted != normal
    # ANSI colours applied, escape codes never shown.
    red = page.locator("#L10 span:text('line 10: red error')")
    assert red.evaluate("el => getComputedStyle(el).color") in ("rgb(205, 49, 49)", "rgb(187, 0, 0)",
                                                               "rgb(205, 0, 0)", "rgb(194, 54, 33)") or \
        red.evaluate("el => getComputedStyle(el).color") != page.locator("#L11 .t").evaluate(
            "el => getComputedStyle(el).color")
    assert "\x1b" not in page.locator("body").inner_text()
    assert "[31m" not in page.locator("body").inner_text()
    # \r progress lines show their final state.
    assert page.locator("#L20 .t").inner_text() == "progress 100%"
    # The paste's HTML is text, and never runs.
    assert "<script>window.__pwned = 1</script>" in page.locator("#L30").inner_text()
    assert page.evaluate("window.__pwned") is None
    # A range anchor highlights the range (the small script).
    page.goto(url + "#L5-L8")
    page.wait_for_timeout(200)
    inside = page.locator("#L6").evaluate("el => getComputedStyle(el).backgroundColor")
    outside = page.locator("#L9").evaluate("el => getComputedStyle(el).backgroundColor")
    assert inside != outside
    page.screenshot(path=str(server.data_dir.parent / "view.png"))
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_curl_still_gets_exact_bytes_and_raw_forces_text(cli_server, browser):
    server = cli_server("--limits", "off")
    log = make_log()
    url = paste_blocking(server.tcp_port, log).decode().strip()
    page = browser.new_page()
    response = page.goto(url + "?raw")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.body() == log

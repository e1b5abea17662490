"""Tier 1: the HTML view of a paste (core, no I/O), plus one look in a real browser."""

from __future__ import annotations

import ast
import base64
import hashlib
import html
import re
from dataclasses import FrozenInstanceError, replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ncpaste.core import view
from ncpaste.core.ansi import AnsiState
from ncpaste.core.view import (
    BLOCK_LINES,
    INCOMPLETE_MARKER,
    SCRIPT,
    SCRIPT_HASH,
    STYLE_CSS,
    STYLE_HASH,
    TRUNCATED_MARKER,
    PageInfo,
    csp,
    render_head,
    render_lines,
    render_tail,
)

from conftest import CHROMIUM, CHROMIUM_ARGS

INFO = PageInfo(
    key="k7Qm2xTfL9aR",
    size=48213,
    lines=3,
    expires_http="Sun, 06 Dec 2026 10:00:00 GMT",
    state="complete",
    truncated=None,
    raw_url="/k7Qm2xTfL9aR?raw",
    download_url="/k7Qm2xTfL9aR?raw",
)

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)' x='",
    "</span></div></section></main><script>alert(1)</script>",
    "</style><style>*{background:url(//evil.example/x)}</style>",
    "<!-- --><svg onload=alert(1)>",
    "&lt;script&gt; already escaped &amp; stays literal",
    "javascript:alert(1)",
    "<a href=\"#L1\" onclick=\"alert(1)\">L1</a>",
    "\x1b[31m<b onmouseover=alert(1)>red</b>\x1b[0m",
]


def page(lines: list[str], info: PageInfo = INFO) -> str:
    return render_head(info) + render_lines(lines, 1, AnsiState()) + render_tail(info)


class Markup(HTMLParser):
    """Every element and attribute of a page, its text, and whether tags nest."""

    VOID = {"meta", "input", "br", "img", "link"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.misnested: list[str] = []
        self.raw: dict[str, list[str]] = {"script": [], "style": []}
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.misnested.append(tag)
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] in self.raw:
            self.raw[self.stack[-1]].append(data)
        else:
            self.text.append(data)

    def by_id(self, ident: str) -> dict[str, str | None]:
        found = [attrs for _, attrs in self.tags if attrs.get("id") == ident]
        assert len(found) == 1, (ident, found)
        return found[0]


def sha256_source(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


# --- CSP -----------------------------------------------------------------------


def test_csp_carries_the_exact_hashes_of_the_script_and_the_stylesheet():
    assert SCRIPT_HASH == sha256_source(SCRIPT)
    assert STYLE_HASH == sha256_source(STYLE_CSS)
    directives = {d.split()[0]: d.split()[1:] for d in csp().split("; ")}
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == [f"'{sha256_source(SCRIPT)}'"]
    assert directives["style-src"] == [f"'{sha256_source(STYLE_CSS)}'"]
    # Only style attributes (which cannot run code) are inline-allowed.
    assert directives["style-src-attr"] == ["'unsafe-inline'"]
    for name in ("base-uri", "form-action", "frame-ancestors"):
        assert directives[name] == ["'none'"]
    assert "unsafe-eval" not in csp() and "sandbox" not in csp()


def test_the_page_holds_exactly_the_hashed_script_and_style_and_nothing_else_runs():
    text = page(HOSTILE)
    parsed = Markup(text)
    assert parsed.raw["script"] == [SCRIPT] and parsed.raw["style"] == [STYLE_CSS]
    assert text.count(f"<script>{SCRIPT}</script>") == 1
    assert text.count(f"<style>{STYLE_CSS}</style>") == 1
    # The script and stylesheet are plain ASCII, so what browsers hash is what we hash.
    assert SCRIPT.isascii() and STYLE_CSS.isascii()
    assert "</script" not in SCRIPT and "</style" not in STYLE_CSS


# --- escaping ----------------------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_lines_appear_only_as_text(hostile):
    text = page(["before", hostile, "after"])
    parsed = Markup(text)
    allowed = {"html", "head", "meta", "title", "style", "body", "input", "header", "span",
               "a", "label", "main", "section", "div", "script"}
    assert {tag for tag, _ in parsed.tags} <= allowed
    assert [tag for tag, _ in parsed.tags].count("script") == 1
    assert [tag for tag, _ in parsed.tags].count("style") == 1
    for tag, attrs in parsed.tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        assert not [name for name in attrs if name == "src"], (tag, attrs)
    assert not parsed.misnested and not parsed.stack
    # What a reader sees is the line, character for character (minus SGR codes).
    shown = re.sub(r"\x1b\[[0-9;]*m", "", hostile)
    assert shown in "".join(parsed.text)
    # And in the markup it is escaped.
    line = text.split('id="L2"', 1)[1].split("</div>", 1)[0]
    assert "<script" not in line and "<img" not in line and "<b " not in line
    assert "\x1b" not in text


def test_escaping_is_html_escape_with_quotes():
    out = render_lines(['<a href="x">\'&amp;'], 1, AnsiState())
    assert "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;amp;" in out
    assert '<a href="x">' not in out


def test_page_info_values_are_escaped_too():
    evil = replace(
        INFO,
        key='"><script>alert(1)</script>',
        expires_http="<img src=x onerror=alert(1)>",
        raw_url='x" onclick="alert(1)',
        download_url="y' onmouseover='alert(1)",
    )
    text = render_head(evil) + render_tail(evil)
    parsed = Markup(text)
    assert [tag for tag, _ in parsed.tags].count("script") == 1
    assert "img" not in {tag for tag, _ in parsed.tags}
    for _, attrs in parsed.tags:
        assert not [name for name in attrs if name.startswith("on")]
    links = {attrs.get("href") for tag, attrs in parsed.tags if tag == "a"}
    assert links == {'x" onclick="alert(1)', "y' onmouseover='alert(1)"}
    assert '"><script>alert(1)</script>' in "".join(parsed.text)


# --- lines, anchors, ANSI ------------------------------------------------------


def test_each_line_has_an_id_and_a_link_to_itself():
    out = render_lines(["alpha", "beta", ""], 41, AnsiState())
    assert '<div class="l" id="L41"><a class="n" href="#L41">41</a><span class="t">alpha</span></div>' in out
    assert '<div class="l" id="L42"><a class="n" href="#L42">42</a><span class="t">beta</span></div>' in out
    assert '<div class="l" id="L43"><a class="n" href="#L43">43</a><span class="t"></span></div>' in out
    assert "L44" not in out and "L40" not in out


def test_ansi_colours_become_styled_spans_and_codes_never_show():
    out = render_lines(["ok \x1b[31merror\x1b[0m done", "\x1b[1;32mbold green\x1b[0m"], 1, AnsiState())
    assert "\x1b" not in out and "[31m" not in out and "[0m" not in out
    red = re.search(r'<span style="([^"]*)">error</span>', out)
    assert red and "color:" in red.group(1)
    bold = re.search(r'<span style="([^"]*)">bold green</span>', out)
    assert bold and "color:" in bold.group(1) and "bold" in bold.group(1)
    assert red.group(1) != bold.group(1)
    # Default-styled text carries no span at all: per-line markup stays small.
    assert '<span class="t">ok <span style=' in out
    assert "</span> done</span></div>" in out


def test_span_styles_are_exactly_what_ansi_says():
    line = "a\x1b[38;5;208mb\x1b[48;2;1;2;3;4mc\x1b[7md\x1b[0me"
    expected = "".join(
        f'<span style="{html.escape(style.css())}">{html.escape(text)}</span>' if style.css() else html.escape(text)
        for style, text in AnsiState().spans(line)
        if text
    )
    assert f'<span class="t">{expected}</span>' in render_lines([line], 1, AnsiState())


def test_sgr_state_carries_across_lines_and_calls():
    state = AnsiState()
    first = render_lines(["\x1b[31mred starts"], 1, state)
    second = render_lines(["still red", "\x1b[0mplain"], 2, state)
    style = re.search(r'<span style="([^"]*)">red starts</span>', first).group(1)
    assert f'<span style="{style}">still red</span>' in second
    assert '<span class="t">plain</span>' in second


def test_chunks_render_the_same_as_one_call():
    lines = [f"\x1b[3{n % 8}mline {n}" if n % 3 else f"line {n}\x1b[0m" for n in range(1, 1301)]
    whole = render_lines(lines, 1, AnsiState())
    state, pieces, n = AnsiState(), [], 1
    for size in (1, 7, 492, 1, 499, 300):
        pieces.append(render_lines(lines[n - 1 : n - 1 + size], n, state))
        n += size
    assert "".join(pieces) == whole


# --- blocks of lines and long logs --------------------------------------------


def test_lines_come_in_blocks_of_500_and_the_tail_closes_the_last():
    assert BLOCK_LINES == 500
    info = replace(INFO, lines=1201)
    text = page([f"line {n}" for n in range(1, 1202)], info)
    assert text.count('<section class="b">') == 3 and text.count("</section>") == 3
    blocks = text.split('<section class="b">')[1:]
    assert 'id="L1"' in blocks[0] and 'id="L500"' in blocks[0] and 'id="L501"' not in blocks[0]
    assert 'id="L501"' in blocks[1] and 'id="L1000"' in blocks[1]
    assert 'id="L1001"' in blocks[2] and 'id="L1201"' in blocks[2]
    parsed = Markup(text)
    assert not parsed.misnested and not parsed.stack


@pytest.mark.parametrize("count", [1, 499, 500, 501, 1000])
def test_every_block_is_closed_exactly_once(count):
    info = replace(INFO, lines=count)
    text = page([f"x{n}" for n in range(count)], info)
    parsed = Markup(text)
    assert not parsed.misnested and not parsed.stack
    assert text.count('<section class="b">') == text.count("</section>") == -(-count // 500)


def test_the_stylesheet_keeps_long_logs_cheap():
    assert "content-visibility:auto" in STYLE_CSS
    assert re.search(r"\.b\{[^}]*contain-intrinsic-size:auto none auto \d+px", STYLE_CSS)
    assert ".l:target" in STYLE_CSS
    assert "prefers-color-scheme:dark" in STYLE_CSS
    # No per-line work on load: one small script, listeners on the document only.
    assert len(SCRIPT) < 1500
    assert "querySelectorAll" not in SCRIPT and "getElementsBy" not in SCRIPT


def test_two_hundred_thousand_lines_stay_small():
    lines = [f"step {n:06d} ok" for n in range(200_000)]  # 14 characters each
    body = render_lines(lines, 1, AnsiState())
    size = len(body.encode("utf-8"))
    text = sum(len(line) for line in lines)
    assert body.count("<div") == 200_000 and body.count('<section class="b">') == 400
    assert 'id="L200000"' in body and 'id="L200001"' not in body
    # Markup around a plain line (id, link, span, six-digit numbers): under 100 bytes.
    assert (size - text) / 200_000 < 100
    assert size / 200_000 < 120


# --- head and tail --------------------------------------------------------------


def test_head_has_the_toolbar():
    head = render_head(replace(INFO, lines=200_000, size=10 * 1024 * 1024))
    assert head.startswith("<!doctype html>")
    parsed = Markup(head + "</main></body></html>")
    metas = [attrs for tag, attrs in parsed.tags if tag == "meta"]
    assert {"charset": "utf-8"} in metas
    assert {"name": "viewport", "content": "width=device-width,initial-scale=1"} in metas
    links = [attrs for tag, attrs in parsed.tags if tag == "a"]
    assert {"href": "/k7Qm2xTfL9aR?raw"} in links
    assert {"href": "/k7Qm2xTfL9aR?raw", "download": "k7Qm2xTfL9aR.txt"} in links
    assert parsed.by_id("w") == {"type": "checkbox", "id": "w", "class": "w"}
    assert ("label", {"for": "w"}) in parsed.tags
    shown = " ".join(parsed.text)
    assert "raw" in shown and "download" in shown and "wrap" in shown
    assert "expires Sun, 06 Dec 2026 10:00:00 GMT" in shown
    assert "200,000 lines · 10 MiB" in shown
    assert "<title>k7Qm2xTfL9aR</title>" in head
    # The wrap toggle is CSS only: the checkbox is a sibling before <main>.
    assert ".w:checked~main .t{" in STYLE_CSS and "pre-wrap" in STYLE_CSS
    assert head.index('id="w"') < head.index("<main>")


@pytest.mark.parametrize(
    ("lines", "size", "expected"),
    [(1, 1, "1 line · 1 byte"), (12, 1023, "12 lines · 1023 bytes"), (2, 1536, "2 lines · 1.5 KiB"),
     (None, 2048, "2 KiB")],
)
def test_head_counts(lines, size, expected):
    head = render_head(replace(INFO, lines=lines, size=size))
    assert f'<span class="i">{expected}</span>' in head


def test_head_says_when_a_paste_is_live_incomplete_or_truncated():
    assert "live" in render_head(replace(INFO, state="open", lines=None))
    assert "incomplete" in render_head(replace(INFO, state="incomplete"))
    assert "truncated" in render_head(replace(INFO, truncated="size-limit"))
    plain = render_head(INFO)
    assert "live" not in plain and "incomplete" not in plain and "truncated" not in plain


def test_tail_markers():
    complete = render_tail(INFO)
    assert TRUNCATED_MARKER not in complete and INCOMPLETE_MARKER not in complete
    assert complete.endswith(f"<script>{SCRIPT}</script>\n</body></html>\n")
    truncated = render_tail(replace(INFO, truncated="size-limit"))
    assert f'<div class="m">{TRUNCATED_MARKER}</div>' in truncated
    assert TRUNCATED_MARKER == "— paste truncated at the size limit —"
    incomplete = render_tail(replace(INFO, state="incomplete"))
    assert f'<div class="m">{INCOMPLETE_MARKER}</div>' in incomplete
    assert INCOMPLETE_MARKER == "— the writer stopped before the end —"
    # The marker comes after the last line, outside its block, before the script.
    text = page(["a", "b", "c"], replace(INFO, truncated="size-limit"))
    assert text.index('id="L3"') < text.index("</section>") < text.index(TRUNCATED_MARKER) < text.index("<script>")


def test_a_paste_cut_at_binary_data_says_so_in_words():
    head = render_head(replace(INFO, truncated="not-text"))
    tail = render_tail(replace(INFO, truncated="not-text"))
    assert "binary data followed" in head and "size limit" not in head
    assert "was not text (a NUL byte or invalid UTF-8)" in tail and TRUNCATED_MARKER not in tail


def test_a_paste_without_lines_still_closes_cleanly():
    text = render_head(replace(INFO, lines=0)) + render_tail(replace(INFO, lines=0, state="incomplete"))
    parsed = Markup(text)
    assert not parsed.misnested and not parsed.stack and INCOMPLETE_MARKER in text


def test_page_info_is_frozen():
    with pytest.raises(FrozenInstanceError):
        INFO.size = 1  # type: ignore[misc]


def test_view_is_sans_io():
    tree = ast.parse(Path(view.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"trio", "socket", "lmdb", "zstandard", "h11"}


# --- in a real browser (Debian's chromium, no server: the page is served by a route) ---

@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_in_chromium_csp_holds_anchors_ranges_shift_click_and_wrap():
    sync_api = pytest.importorskip("playwright.sync_api")
    lines = [f"line {n} " + "wide " * 60 for n in range(1, 1201)]
    lines[9] = "\x1b[31mred\x1b[0m"
    lines[29] = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
    info = replace(INFO, lines=len(lines))
    body = page(lines, info)
    base = "http://view.test/k7Qm2xTfL9aR"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page()
            violations: list[str] = []
            tab.on("console", lambda msg: violations.append(msg.text) if msg.type == "error" else None)
            tab.route("**/*", lambda route: route.fulfill(
                status=200, body=body,
                headers={"content-type": "text/html; charset=utf-8", "content-security-policy": csp()}))
            tab.goto(base + "#L42")
            background = "el => getComputedStyle(el).backgroundColor"
            assert tab.locator("#L42").evaluate(background) != tab.locator("#L41").evaluate(background)
            assert tab.locator("#L10 .t span").evaluate("el => getComputedStyle(el).color") != \
                tab.locator("#L11 .t").evaluate("el => getComputedStyle(el).color")
            assert tab.evaluate("window.__pwned") is None
            assert "<script>window.__pwned=1</script>" in tab.locator("#L30").inner_text()
            # The line number is not part of the copied text.
            assert tab.locator("#L30 .n").evaluate("el => getComputedStyle(el).userSelect") == "none"
            # A range: highlighted and scrolled to, far down in a skipped block.
            tab.goto(base + "#L900-L905")
            tab.wait_for_function("document.getElementById('L903').classList.contains('h')")
            assert tab.locator("#L903").evaluate(background) != tab.locator("#L906").evaluate(background)
            assert tab.locator("#L900").evaluate("el => el.getBoundingClientRect().top") < 300
            # A click sets #Ln; shift-click extends it to #La-Lb without a jump.
            tab.locator("#L905 .n").click()
            assert tab.evaluate("location.hash") == "#L905"
            tab.locator("#L910 .n").click(modifiers=["Shift"])
            assert tab.evaluate("location.hash") == "#L905-L910"
            assert tab.locator("#L907").evaluate("el => el.classList.contains('h')")
            assert not tab.locator("#L904").evaluate("el => el.classList.contains('h')")
            # Wrap: off by default (the long line scrolls the page sideways),
            # on by the label (the line takes at least two line heights and
            # nothing scrolls sideways). How many lines it wraps to depends on
            # the fonts installed, so that is not what is asserted.
            height = "el => el.getBoundingClientRect().height"
            sideways = "() => document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
            single = tab.locator("#L911").evaluate(height)
            assert tab.evaluate(sideways) > 0
            tab.locator("label[for=w]").click()
            assert tab.locator("#L911").evaluate(height) >= 2 * single - 1  # sub-pixel rounding
            assert tab.evaluate(sideways) <= 0
            assert not [v for v in violations if "Content Security Policy" in v], violations
        finally:
            browser.close()

"""The HTML view of a paste, rendered in pieces so the shell can stream it.

The page is ``render_head(info)``, then ``render_lines(...)`` once per chunk of
lines (as they are read from the store or arrive in a live paste), then
``render_tail(info)``. Every piece of paste text, and every value taken from
``PageInfo``, is HTML-escaped; the page works without JavaScript (line anchors
are plain links, ``:target`` highlights ``#L42``, the wrap toggle is a CSS-only
checkbox), and the one small script only adds ranges (``#L40-L60``) and
shift-click.

Content-Security-Policy (``csp()``), and why it looks like this:

- ``script-src`` and ``style-src`` carry the SHA-256 of the one ``<script>``
  (``SCRIPT``) and the one ``<style>`` (``STYLE_CSS``) the page contains, so no
  other script or stylesheet can run, even if escaping ever failed.
- ANSI colours need per-span styles, and 256-colour and truecolour output has
  too many possible values for a fixed set of classes. A streamed page cannot
  collect the styles it used and hash them into the header (the header has
  gone out before the first line is read), and ``'unsafe-hashes'`` would need
  exactly that. So the spans carry inline ``style="..."`` attributes, allowed
  by ``style-src-attr 'unsafe-inline'`` (CSP level 3) while ``<style>``
  elements stay hash-locked. A style attribute cannot run code in any current
  browser; its value is only ever ``Style.css()`` (built from SGR numbers,
  never from paste text) and is escaped as well; and ``default-src 'none'``
  blocks any ``url()`` a style could try to fetch, so it cannot even beacon.
  A browser that predates ``style-src-attr`` falls back to ``style-src`` and
  drops the colours: the text stays readable and the page stays safe.
- ``default-src 'none'`` forbids everything else (images, fonts, frames,
  connections); ``base-uri``, ``form-action`` and ``frame-ancestors`` are
  ``'none'`` as well, since they do not fall back to ``default-src`` (but
  ``form-action 'self'`` on the one-time page after the browser form, whose
  delete button posts to this site).

No ``sandbox`` directive: a sandboxed page could not start the download link.
The view must therefore be served with this policy *instead of* the raw path's
``default-src 'none'; sandbox`` (two policies both apply, and the stricter one
would block the hashed script and style).

Long logs (10 MiB, 200,000 lines): lines go in ``<section class="b">`` blocks of
``BLOCK_LINES`` with ``content-visibility: auto``, so the browser lays out only
the blocks near the viewport; per-line markup is one ``div``, one link and one
``span``; the script does no per-line work on load (it touches only the lines
of a ``#La-Lb`` range).
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the view only calls AnsiState.spans and Style.css
    from ncpaste.core.ansi import AnsiState

# Lines per <section class="b">: small enough that a block near the viewport
# is cheap to lay out (500 lines of at most a screenful of width), large enough
# that 200,000 lines make only 400 blocks for the browser to size.
BLOCK_LINES = 500
# One line's height in CSS px (font 13px, line-height 18px below); a skipped
# block is sized BLOCK_LINES * LINE_PX until the browser has laid it out once
# (``contain-intrinsic-size: auto`` then remembers the real height, e.g. with
# wrapping on), so the scrollbar is right before any block has been seen.
LINE_PX = 18
# The toolbar's height: one row of 24 px buttons with 6 px above and below,
# plus its border; the page starts below it.
BAR_PX = 37

#: Why a paste was cut (PasteMeta.truncated), in words: (toolbar, end marker).
TRUNCATION_TEXTS = {
    "size-limit": ("truncated at the size limit", "— paste truncated at the size limit —"),
    "not-text": (
        "cut: binary data followed",
        "— paste cut here: what followed was not text (a NUL byte or invalid UTF-8), and was not stored —",
    ),
}
TRUNCATED_MARKER = TRUNCATION_TEXTS["size-limit"][1]
INCOMPLETE_MARKER = "— the writer stopped before the end —"


def sha256_source(text: str) -> str:
    """The CSP hash-source of an inline element's text (UTF-8, as browsers hash it)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


# Ranges and shift-click. Plain clicks on a line number are ordinary links
# (``#Ln``, highlighted by :target without this script). The script highlights
# ``#La-Lb`` on load and on hashchange and scrolls to its first line; a
# shift-click extends from the last plainly clicked line and rewrites the
# fragment with replaceState (no jump: the reader is already there). One
# listener on the document, no work per line until a range is asked for.
SCRIPT = (
    "(function(){"
    'var d=document,on=[],a=0,R=/^#L(\\d+)(?:-L?(\\d+))?$/;'
    # The one-time page's address names a notice already used: the link to
    # copy from the address bar is the paste's own.
    'if(/[?&]created=/.test(location.search))history.replaceState(null,"",location.pathname+location.hash);'
    "function go(jump){"
    'for(var i=0;i<on.length;i++)on[i].classList.remove("h");'
    "on=[];"
    "var m=R.exec(location.hash);"
    "if(!m)return;"
    "var s=+m[1],e=m[2]?+m[2]:s;"
    "if(e<s){var t=s;s=e;e=t}"
    "if(!a||!m[2])a=s;"
    "for(var n=s;n<=e;n++){"
    'var el=d.getElementById("L"+n);'
    "if(!el)break;"
    'el.classList.add("h");on.push(el)}'
    "if(jump&&m[2]&&on.length)on[0].scrollIntoView()}"
    'd.addEventListener("click",function(ev){'
    'var t=ev.target.closest?ev.target.closest("a.n"):null;'
    "if(!t)return;"
    'var n=+t.getAttribute("href").slice(2);'
    "if(!ev.shiftKey||!a){a=n;return}"
    "ev.preventDefault();"
    "var s=Math.min(a,n),e=Math.max(a,n);"
    'history.replaceState(null,"",s==e?"#L"+s:"#L"+s+"-L"+e);'
    "go(false)});"
    'addEventListener("hashchange",function(){go(true)});'
    "go(true)})();"
)
SCRIPT_HASH = sha256_source(SCRIPT)

# The colours of every page (the view, the form, error pages): light, or
# dark when the system asks for it.
PALETTE_CSS = (
    ":root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--mut:#6e7781;"
    "--bar:#f6f8fa;--bd:#d0d7de;--hl:#fff8c5;--on:#ddf4ff;--err:#cf222e}"
    "@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;"
    "--mut:#7d8590;--bar:#161b22;--bd:#30363d;--hl:#3b2f00;--on:#0c2d6b;--err:#ff7b72}}"
)

# The one-time notice after a paste from the browser form: its link, its
# delete token (shown this once) and a delete button.
NOTICE_CSS = (
    ".nt{margin:8px 12px 12px;padding:10px 14px;border:1px solid var(--bd);border-radius:6px;"
    "background:var(--bar);font:14px/1.5 system-ui,sans-serif;max-width:60em}"
    ".nt p{margin:4px 0}"
    ".nt code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;user-select:all;"
    "overflow-wrap:anywhere}"
    ".nt form{margin:8px 0 2px}"
    ".nt button{font:inherit;padding:3px 12px;border-radius:6px;border:1px solid var(--err);"
    "background:transparent;color:var(--err);cursor:pointer}"
)

STYLE_CSS = PALETTE_CSS + NOTICE_CSS + (
    # The toolbar is one fixed row of known height (it scrolls sideways on a
    # phone rather than growing), so a target line is never hidden under it
    # and it stays in view when a long line scrolls the page sideways.
    "html{scroll-padding-top:%dpx}"
    "body{margin:0;padding-top:%dpx;background:var(--bg);color:var(--fg);"
    "font:13px/%dpx ui-monospace,SFMono-Regular,Menlo,Consolas,'Liberation Mono',monospace}"
    ".bar{position:fixed;top:0;left:0;right:0;z-index:1;box-sizing:border-box;height:%dpx;"
    "display:flex;align-items:center;gap:12px;padding:0 12px;overflow-x:auto;white-space:nowrap;"
    "background:var(--bar);border-bottom:1px solid var(--bd);font-family:system-ui,sans-serif}"
    ".bar a,.bar label{color:inherit;text-decoration:none;cursor:pointer;line-height:18px;"
    "border:1px solid var(--bd);border-radius:6px;padding:2px 10px;user-select:none}"
    ".bar a:hover,.bar label:hover{border-color:var(--mut)}"
    ".k{font-weight:600}"
    ".i{color:var(--mut)}"
    ".x{color:var(--err);font-weight:600}"
    # The wrap checkbox: visually hidden but still focusable, its label is the button.
    ".w{position:absolute;width:1px;height:1px;margin:0;opacity:0}"
    ".w:focus-visible+.bar label{outline:2px solid var(--mut)}"
    ".w:checked+.bar label{background:var(--on)}"
    "main{padding:4px 0 12px}"
    # A block clips what overflows it (content-visibility implies paint
    # containment), so it is as wide as its widest line: the page then
    # scrolls sideways to a long line when wrap is off. A block never laid
    # out has no width of its own (none) and fills the window.
    ".b{content-visibility:auto;contain-intrinsic-size:auto none auto %dpx;width:max-content;min-width:100%%}"
    ".l{display:flex;width:max-content;min-width:100%%}"
    ".n{flex:none;min-width:7ch;padding:0 12px 0 8px;text-align:right;"
    "color:var(--mut);text-decoration:none;user-select:none}"
    ".n:hover{color:var(--fg)}"
    ".t{white-space:pre;tab-size:8}"
    ".w:checked~main .l,.w:checked~main .b{width:auto}"
    ".w:checked~main .t{flex:1;min-width:0;white-space:pre-wrap;overflow-wrap:anywhere}"
    ".l:target,.l.h{background:var(--hl)}"
    ".m{padding:6px 12px;color:var(--mut);font-style:italic}"
) % (BAR_PX + LINE_PX, BAR_PX, LINE_PX, BAR_PX, BLOCK_LINES * LINE_PX)
STYLE_HASH = sha256_source(STYLE_CSS)


_CSP = (
    "default-src 'none'; "
    f"script-src '{SCRIPT_HASH}'; "
    f"style-src '{STYLE_HASH}'; "
    "style-src-attr 'unsafe-inline'; "
    "base-uri 'none'; form-action %s; frame-ancestors 'none'"
)
_VIEW_CSP = _CSP % "'none'"
# The one-time page after a paste from the form has a delete button: a form
# that may post to this site, and only to it.
_NOTICE_CSP = _CSP % "'self'"


def csp(*, delete_form: bool = False) -> str:
    """The Content-Security-Policy header value for the HTML view (see module
    doc); built once, asked for on every read. ``delete_form``: the page
    carries the one-time notice, whose delete button posts to this site."""
    return _NOTICE_CSP if delete_form else _VIEW_CSP


@dataclass(frozen=True)
class Notice:
    """What the one-time page after a browser paste tells its author: the
    link to share and the delete token, shown this once (never in a
    cookie, never in a URL)."""

    key: str
    url: str
    token: str
    burn: bool


def render_notice(notice: Notice) -> str:
    """The notice box, with a delete button (a plain form: no script needed)."""
    url, token, key = _esc(notice.url), _esc(notice.token), _esc(notice.key)
    burn = (
        "<p>It is <b>burn after read</b>: it is not shown here, so that its one read is left for "
        "whoever you send the link to.</p>"
        if notice.burn
        else ""
    )
    return (
        '<section class="nt" role="status" id="notice">'
        f'<p><b>Pasted.</b> Share this link: <a href="{url}"><code>{url}</code></a></p>'
        f"{burn}"
        f'<p>Delete token, shown only this once (keep it to delete the paste later): <code id="token">{token}</code></p>'
        f"<p><code>curl -X DELETE -H 'X-Delete-Token: {token}' {url}</code></p>"
        f'<form method="post" action="{key}"><input type="hidden" name="token" value="{token}">'
        '<button type="submit">delete this paste</button></form>'
        "</section>\n"
    )


@dataclass(frozen=True)
class PageInfo:
    """What the toolbar and the tail show about a paste.

    ``lines`` is the number of lines shown, or None while it is not known (an
    open live paste). ``expires_http`` is an HTTP date, shown as is. ``state``
    is ``open``, ``complete`` or ``incomplete`` (as in X-Paste-State).
    """

    key: str
    size: int
    lines: int | None
    expires_http: str
    state: str
    #: Why the paste was cut (a TRUNCATION_TEXTS key), or None.
    truncated: str | None
    raw_url: str
    download_url: str
    #: The one-time notice after a paste from the browser form, if this is that page.
    notice: Notice | None = None


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _human_size(n: int) -> str:
    """``123 bytes``, ``4.2 KiB``, ``10 MiB``: a size for people, not for parsing."""
    if n < 1024:
        return "1 byte" if n == 1 else f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    raise AssertionError("unreachable")


# Every page's start, up to its title: phones get the width, the browser
# the colour schemes, nobody the referrer, no search engine the page.
PAGE_START = (
    "<!doctype html>\n"
    '<html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width,initial-scale=1">'
    '<meta name="color-scheme" content="light dark">'
    '<meta name="referrer" content="same-origin">'  # html_headers says why
    '<meta name="robots" content="noindex,nofollow">'
)


def render_head(info: PageInfo) -> str:
    """From ``<!doctype html>`` to the opening ``<main>``: meta, style, toolbar."""
    key = _esc(info.key)
    if info.lines is None:
        lines = ""
    elif info.lines == 1:
        lines = "1 line · "
    else:
        lines = f"{info.lines:,} lines · "
    facts = [f'<span class="i">{lines}{_esc(_human_size(info.size))}</span>']
    if info.state == "open":
        facts.append('<span class="x">live: still being written</span>')
    elif info.state == "incomplete":
        facts.append('<span class="x">incomplete</span>')
    if info.truncated:
        facts.append(f'<span class="x">{_esc(_truncation(info.truncated)[0])}</span>')
    facts.append(f'<span class="i">expires {_esc(info.expires_http)}</span>')
    return (
        PAGE_START
        + f"<title>{key}</title>"
        f"<style>{STYLE_CSS}</style></head>\n"
        "<body>"
        '<input type="checkbox" id="w" class="w">'
        '<header class="bar">'
        f'<span class="k">{key}</span>'
        f'<a href="{_esc(info.raw_url)}">raw</a>'
        f'<a href="{_esc(info.download_url)}" download="{key}.txt">download</a>'
        '<label for="w">wrap</label>'
        + "".join(facts)
        + "</header>\n<main>\n"
        + (render_notice(info.notice) if info.notice is not None else "")
    )


def _truncation(reason: str) -> tuple[str, str]:
    return TRUNCATION_TEXTS.get(reason, ("truncated", "— paste truncated —"))


def render_lines(lines: Iterable[str], first_number: int, state: AnsiState) -> str:
    """Lines numbered from ``first_number``, as HTML; ``state`` carries SGR across calls.

    Each line is ``<div class="l" id="L{n}"><a class="n" href="#L{n}">{n}</a>
    <span class="t">...</span></div>``; a ``<section class="b">`` starts before
    every line n with ``n % BLOCK_LINES == 1`` and closes the one before it, so
    chunks may split anywhere. ``render_tail`` closes the last block.
    """
    out: list[str] = []
    append = out.append
    n = first_number
    for line in lines:
        if n % BLOCK_LINES == 1:
            append('<section class="b">\n' if n == 1 else '</section>\n<section class="b">\n')
        parts: list[str] = []
        for style, text in state.spans(line):
            if not text:
                continue
            css = style.css()
            if css:
                parts.append(f'<span style="{_esc(css)}">{_esc(text)}</span>')
            else:
                parts.append(_esc(text))
        append(
            f'<div class="l" id="L{n}"><a class="n" href="#L{n}">{n}</a>'
            f'<span class="t">{"".join(parts)}</span></div>\n'
        )
        n += 1
    return "".join(out)


def render_tail(info: PageInfo) -> str:
    """Close the last block and the page: end markers, the script, ``</html>``.

    The last ``<section>`` is closed unless ``info.lines == 0`` (none was
    opened); when ``lines`` is unknown and no line was shown, the extra end tag
    is one the HTML parser ignores.
    """
    parts = ["</section>\n" if info.lines != 0 else ""]
    if info.truncated:
        parts.append(f'<div class="m">{_esc(_truncation(info.truncated)[1])}</div>\n')
    if info.state == "incomplete":
        parts.append(f'<div class="m">{INCOMPLETE_MARKER}</div>\n')
    parts.append(f"</main>\n<script>{SCRIPT}</script>\n</body></html>\n")
    return "".join(parts)

"""The HTML pages besides the paste view: the paste form at ``/``, the page
after a burn-after-read paste from it, the page after a delete, and errors.

They share the view's palette (light, or dark when the system asks) and its
kind of Content-Security-Policy: ``default-src 'none'`` with the one
``<style>`` and the one ``<script>`` allowed by hash, so nothing else loads
or runs. The form works without JavaScript: a plain ``multipart/form-data``
post that the server answers ``303 See Other``; the script only adds
Ctrl/Cmd+Enter, a size check before sending and dropping a text file on the
text box. Every value a page shows is HTML-escaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from http import HTTPStatus

from ncpaste.core import units
from ncpaste.core.view import NOTICE_CSS, PAGE_START, PALETTE_CSS, Notice, render_notice, sha256_source

# The expiry choices the form offers, in seconds, besides the server's
# default and maximum (each is shown only if it is within the maximum).
EXPIRE_PRESETS_S = (10 * 60, 3600, 86400, 7 * 86400, 30 * 86400)

PAGE_CSS = (
    PALETTE_CSS
    + NOTICE_CSS
    + "body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,sans-serif}"
    "main{max-width:60em;margin:0 auto;padding:12px 16px 32px}"
    "h1{font-size:20px;margin:8px 0 4px}"
    "h2{font-size:16px;margin:28px 0 6px}"
    ".i{color:var(--mut)}"
    ".x{color:var(--err);font-weight:600}"
    "a{color:inherit}"
    "textarea{box-sizing:border-box;width:100%;min-height:22em;resize:vertical;padding:8px;"
    "background:var(--bg);color:var(--fg);border:1px solid var(--bd);border-radius:6px;"
    "font:13px/18px ui-monospace,SFMono-Regular,Menlo,Consolas,'Liberation Mono',monospace;tab-size:8}"
    "textarea:focus,input:focus,select:focus{outline:2px solid var(--mut);outline-offset:1px}"
    ".o{display:flex;flex-wrap:wrap;align-items:center;gap:10px 18px;margin:10px 0}"
    "select,input[type=text],button{font:inherit;padding:3px 8px;border-radius:6px;"
    "border:1px solid var(--bd);background:var(--bar);color:var(--fg)}"
    "button{padding:4px 18px;cursor:pointer;font-weight:600}"
    "pre{background:var(--bar);border:1px solid var(--bd);border-radius:6px;padding:10px 12px;"
    "overflow-x:auto;font:12px/17px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}"
)
PAGE_STYLE_HASH = sha256_source(PAGE_CSS)

# Niceties only: the page works the same without it. Ctrl/Cmd+Enter sends
# the form; a paste over the limit is refused before it is sent (the size as
# the server counts it: UTF-8, line endings as LF); a text file dropped on the
# text box becomes its content.
FORM_SCRIPT = (
    "(function(){"
    'var d=document,f=d.getElementById("f"),t=d.getElementById("paste"),e=d.getElementById("e"),'
    "max=+f.dataset.max;"
    "function say(m){e.textContent=m;e.hidden=!m}"
    "function big(n){if(n<=max)return false;"
    'say("error: paste too large: the limit is "+f.dataset.limit);return true}'
    'f.addEventListener("submit",function(v){if(big(new Blob([t.value]).size))v.preventDefault()});'
    't.addEventListener("input",function(){say("")});'
    't.addEventListener("keydown",function(v){'
    'if(v.key==="Enter"&&(v.ctrlKey||v.metaKey)){v.preventDefault();f.requestSubmit()}});'
    't.addEventListener("dragover",function(v){v.preventDefault()});'
    't.addEventListener("drop",function(v){'
    "var x=v.dataTransfer&&v.dataTransfer.files[0];if(!x)return;v.preventDefault();"
    "if(big(x.size))return;"
    'x.text().then(function(s){t.value=s;say("")})})'
    "})();"
)
FORM_SCRIPT_HASH = sha256_source(FORM_SCRIPT)

# The form page may post to this site (form-action 'self'), and run its script.
FORM_CSP = (
    "default-src 'none'; "
    f"script-src '{FORM_SCRIPT_HASH}'; "
    f"style-src '{PAGE_STYLE_HASH}'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The other pages run nothing; the notice page's delete button posts here.
PAGE_CSP = (
    f"default-src 'none'; style-src '{PAGE_STYLE_HASH}'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class FormLimits:
    """What the form offers and checks: the server's size limit and expiries."""

    max_paste_bytes: int
    default_expire_s: int
    max_expire_s: int


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _page(title: str, body: str, *, script: str = "") -> str:
    return (
        PAGE_START
        + f"<title>{_esc(title)}</title>"
        f"<style>{PAGE_CSS}</style></head>\n"
        f"<body><main>\n{body}</main>\n"
        + (f"<script>{script}</script>\n" if script else "")
        + "</body></html>\n"
    )


def expire_choices(limits: FormLimits) -> list[tuple[str, str, bool]]:
    """(value, label, selected) for the expiry menu: the presets within the
    maximum, the default and the maximum itself, shortest first."""
    choices = {s for s in EXPIRE_PRESETS_S if s < limits.max_expire_s}
    choices |= {limits.default_expire_s, limits.max_expire_s}
    out = []
    for seconds in sorted(choices):
        value = units.format_duration(seconds)
        label = value
        if seconds == limits.default_expire_s:
            label += " (default)"
        if seconds == limits.max_expire_s:
            label += " (longest)"
        out.append((value, label, seconds == limits.default_expire_s))
    return out


def render_form(limits: FormLimits, usage: str) -> str:
    """``GET /`` for a browser: the paste form, and the terminal usage below."""
    options = "".join(
        f'<option value="{_esc(value)}"{" selected" if selected else ""}>{_esc(label)}</option>'
        for value, label, selected in expire_choices(limits)
    )
    limit = units.format_size(limits.max_paste_bytes)
    body = (
        "<h1>ncpaste</h1>\n"
        f'<p class="i">Paste text, get a link. Text only (UTF-8), at most {_esc(limit)}. '
        "From a terminal it is one pipe: see below.</p>\n"
        # action "." is this page's own address: right behind a proxy that
        # serves the site under a path too.
        f'<form id="f" method="post" action="." enctype="multipart/form-data" accept-charset="utf-8" '
        f'data-max="{limits.max_paste_bytes}" data-limit="{_esc(limit)}">\n'
        '<textarea name="paste" id="paste" required autofocus spellcheck="false" autocomplete="off" '
        'aria-label="paste text" placeholder="Paste text here, or drop a text file"></textarea>\n'
        '<div class="o">'
        f'<label>expires <select name="expire" id="expire">{options}</select></label>'
        '<label>alias <input type="text" name="alias" id="alias" maxlength="64" '
        'pattern="[A-Za-z0-9._\\-]{3,64}" title="3-64 characters: A-Z a-z 0-9 . _ -" '
        'placeholder="optional" autocomplete="off" spellcheck="false"></label>'
        '<label><input type="checkbox" name="burn" id="burn" value="1"> burn after read</label>'
        '<label><input type="checkbox" name="redact" id="redact" value="1"> redact secrets</label>'
        '<button type="submit" id="send">paste</button>'
        '<span class="i">Ctrl+Enter</span>'
        "</div>\n"
        '<p id="e" class="x" role="alert" hidden></p>\n'
        "</form>\n"
        "<h2>From a terminal</h2>\n"
        f"<pre>{_esc(usage)}</pre>\n"
    )
    return _page("ncpaste", body, script=FORM_SCRIPT)


def render_created(notice: Notice) -> str:
    """The one-time page after a burn-after-read paste from the form: the
    notice alone (showing the paste would be its one read)."""
    return _page(f"{notice.key}: pasted", render_notice(notice) + '<p><a href=".">new paste</a></p>\n')


def render_deleted(key: str) -> str:
    """After the delete button: the paste is gone."""
    return _page(
        f"{key}: deleted",
        f"<h1>Deleted</h1>\n<p>The paste <b>{_esc(key)}</b> is deleted.</p>\n"
        '<p><a href=".">new paste</a></p>\n',
    )


def render_error(status: int, message: str, *, retry_after_s: int | None = None) -> str:
    """An error as a page: the status and the same one-line message as the
    other ports give (``error: ...``), and when to try again for a 429."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    retry = (
        f'<p class="i">Try again in {retry_after_s} s.</p>\n' if retry_after_s is not None else ""
    )
    return _page(
        f"{status} {phrase}",
        f"<h1>{status} {_esc(phrase)}</h1>\n"
        f'<p class="x" id="error">error: {_esc(message)}</p>\n'
        f"{retry}"
        '<p>Go back to change the paste, or <a href=".">start a new one</a>.</p>\n',
    )

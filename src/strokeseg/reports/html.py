"""Self-contained HTML: inline CSS, images as base64 PNG data URIs, no scripts, no links out.

A report is one file that opens offline in any browser and can be mailed or archived as is.
Every text that comes from a file name or a checkpoint is escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape

DISCLAIMER = (
    "Research use only. strokeseg is not a medical device; these masks, volumes and "
    "warnings are not for diagnosis or treatment decisions."
)
STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.2em auto;
max-width:1080px;padding:0 1em;color:#1b1b1b;font-size:14px}
h1{font-size:1.35em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em;
border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #ccc;padding:2px 7px;
text-align:left;vertical-align:top}th{background:#f2f2f2}td.n{text-align:right}
.disclaimer{background:#fff4d6;border:1px solid #e0b400;padding:.4em .7em;margin:.6em 0}
.warn{color:#a30000}.ok{color:#1a6b1a}dl{display:grid;grid-template-columns:max-content auto;
gap:1px 12px;margin:.3em 0}dt{font-weight:600}dd{margin:0}img{max-width:100%}
.small{color:#555;font-size:12px}td a{white-space:nowrap}td ul.warn{margin:0;padding-left:1.1em}
"""


def image(png: bytes, alt: str, width: int | None = None) -> str:
    """An <img> holding ``png`` itself (a data URI), so the page needs no other file."""
    size = f' width="{width}"' if width else ""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}"{size} src="data:image/png;base64,{data}">'


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], numeric=()) -> str:
    """A plain table; cells are escaped unless they are :class:`Raw` HTML."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = cell if isinstance(cell, Raw) else escape(str(cell))
            cells.append(f'<td class="n">{text}</td>' if i in numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Raw(str):
    """HTML already built (and escaped) by this module: inserted as is."""


def fields(pairs: Iterable[tuple[str, object]]) -> str:
    """A definition list of label: value pairs."""
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in pairs)
    return f"<dl>{items}</dl>"


def warning_list(warnings: Sequence[str]) -> str:
    if not warnings:
        return '<p class="ok">No quality warnings.</p>'
    items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
    return f'<ul class="warn">{items}</ul>'


def page(title: str, body: str) -> str:
    """A complete HTML5 document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{escape(title)}</h1><p class="disclaimer">{escape(DISCLAIMER)}</p>'
        f"{body}</body></html>\n"
    )


def link(href: str, text: str) -> Raw:
    """A link to a sibling file of the report (a relative path, never a URL)."""
    return Raw(f'<a href="{escape(href)}">{escape(text)}</a>')

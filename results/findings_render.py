"""Rendering of the study's report: the same (kind, payload) pieces as Markdown and as one HTML
page with the plots inline, so the two never disagree."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from results.tables import to_html, to_markdown


def image_tag(path: str, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def to_markdown_text(pieces: list[tuple]) -> str:
    out = []
    for kind, payload in pieces:
        if kind == "h1":
            out.append(f"# {payload}\n")
        elif kind == "h2":
            out.append(f"## {payload}\n")
        elif kind == "h3":
            out.append(f"### {payload}\n")
        elif kind == "p":
            out.append(f"{payload}\n")
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in payload) + "\n")
        elif kind == "table":
            out.append((to_markdown(payload) if not payload.empty else "(none)") + "\n")
        elif kind == "image" and payload:
            out.append(f"![{Path(payload).stem}]({Path(payload).name})\n")
    return "\n".join(out)


def inline_markdown(text: str) -> str:
    """**bold** and `code` of the generated sentences, for the HTML page."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def to_html_page(title: str, pieces: list[tuple]) -> str:
    from results.dashboard import STYLE

    body = []
    for kind, payload in pieces:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(payload)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{inline_markdown(payload)}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{inline_markdown(i)}</li>" for i in payload) + "</ul>")
        elif kind == "table":
            body.append(f'<div class="scroll">{to_html(payload)}</div>' if not payload.empty else "<p>(none)</p>")
        elif kind == "image" and payload:
            body.append(image_tag(payload, Path(payload).stem))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")

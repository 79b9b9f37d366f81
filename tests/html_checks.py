"""HTML checks for the report tests: well-formed, self-contained, every image an embedded PNG."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip
REF_ATTRIBUTES = {"src", "href", "srcset", "action", "data", "poster", "formaction"}
FORBIDDEN_TAGS = {"script", "link", "iframe", "object", "embed", "base", "frame"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.refs: list[tuple[str, str, str]] = []
        self.tags: Counter = Counter()
        self.style = ""
        self._in_style = False
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        self.refs += [(tag, k, v or "") for k, v in attrs if k in REF_ATTRIBUTES]
        if tag not in VOID:
            self.stack.append(tag)
        self._in_style = tag == "style"

    def handle_startendtag(self, tag, attrs):
        self.tags[tag] += 1
        self.refs += [(tag, k, v or "") for k, v in attrs if k in REF_ATTRIBUTES]

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style += data
        self.texts.append(data)


def check_html(text: str, folder: Path | None = None) -> _Parser:
    """Assert ``text`` is a well-formed, self-contained HTML5 page; return what was parsed.

    Links (``href``) must be relative paths to files that exist in ``folder`` when given.
    """
    assert text.startswith("<!DOCTYPE html>")
    parser = _Parser()
    parser.feed(text)
    parser.close()
    assert not parser.errors, parser.errors[:3]
    assert not parser.stack, f"unclosed: {parser.stack}"
    for tag in ("html", "head", "body", "title"):
        assert parser.tags[tag] == 1, tag
    assert not FORBIDDEN_TAGS & set(parser.tags), set(parser.tags)
    assert "url(" not in parser.style and "@import" not in parser.style
    for tag, attribute, value in parser.refs:
        if attribute == "src":
            assert tag == "img" and value.startswith("data:image/png;base64,"), value[:60]
            assert base64.b64decode(value.split(",", 1)[1]).startswith(PNG_SIGNATURE)
        elif attribute == "href":
            assert tag == "a" and ":" not in value and not value.startswith("/"), value
            if folder is not None:
                assert (folder / value).is_file(), value
        else:
            raise AssertionError(f"unexpected reference {tag} {attribute}={value[:40]}")
    outside_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert not re.search(r"(?i)(https?:|ftp:|file:|//[a-z])", outside_images)
    return parser


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def dump_dom_offline(path: Path) -> str:
    """The page's DOM after Chromium loaded it headless with networking off."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",
             "--dump-dom", path.resolve().as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout

"""A stored patch as HTML: line numbers, added and removed lines, code highlighted by
Pygments with classes (the Content-Security-Policy forbids style attributes; the
colours are in static/pygments.css). Pure Python on data the test job recorded."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

from releaseboard.review.compute import LARGE_FILE_LINES

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$")
_FORMATTER = HtmlFormatter(nowrap=True)


@dataclass
class FileView:
    index: int
    path: str
    added: int
    deleted: int
    binary: bool
    omitted: str
    large: bool
    has_patch: bool

    @property
    def bar(self) -> list[str]:
        """Five squares, as the diffstat of a merge request shows: green for added, red for removed."""
        total = self.added + self.deleted
        if not total:
            return ["neutral"] * 5
        green = round(5 * self.added / total)
        return ["add"] * green + ["del"] * (5 - green)


def file_views(files: list[dict[str, Any]]) -> list[FileView]:
    return [
        FileView(
            index=i,
            path=f["path"],
            added=f["added"],
            deleted=f["deleted"],
            binary=f["binary"],
            omitted=f["omitted"],
            large=f["added"] + f["deleted"] > LARGE_FILE_LINES,
            has_patch=bool(f["patch"]),
        )
        for i, f in enumerate(files)
    ]


def _lexer(path: str) -> Lexer:
    try:
        return get_lexer_for_filename(path, stripnl=False, stripall=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


def _highlighted(lines: list[str], lexer: Lexer) -> list[str]:
    """Each code line as HTML, lexed together so that strings and comments spanning
    lines keep their colours. HtmlFormatter closes its spans at every line end."""
    if not lines:
        return []
    out = highlight("\n".join(lines) + "\n", lexer, _FORMATTER).split("\n")
    if len(out) < len(lines):  # not expected; never lose a line over colours
        return [escape(line) for line in lines]
    return out[: len(lines)]


def render_patch(path: str, patch: str) -> SafeString:
    """The rows of a <table class="diff"> for one file's hunks."""
    lexer = _lexer(path)
    rows: list[str] = []
    old = new = 0
    lines = patch.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    code = [line[1:] if line[:1] in "+- " else line for line in lines]
    painted = _highlighted(code, lexer)
    for line, html in zip(lines, painted, strict=True):
        hunk = _HUNK.match(line)
        if hunk:
            old, new = int(hunk.group(1)), int(hunk.group(2))
            rows.append(f'<tr class="diff-hunk"><td colspan="3">{escape(line)}</td></tr>')
        elif line.startswith("+"):
            rows.append(
                f'<tr class="diff-add"><td></td><td>{new}</td><td><span aria-hidden="true">+</span>{html}</td></tr>'
            )
            new += 1
        elif line.startswith("-"):
            rows.append(
                f'<tr class="diff-del"><td>{old}</td><td></td><td><span aria-hidden="true">-</span>{html}</td></tr>'
            )
            old += 1
        elif line.startswith("\\"):
            rows.append(f'<tr class="diff-note"><td></td><td></td><td>{escape(line)}</td></tr>')
        else:
            rows.append(f'<tr class="diff-ctx"><td>{old}</td><td>{new}</td><td> {html}</td></tr>')
            old += 1
            new += 1
    # Pygments escapes what it lexes; the rest went through escape() above.
    return mark_safe("".join(rows))


def render_conflict(path: str, text: str) -> SafeString:
    """A conflicting hunk from merge-tree: markers and the two sides told apart."""
    lexer = _lexer(path)
    lines = text.split("\n")
    painted = _highlighted(lines, lexer)
    rows: list[str] = []
    side = "ctx"
    for line, html in zip(lines, painted, strict=True):
        if line.startswith("<<<<<<< "):
            side = "ours"
            rows.append(f'<tr class="diff-hunk"><td>{escape(line)}</td></tr>')
        elif line.startswith("=======") and side == "ours":
            side = "theirs"
            rows.append(f'<tr class="diff-hunk"><td>{escape(line)}</td></tr>')
        elif line.startswith(">>>>>>> "):
            side = "ctx"
            rows.append(f'<tr class="diff-hunk"><td>{escape(line)}</td></tr>')
        else:
            css = {"ours": "diff-del", "theirs": "diff-add"}.get(side, "diff-ctx")
            rows.append(f'<tr class="{css}"><td>{html}</td></tr>')
    return mark_safe("".join(rows))

"""A job's log as the browser shows it: readable text, ANSI colours, git steps folded.

The log is stored as the commands wrote it. Turning it into HTML happens here, on the
way out, so nothing is lost and a better rendering applies to old logs too:

- control characters become readable (git's `--format` separators \\x1f and \\x1e,
  carriage returns of progress bars) or are dropped;
- ANSI colour codes (SGR) become spans with classes: the Content-Security-Policy
  forbids style attributes, so colours live in static/releaseboard.css;
- each of Releaseboard's own git commands ("$ git ...") and its output fold into a
  closed <details>, so the build and test output stand out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

FIELD_SEPARATOR = " · "  # git log --format=%x1f between fields
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c\x1d\x7f]")
_ESCAPE = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])|\x1b[@-Z\\-_]?")
_FG = {30: "black", 31: "red", 32: "green", 33: "yellow", 34: "blue", 35: "magenta", 36: "cyan", 37: "white"}


def readable(text: str) -> str:
    """The text with git's record and field separators shown as line breaks and " · ",
    carriage returns as line breaks, and other control characters (but ESC, which the
    colour step reads) dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub("\x1e\n?", "\n", text)
    text = text.replace("\x1f", FIELD_SEPARATOR)
    return _CONTROL.sub("", text)


def ansi_html(text: str) -> str:
    """Escaped HTML of `text` with SGR colours as <span class="ansi-..."> and every other
    escape sequence removed. Unclosed colours end with the text."""
    out: list[str] = []
    classes: list[str] = []
    open_span = False
    pos = 0
    for match in _ESCAPE.finditer(text):
        out.append(escape(text[pos : match.start()]))
        pos = match.end()
        if match.group(2) != "m":
            continue  # cursor moves, erase line, ...: meaningless in a stored log
        classes = _apply_sgr(classes, match.group(1))
        if open_span:
            out.append("</span>")
            open_span = False
        if classes:
            out.append(f'<span class="{" ".join(classes)}">')
            open_span = True
    out.append(escape(text[pos:]))
    if open_span:
        out.append("</span>")
    return "".join(out)


def _apply_sgr(classes: list[str], params: str) -> list[str]:
    current = list(classes)
    codes = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else [0]
    for code in codes:
        if code == 0:
            current = []
        elif code == 1:
            current = [c for c in current if c != "ansi-bold"] + ["ansi-bold"]
        elif code == 22:
            current = [c for c in current if c != "ansi-bold"]
        elif code in _FG or 90 <= code <= 97:
            name = _FG[code if code < 90 else code - 60]
            current = [c for c in current if not c.startswith("ansi-fg-")] + [f"ansi-fg-{name}"]
        elif code == 39:
            current = [c for c in current if not c.startswith("ansi-fg-")]
    return current


def is_git_command(text: str) -> bool:
    return text.startswith("$ git ")


def _is_marker(text: str) -> bool:
    """A line that starts something new: a command or a section title."""
    return text.startswith("$ ") or text.startswith("\n== ")


def render(chunks: Iterable[str], *, after_git_command: bool = False) -> SafeString:
    """The HTML of a run of log chunks (as stored, one per JobLogLine).

    A git command is sent as soon as it is written, before its output (a slow fetch must
    show what it is doing). When the output comes in a later poll (`after_git_command`),
    it is marked so that static/releaseboard.js moves it into the command's fold.
    """
    parts: list[str] = []
    items = list(chunks)
    i = 0
    if after_git_command and items and not _is_marker(items[0]):
        parts.append(f'<span class="log-git-output" data-git-output="1">{ansi_html(readable(items[0]))}</span>')
        i = 1
    while i < len(items):
        text = items[i]
        if is_git_command(text):
            output = ""
            if i + 1 < len(items) and not _is_marker(items[i + 1]):
                output = items[i + 1]
                i += 1
            summary = ansi_html(readable(text.rstrip("\n")))
            body = f'<span class="log-git-output">{ansi_html(readable(output))}</span>' if output else ""
            parts.append(f'<details class="log-git"><summary>{summary}</summary>{body}</details>')
        elif text.startswith("\n== "):
            parts.append(f'<span class="log-section">{ansi_html(readable(text))}</span>')
        else:
            parts.append(ansi_html(readable(text)))
        i += 1
    return mark_safe("".join(parts))  # every piece of text above went through escape()

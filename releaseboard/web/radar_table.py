"""The conflict radar's rows, rendered in Python.

With 100 open branches the matrix has 5,050 cells. As a template loop they cost most of
the board's time (about 45,000 template nodes) and most of its bytes, so the rows are
built here in one pass, and each cell is as small as a link can be: its tone as a short
class, its link to the cell's page, and what it shows (the number of conflicted files,
✓ or ?). Which branches a cell joins is in the table's headers (the browser script puts
the column's name in the cell's tooltip when it is pointed at); what conflicts is loaded
on demand from the cell's own page (web:radar_cell).
"""

from __future__ import annotations

from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from releaseboard.radar.selectors import CLEAN, CONFLICT, Matrix
from releaseboard.releases.models import Repository


def cells_url(repository: Repository) -> str:
    """The common start of every cell's URL ("/r/<repo>/radar/"); a reverse() per cell would
    cost more than the rest of the table."""
    sample = reverse("web:radar_cell", args=[repository.name, 1, 2])
    assert sample.endswith("/1/2/"), sample
    return sample.removesuffix("1/2/")


def _pluralize(count: int, plural: str) -> str:
    return "" if count == 1 else plural


def _look(state: str, conflicts: int) -> tuple[str, str]:
    """A cell's tone and text: the number of conflicted files, ✓ or ? (not merged yet)."""
    if state == CONFLICT:
        return "bad", str(conflicts)
    if state == CLEAN:
        return "good", "✓"
    return "busy", "?"


def radar_rows(matrix: Matrix, base_url: str) -> SafeString:
    """The <tr> rows of the matrix's body: the branch, then its cells in the board's column
    order (staging first, then each branch listed before it)."""
    base = escape(base_url)
    parts: list[str] = []
    for row in matrix.rows:
        name = escape(row.branch.name)
        parts.append(f'<tr data-branch="{name}"><th scope="row"><span class="mono">{name}</span>')
        if row.conflicting:
            count = row.conflicting
            parts.append(
                f' <span class="badge bad" title="conflicts with {count} open branch{_pluralize(count, "es")}">'
                f"{count}</span>"
            )
        parts.append("</th>")
        # A cell's class is its tone, as on the badges elsewhere (static/releaseboard.css).
        start = f'<td><a href="{base}{int(row.branch.pk)}/'
        if row.staging is not None:
            tone, shown = _look(row.staging.state, len(row.staging.conflicts))
            parts.append(f'{start}{int(row.staging.other.pk)}/" class="{tone}">{shown}</a></td>')
        for other, state, conflicts in row.states():
            tone, shown = _look(state, conflicts)
            parts.append(f'{start}{int(other.pk)}/" class="{tone}">{shown}</a></td>')
        parts.append("</tr>")
    # Safe: the names and the URL went through escape(); the rest is numbers and constants.
    return mark_safe("".join(parts))

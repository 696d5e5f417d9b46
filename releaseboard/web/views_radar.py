"""The conflict radar's cell: which files two branches conflict in, and how."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render

from releaseboard.radar import selectors as radar
from releaseboard.releases.models import Branch
from releaseboard.roles import Perm
from releaseboard.web.access import repository_for
from releaseboard.web.requests import HtmxHttpRequest


@login_required
def radar_cell(request: HtmxHttpRequest, repo: str, branch_id: int, other_id: int) -> HttpResponse:
    repository = repository_for(request, repo, Perm.VIEW)
    branch = get_object_or_404(Branch, pk=branch_id, repository=repository)
    other = get_object_or_404(Branch, pk=other_id, repository=repository)
    context = {"repository": repository, "branch": branch, "cell": radar.pair(repository, branch, other)}
    # The board asks with htmx for the detail panel only; a plain link gets the whole page.
    if not request.htmx:
        return render(request, "web/radar_cell.html", context)
    response = render(request, "web/radar_cell.html#detail", context)
    # The board's cells are boosted links, and htmx would put a boosted link's URL in the
    # history: the panel opens below the matrix, on the board, which stays the page.
    response["HX-Push-Url"] = "false"
    return response

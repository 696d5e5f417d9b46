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
    template = "web/radar_cell.html#detail" if request.htmx else "web/radar_cell.html"
    return render(request, template, context)

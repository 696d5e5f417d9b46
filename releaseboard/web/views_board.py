"""The repositories list, the board, and the repository-wide buttons on it."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from releaseboard.radar import selectors as radar
from releaseboard.releases import selectors, services
from releaseboard.releases.models import Repository
from releaseboard.roles import Perm, require
from releaseboard.web.access import repository_for
from releaseboard.web.actions import act
from releaseboard.web.checks import board_checks
from releaseboard.web.forms import StartsWorkForm, posted_key
from releaseboard.web.presenters import branch_cards, radar_summary, recent_releases
from releaseboard.web.radar_table import cells_url, radar_rows
from releaseboard.web.requests import HtmxHttpRequest
from releaseboard.web.snapshot import snapshot_page


@login_required
def repository_list(request: HttpRequest) -> HttpResponse:
    require(request.user, Perm.VIEW)
    return render(request, "web/repository_list.html", {"repositories": Repository.objects.all()})


@login_required
@snapshot_page
def board(request: HtmxHttpRequest, repo: str) -> HttpResponse:
    repository = repository_for(request, repo, Perm.VIEW)
    token = selectors.board_token(repository, request.user, timezone.now())
    if request.htmx and request.GET.get("since") == token:
        # The poller's board is current: nothing to send, nothing to swap (htmx ignores 204).
        return HttpResponse(status=204)
    data = selectors.board(repository)
    matrix = radar.matrix(repository)
    context = {
        "board_token": token,
        "repository": repository,
        "board": data,
        "cards": branch_cards(data, request.user),
        "releases": recent_releases(repository.pk),
        "radar": matrix,
        "radar_rows": radar_rows(matrix, cells_url(repository)),
        "radar_summary": radar_summary(matrix),
        "ci_checks": board_checks(
            repository, list(data.promotions.values()), data.staging.head_sha if data.staging else ""
        ),
    }
    # The board polls itself every few seconds and then needs only its own region.
    template = "web/board.html#board" if request.htmx else "web/board.html"
    return render(request, template, context)


@login_required
@require_POST
def repository_refresh(request: HttpRequest, repo: str) -> HttpResponse:
    repository = repository_for(request, repo, Perm.REFRESH)
    services.refresh(repository, actor=request.user, idempotency_key=posted_key(request.POST))
    messages.success(request, f"Refreshing {repository.name} from its remote; the page updates when it is done.")
    # Back to the page the button was on (a branch page has one too), never off this site.
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}) and back.startswith("/"):
        return redirect(back)
    return redirect("web:board", repo=repository.name)


@login_required
@require_POST
def staging_test(request: HttpRequest, repo: str) -> HttpResponse:
    repository = repository_for(request, repo, Perm.RUN_TESTS)
    return act(
        request,
        lambda: services.test_staging(repository, actor=request.user, idempotency_key=posted_key(request.POST)),
        back=lambda: redirect("web:board", repo=repository.name),
        then=lambda job: redirect("web:job_detail", job_id=job.pk),
        success=f"Testing {repository.staging_branch}.",
    )


@login_required
@require_http_methods(["GET", "POST"])
def copy_master(request: HttpRequest, repo: str) -> HttpResponse:
    repository = repository_for(request, repo, Perm.COPY_MASTER)
    form = StartsWorkForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.copy_master_to_staging(repository, actor=request.user, idempotency_key=form.key)
        except services.Refused as exc:
            form.show_refusal(exc)
        else:
            messages.success(request, f"Copying {repository.master_branch} to {repository.staging_branch}.")
            return redirect("web:job_detail", job_id=job.pk)
    context = {
        "repository": repository,
        "form": form,
        "discarded": selectors.unreleased_promotions(repository),
        "staging_exists": bool(selectors.head(repository, repository.staging_branch)),
    }
    return render(request, "web/copy_master.html", context)

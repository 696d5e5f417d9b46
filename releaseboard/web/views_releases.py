"""Promote to master (a release) and the list of releases."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from releaseboard.deployments.selectors import where_deployed
from releaseboard.paging import cursor, keyset_page
from releaseboard.releases import selectors, services
from releaseboard.releases.models import Repository
from releaseboard.roles import Perm, has_perm
from releaseboard.web.access import repository_for
from releaseboard.web.checks import staging_checks
from releaseboard.web.forms import ReleaseForm
from releaseboard.web.requests import HtmxHttpRequest
from releaseboard.web.snapshot import snapshot_page

# Releases carry their notes, so a page holds fewer of them than the audit log does.
PAGE_SIZE = 25


@login_required
@require_http_methods(["GET", "POST"])
@snapshot_page
def release_new(request: HtmxHttpRequest, repo: str) -> HttpResponse:
    repository = repository_for(request, repo, Perm.PROMOTE)
    preview = selectors.release_preview(repository)
    waiting = _commits_behind(repository, preview, request.user)
    # The staging head's CI statuses: a release is refused until the required ones are green.
    ci = staging_checks(repository, preview.staging_sha)
    if request.htmx:
        context = {"repository": repository, "preview": preview, "waiting": waiting, "ci": ci}
        return render(request, "web/release_new.html#commits", context)
    if request.method == "POST":
        form = ReleaseForm(request.POST)
    else:
        form = ReleaseForm(
            initial={"version": str(preview.proposed_version), "notes": selectors.release_notes(preview.promotions)}
        )
    if request.method == "POST" and form.is_valid() and waiting:
        form.add_error(None, waiting)
    elif request.method == "POST" and form.is_valid():
        try:
            release = services.promote_to_master(
                repository,
                actor=request.user,
                version=form.cleaned_data["version"],
                notes=form.cleaned_data["notes"],
                idempotency_key=form.key,
            )
        except services.Refused as exc:
            form.show_refusal(exc)
        else:
            messages.success(
                request,
                f"Releasing {release.tag}: {repository.master_branch} moves to the tested "
                f"{repository.staging_branch} head.",
            )
            job = selectors.jobs_for("release", release.pk).first()
            if job is None:  # not expected: the service creates the job with the release
                return redirect("web:release_list", repo=repository.name)
            return redirect("web:job_detail", job_id=job.pk)
    context = {"repository": repository, "preview": preview, "form": form, "waiting": waiting, "ci": ci}
    return render(request, "web/release_new.html", context)


def _commits_behind(repository: Repository, preview: selectors.ReleasePreview, user: Any) -> str:
    """Why the commit list does not show master..staging at the head being released yet, or "".

    The list is recorded by the last refresh (no git runs in a request). Right after a
    promotion staging has a new head the list does not know: the page then asks for a
    refresh, once per staging head, and waits for it instead of showing a stale list.
    """
    if preview.refusal or not preview.staging_sha:
        return ""
    if preview.commits and preview.commits[0].get("sha") == preview.staging_sha:
        return ""
    if has_perm(user, Perm.REFRESH):
        services.refresh(repository, actor=user, idempotency_key=f"preview-{repository.pk}-{preview.staging_sha}")
    return (
        f"Reading the commits of {repository.staging_branch} {preview.staging_sha[:10]} from the remote; "
        "Promote to master waits until the list shows exactly what it releases."
    )


@login_required
@snapshot_page
def release_list(request: HttpRequest, repo: str) -> HttpResponse:
    repository = repository_for(request, repo, Perm.VIEW)
    releases = repository.releases.select_related("released_by").prefetch_related("promotions__branch")
    page = keyset_page(
        releases, "id", before=cursor(request.GET.get("before")), after=cursor(request.GET.get("after")), size=PAGE_SIZE
    )
    deployed = where_deployed([r.pk for r in page])  # where each release ran, one query
    for release in page:
        release.deployed = deployed.get(release.pk, [])
    return render(request, "web/release_list.html", {"repository": repository, "page": page})

"""Requesting branches, a branch's page, and requesting its promotion to staging."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from releaseboard.releases import selectors, services
from releaseboard.roles import Perm
from releaseboard.web.access import branch_for, repository_for
from releaseboard.web.actions import act
from releaseboard.web.forms import RequestBranchForm, RequestPromotionForm, posted_key
from releaseboard.web.presenters import can_request_promotion, promotion_request_refusal
from releaseboard.web.requests import HtmxHttpRequest
from releaseboard.web.timeline import branch_timeline


@login_required
@require_http_methods(["GET", "POST"])
def branch_request(request: HttpRequest, repo: str) -> HttpResponse:
    repository = repository_for(request, repo, Perm.REQUEST_BRANCH)
    form = RequestBranchForm(request.POST if request.method == "POST" else None, names=repository.names)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            branch = services.request_branch(
                repository,
                actor=request.user,
                kind=data["kind"],
                name=data["name"],
                purpose=data["purpose"],
                ticket_url=data["ticket_url"],
                idempotency_key=form.key,
            )
        except services.Refused as exc:
            form.show_refusal(exc)
        else:
            messages.success(request, f"{branch.name} requested; it is created from the latest staging.")
            job = selectors.jobs_for("branch", branch.pk).first()
            if job is None:  # not expected: the service creates the job with the branch
                return redirect("web:branch_detail", repo=repository.name, branch_id=branch.pk)
            return redirect("web:job_detail", job_id=job.pk)
    context = {"repository": repository, "form": form, "names": repository.names, "final_name": _final_name(form)}
    return render(request, "web/branch_request.html", context)


def _final_name(form: RequestBranchForm) -> str:
    """The name the branch will get, as the page shows it before the script updates it."""
    data = form.cleaned_data if form.is_bound and hasattr(form, "cleaned_data") else {}
    kind = data.get("kind") or form["kind"].value() or "feature"
    prefix = form.names.hotfix_prefix if kind == "hotfix" else form.names.feature_prefix
    return prefix + (data.get("name") or "<name>")


@login_required
def branch_detail(request: HtmxHttpRequest, repo: str, branch_id: int) -> HttpResponse:
    branch = branch_for(request, repo, branch_id, Perm.VIEW)
    context = {
        "repository": branch.repository,
        "branch": branch,
        "promotions": branch.promotions.select_related("requested_by").order_by("-id"),
        "jobs": selectors.jobs_for("branch", branch.pk).select_related("created_by"),
        "promotable": can_request_promotion(branch),
        "promotion_refusal": promotion_request_refusal(request.user, branch),
        "timeline": branch_timeline(branch),
        "may_update": services.may_update_branch(request.user, branch),
    }
    # The facts poll themselves, so a refresh that moved the head shows without a reload.
    template = "web/branch_detail.html#facts" if request.htmx else "web/branch_detail.html"
    return render(request, template, context)


@login_required
@require_http_methods(["GET", "POST"])
def promotion_request(request: HttpRequest, repo: str, branch_id: int) -> HttpResponse:
    branch = branch_for(request, repo, branch_id, Perm.REQUEST_PROMOTION)
    if refusal := promotion_request_refusal(request.user, branch):
        raise PermissionDenied(refusal)
    if request.method == "POST":
        form = RequestPromotionForm(request.POST)
    else:
        first_line = branch.purpose.strip().splitlines()[0] if branch.purpose.strip() else branch.short_name
        form = RequestPromotionForm(initial={"title": first_line[:200], "description": branch.purpose})
    if request.method == "POST" and form.is_valid():
        try:
            promotion = services.request_promotion(
                branch,
                actor=request.user,
                title=form.cleaned_data["title"],
                description=form.cleaned_data["description"],
                idempotency_key=form.key,
            )
        except services.Refused as exc:
            form.show_refusal(exc)
        else:
            messages.success(request, f"Promotion #{promotion.pk} requested.")
            return redirect("web:promotion_detail", repo=branch.repository.name, promotion_id=promotion.pk)
    context = {"repository": branch.repository, "branch": branch, "form": form}
    return render(request, "web/promotion_request.html", context)


@login_required
@require_POST
def branch_update(request: HttpRequest, repo: str, branch_id: int) -> HttpResponse:
    """ "Update from staging": the branch's owner or a release manager (the service checks again)."""
    branch = branch_for(request, repo, branch_id, Perm.VIEW)
    if not services.may_update_branch(request.user, branch):
        raise PermissionDenied("Only the branch's owner or a release manager may update it from staging.")
    return act(
        request,
        lambda: services.update_branch(branch, actor=request.user, idempotency_key=posted_key(request.POST)),
        back=lambda: redirect("web:branch_detail", repo=branch.repository.name, branch_id=branch.pk),
        then=lambda job: redirect("web:job_detail", job_id=job.pk),
        success=f"Merging {branch.repository.staging_branch} into {branch.name}.",
    )

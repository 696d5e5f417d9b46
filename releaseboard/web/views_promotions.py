"""A promotion's page and its two buttons: run the tests again, promote to staging."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from releaseboard.policy import guard
from releaseboard.radar import selectors as radar
from releaseboard.releases import selectors, services
from releaseboard.releases.models import PromotionState
from releaseboard.review.models import PromotionReview
from releaseboard.roles import Perm
from releaseboard.web.access import promotion_for
from releaseboard.web.checks import promotion_checks
from releaseboard.web.diffview import file_views, render_patch
from releaseboard.web.forms import posted_key
from releaseboard.web.presenters import live_log, promotion_phase, review_context
from releaseboard.web.requests import HtmxHttpRequest
from releaseboard.web.snapshot import snapshot_page


@login_required
@snapshot_page
def promotion_detail(request: HtmxHttpRequest, repo: str, promotion_id: int) -> HttpResponse:
    promotion = promotion_for(request, repo, promotion_id, Perm.VIEW)
    repository = promotion.repository
    jobs = list(selectors.jobs_for("promotion", promotion.pk).select_related("created_by"))
    latest_job = jobs[0] if jobs else None
    test = selectors.latest_test(repository, promotion.merge_sha)
    passing = selectors.has_passing_test(repository, promotion.merge_sha)
    actionable = services.is_actionable(promotion)
    phase = promotion_phase(promotion, test, passing, latest_job)
    context = {
        "repository": repository,
        "promotion": promotion,
        "jobs": jobs,
        "test": test,
        "test_runs": promotion.test_runs.select_related("job").order_by("-id"),
        "phase": phase,
        "can_promote_now": actionable and passing,
        # Shown next to a disabled button, so nobody presses it to learn why it will not work.
        "promote_refusal": guard.promotion_refusal(promotion) if actionable and passing else "",
        "can_retest_now": actionable,
        "radar_landing": radar.landing_conflicts(promotion.branch) if actionable else [],
        "ci_checks": promotion_checks(promotion),
        # Keep the status fresh while a job works on this promotion; stop when none does.
        "polling": promotion.state == PromotionState.PROMOTING or any(j.is_active for j in jobs),
    }
    if request.htmx:
        response = render(request, "web/promotion_detail.html#status", context)
        if not context["polling"]:
            # Only the status poller asks with htmx: its job just ended, and the changes,
            # the failure summary and the log it recorded are worth a fresh page.
            response["HX-Refresh"] = "true"
        return response
    context.update(review_context(promotion))
    if latest_job is not None:
        context["log"] = live_log(latest_job)
    return render(request, "web/promotion_detail.html", context)


@login_required
@require_POST
def promotion_retest(request: HttpRequest, repo: str, promotion_id: int) -> HttpResponse:
    promotion = promotion_for(request, repo, promotion_id, Perm.RUN_TESTS)
    try:
        services.retest_promotion(promotion, actor=request.user, idempotency_key=posted_key(request.POST))
    except services.Refused as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Merging with the current staging and testing again.")
    return redirect("web:promotion_detail", repo=repo, promotion_id=promotion.pk)


@login_required
@require_POST
def promotion_promote(request: HttpRequest, repo: str, promotion_id: int) -> HttpResponse:
    promotion = promotion_for(request, repo, promotion_id, Perm.PROMOTE)
    try:
        services.promote(promotion, actor=request.user, idempotency_key=posted_key(request.POST))
    except services.Refused as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Promoting {promotion.branch.name} to staging.")
    return redirect("web:promotion_detail", repo=repo, promotion_id=promotion.pk)


@login_required
def promotion_file(request: HtmxHttpRequest, repo: str, promotion_id: int, index: int) -> HttpResponse:
    """One file's diff from the stored review: large files load only when asked for."""
    promotion = promotion_for(request, repo, promotion_id, Perm.VIEW)
    review = PromotionReview.objects.filter(promotion=promotion).first()
    files = review.data.get("files", []) if review else []
    if not 0 <= index < len(files):
        raise Http404("No such file in this promotion's changes.")
    entry = files[index]
    context = {
        "repository": promotion.repository,
        "promotion": promotion,
        "file": file_views(files)[index],
        "rows": render_patch(entry["path"], entry["patch"]) if entry["patch"] else "",
    }
    template = "web/_diff_file.html#body" if request.htmx else "web/_diff_file.html"
    return render(request, template, context)

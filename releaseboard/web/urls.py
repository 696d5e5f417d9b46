from __future__ import annotations

from django.templatetags.static import static
from django.urls import URLPattern, path
from django.views.generic.base import RedirectView

from releaseboard.web import (
    views_audit,
    views_board,
    views_branches,
    views_deployments,
    views_jobs,
    views_metrics,
    views_policy,
    views_promotions,
    views_radar,
    views_releases,
    views_webhooks,
)


class FaviconRedirect(RedirectView):
    """To the static file's current (hashed) URL, looked up per request: a permanent
    redirect would pin browsers to one version, and a lookup at import would need the
    static manifest before the first request."""

    permanent = False

    def get_redirect_url(self, *args: object, **kwargs: object) -> str:
        return static("favicon.svg")


app_name = "web"
urlpatterns: list[URLPattern] = [
    path("", views_board.repository_list, name="repository_list"),
    # Browsers ask for /favicon.ico on pages without a <link rel=icon> (e.g. a JSON file).
    path("favicon.ico", FaviconRedirect.as_view(), name="favicon"),
    path("r/<slug:repo>/", views_board.board, name="board"),
    path("r/<slug:repo>/refresh/", views_board.repository_refresh, name="repository_refresh"),
    path("r/<slug:repo>/test-staging/", views_board.staging_test, name="staging_test"),
    path("r/<slug:repo>/copy-master/", views_board.copy_master, name="copy_master"),
    path("r/<slug:repo>/branches/new/", views_branches.branch_request, name="branch_request"),
    path("r/<slug:repo>/branches/<int:branch_id>/", views_branches.branch_detail, name="branch_detail"),
    path("r/<slug:repo>/branches/<int:branch_id>/update/", views_branches.branch_update, name="branch_update"),
    path("r/<slug:repo>/branches/<int:branch_id>/promote/", views_branches.promotion_request, name="promotion_request"),
    path("r/<slug:repo>/promotions/<int:promotion_id>/", views_promotions.promotion_detail, name="promotion_detail"),
    path(
        "r/<slug:repo>/promotions/<int:promotion_id>/files/<int:index>/",
        views_promotions.promotion_file,
        name="promotion_file",
    ),
    path(
        "r/<slug:repo>/promotions/<int:promotion_id>/retest/",
        views_promotions.promotion_retest,
        name="promotion_retest",
    ),
    path(
        "r/<slug:repo>/promotions/<int:promotion_id>/promote/",
        views_promotions.promotion_promote,
        name="promotion_promote",
    ),
    path("r/<slug:repo>/radar/<int:branch_id>/<int:other_id>/", views_radar.radar_cell, name="radar_cell"),
    path("r/<slug:repo>/release/", views_releases.release_new, name="release_new"),
    path("r/<slug:repo>/releases/", views_releases.release_list, name="release_list"),
    path("r/<slug:repo>/policy/", views_policy.policy_page, name="policy"),
    path("r/<slug:repo>/policy/drift/<int:alarm_id>/adopt/", views_policy.drift_adopt, name="drift_adopt"),
    path("r/<slug:repo>/policy/lock/", views_policy.policy_lock, name="policy_lock"),
    path("r/<slug:repo>/policy/unlock/", views_policy.policy_unlock, name="policy_unlock"),
    path("r/<slug:repo>/policy/windows/", views_policy.window_add, name="freeze_window_add"),
    path(
        "r/<slug:repo>/policy/windows/<int:window_id>/remove/", views_policy.window_remove, name="freeze_window_remove"
    ),
    path("r/<slug:repo>/policy/exceptions/", views_policy.exception_request, name="exception_request"),
    path(
        "r/<slug:repo>/policy/exceptions/<int:exception_id>/approve/",
        views_policy.exception_approve,
        name="exception_approve",
    ),
    path("r/<slug:repo>/environments/", views_deployments.environment_list, name="environment_list"),
    path("r/<slug:repo>/environments/lane/", views_deployments.environment_lane, name="environment_lane"),
    path("r/<slug:repo>/environments/<slug:env>/", views_deployments.environment_detail, name="environment_detail"),
    path(
        "r/<slug:repo>/environments/<slug:env>/deploy/", views_deployments.environment_deploy, name="environment_deploy"
    ),
    path(
        "r/<slug:repo>/environments/<slug:env>/rollback/",
        views_deployments.environment_rollback,
        name="environment_rollback",
    ),
    path(
        "r/<slug:repo>/environments/<slug:env>/redeploy/",
        views_deployments.environment_redeploy,
        name="environment_redeploy",
    ),
    path("r/<slug:repo>/environments/<slug:env>/lock/", views_deployments.environment_lock, name="environment_lock"),
    path(
        "r/<slug:repo>/deployments/<int:deployment_id>/incident/", views_deployments.incident_open, name="incident_open"
    ),
    path("r/<slug:repo>/incidents/<int:incident_id>/close/", views_deployments.incident_close, name="incident_close"),
    path("r/<slug:repo>/metrics/", views_metrics.metrics, name="metrics"),
    path("r/<slug:repo>/metrics/<slug:metric>/", views_metrics.metric_rows, name="metric_rows"),
    path("metrics/", views_metrics.metrics, name="metrics_all"),
    path("metrics/<slug:metric>/", views_metrics.metric_rows, name="metric_rows_all"),
    path("jobs/", views_jobs.job_list, name="job_list"),
    path("jobs/attention/", views_jobs.job_attention, name="job_attention"),
    path("jobs/<int:job_id>/", views_jobs.job_detail, name="job_detail"),
    path("jobs/<int:job_id>/retry/", views_jobs.job_retry, name="job_retry"),
    path("jobs/<int:job_id>/log/", views_jobs.job_log, name="job_log"),
    path("jobs/<int:job_id>/cancel/", views_jobs.job_cancel, name="job_cancel"),
    path("webhooks/", views_webhooks.webhook_list, name="webhook_list"),
    path("webhooks/<int:subscription_id>/", views_webhooks.webhook_detail, name="webhook_detail"),
    path(
        "webhooks/<int:subscription_id>/<slug:action>/",
        views_webhooks.webhook_action,
        name="webhook_action",
    ),
    path(
        "webhooks/<int:subscription_id>/deliveries/<int:delivery_id>/redeliver/",
        views_webhooks.delivery_redeliver,
        name="delivery_redeliver",
    ),
    path("audit/", views_audit.audit_list, name="audit_list"),
    path("audit/verify/", views_audit.audit_verify, name="audit_verify"),
    path("audit/verify/full/", views_audit.audit_verify_full, name="audit_verify_full"),
    path("audit/checkpoint/", views_audit.audit_checkpoint, name="audit_checkpoint"),
    path("audit/export.csv", views_audit.audit_export_csv, name="audit_export_csv"),
    path("audit/export.jsonl", views_audit.audit_export_jsonl, name="audit_export_jsonl"),
]

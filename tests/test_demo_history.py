"""The demo's environments and made-up history: written once, and the metrics computed
from them by the same code as from real deployments."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from releaseboard.deployments.models import Deployment, DeploymentCommit, Environment, Incident
from releaseboard.metrics import compute
from releaseboard.releases.models import Repository

pytestmark = pytest.mark.django_db


def test_demo_environments_and_history_make_every_figure_meaningful(settings, tmp_path: Path, admin_user, ops) -> None:
    settings.VAR_DIR = tmp_path
    admin_user.is_superuser = True
    admin_user.save()
    repo = Repository.objects.create(name="shop", remote_url="/tmp/shop.git", test_command="true")
    out = StringIO()
    call_command("load_demo_environments", stdout=out)
    call_command("load_demo_environments", stdout=out)  # idempotent

    assert set(Environment.objects.values_list("name", flat=True)) == {"staging", "production"}
    assert "Kept the demo delivery history" in out.getvalue()
    rows = Deployment.objects.filter(repository=repo)
    assert rows.exists() and not rows.filter(demo_history=False).exists()
    assert rows.filter(kind="rollback").count() == 1 and rows.filter(state="failed").count() == 1
    assert Incident.objects.count() == 1
    resolved_by = Incident.objects.get().resolved_by_deployment
    assert resolved_by is not None and resolved_by.kind == "rollback"
    assert (tmp_path / "demo" / "environments").is_dir()

    report = compute.report([repo.pk], 90, timezone.now())
    for key in ("frequency", "lead_median", "lead_p90", "failure_rate", "restore", "rework"):
        assert report.figure(key).value is not None, key
    assert report.figure("failure_rate").numerator == 1  # the deployment the rollback replaced
    assert DeploymentCommit.objects.filter(repository=repo).count() == report.figure("lead_median").denominator
    production = Environment.objects.get(name="production")
    assert production.current is not None and production.current.state == "succeeded"

"""The environments pages, the board's lane and the release page, through the views."""

from __future__ import annotations

import pytest
from django.urls import reverse

from releaseboard.deployments.models import Deployment
from tests.conftest import run_jobs
from tests.deploy_flows import environments, release

pytestmark = pytest.mark.django_db


def test_deploying_through_the_pages_shows_on_the_board_and_the_release_page(
    client, repository, remote, developer, release_manager, ops, tmp_path
):
    staging, production = environments(repository, tmp_path / "envs")
    v1 = release(repository, remote, developer, release_manager, "one", "0.1.0")
    client.force_login(ops)

    # Production first: refused, with the reason in the page's message.
    response = client.post(
        reverse("web:environment_deploy", args=["shop", "production"]), {"version": "0.1.0"}, follow=True
    )
    assert "never deployed to a staging-tier environment" in response.content.decode()
    assert not Deployment.objects.exists()

    response = client.post(reverse("web:environment_deploy", args=["shop", "staging"]), {"version": "0.1.0"})
    assert response.status_code == 302 and "/jobs/" in response["Location"]
    run_jobs()
    client.post(reverse("web:environment_deploy", args=["shop", "production"]), {"version": "0.1.0"})
    run_jobs()

    board = client.get(reverse("web:board", args=["shop"])).content.decode()
    assert 'data-environment="production"' in board and 'data-runs="0.1.0"' in board
    lane = client.get(reverse("web:environment_lane", args=["shop"]), headers={"HX-Request": "true"})
    assert lane.content.decode().count("data-runs=") == 2
    releases = client.get(reverse("web:release_list", args=["shop"])).content.decode()
    assert "Deployed to:" in releases and "production" in releases

    # A rollback needs a reason; with one, the board says what runs and why.
    v2 = release(repository, remote, developer, release_manager, "two", "0.2.0")
    for env in ("staging", "production"):
        client.post(reverse("web:environment_deploy", args=["shop", env]), {"version": v2.version})
        run_jobs()
    client.post(
        reverse("web:environment_rollback", args=["shop", "production"]),
        {"version": v1.version, "reason": "Login broken"},
    )
    run_jobs()
    board = client.get(reverse("web:board", args=["shop"])).content.decode()
    assert "production runs v0.1.0, rolled back from v0.2.0" in " ".join(board.split())
    assert "Login broken" in board

    # Ops mark the 0.2.0 deployment as an incident's cause; it shows until resolved.
    bad = Deployment.objects.get(environment=production, version="0.2.0", kind="deploy")
    client.post(reverse("web:incident_open", args=["shop", bad.pk]), {"description": "Login 500s"})
    page = client.get(reverse("web:environment_list", args=["shop"])).content.decode()
    assert "Login 500s" in page and "open incident" in page

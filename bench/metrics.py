"""Time the Metrics page at 10,000 deployments and 100,000 commits (goal: 300 ms).

Builds a throwaway database (SQLite in --workdir, or the PostgreSQL database named by
--database-url: it must be empty or a previous run of this script, never a real one) with
20 repositories, each with a staging and a production environment, and over the last
365 days: --deployments deployments (about 60 % production, 2 % failed, a rollback after
about 2 % of production deployments), --commits commits that reached production (each
row of DeploymentCommit, attached to a production deployment), and an incident for about
3 % of production deployments. Rows are bulk-inserted; nothing runs a job.

It times, as the median of --rounds runs:
* compute.report for all repositories and for one, over 30, 90 and 365 days (the figures
  with their numerators and denominators and the weekly buckets: seven queries);
* the whole page (/metrics/?days=365 and /r/<repo>/metrics/?days=365) through Django's
  test client, signed in, counting its SQL queries;
* a raw baseline in the same run: the same figures computed the naive way, loading every
  lead time of the window into Python and sorting it (what the indexed nearest-rank reads
  replace).

    .venv/bin/python bench/metrics.py
    .venv/bin/python bench/metrics.py --database-url postgres://postgres@127.0.0.1:5432/rb_metrics_bench
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REPOSITORIES = 20


def setup(workdir: Path, database_url: str | None) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["RELEASEBOARD_VAR_DIR"] = str(workdir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "releaseboard.settings"
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def fill(deployments: int, commits: int, now: datetime, seed: int = 5) -> None:
    from django.db import connection, transaction

    from releaseboard.deployments.models import Deployment, DeploymentCommit, Environment, Incident
    from releaseboard.releases.models import Repository

    if Deployment.objects.count() >= deployments:
        print(f"reusing {Deployment.objects.count()} deployments, {DeploymentCommit.objects.count()} commits")
        return
    rng = random.Random(seed)
    began = time.perf_counter()
    with transaction.atomic():
        envs = []
        for i in range(REPOSITORIES):
            repo = Repository.objects.create(name=f"repo-{i:02d}", remote_url=f"/srv/repo-{i}.git", test_command="true")
            envs.append(
                (
                    Environment.objects.create(repository=repo, name="staging", tier="staging", deploy_command="true"),
                    Environment.objects.create(
                        repository=repo, name="production", tier="production", deploy_command="true"
                    ),
                )
            )
        rows = []
        for n in range(deployments):
            staging, production = envs[n % REPOSITORIES]
            env = production if rng.random() < 0.6 else staging
            finished = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
            rows.append(
                Deployment(
                    environment=env,
                    repository_id=env.repository_id,
                    tier=env.tier,
                    version=f"1.{n // 100}.{n % 100}",
                    sha=f"{rng.getrandbits(160):040x}",
                    state="failed" if rng.random() < 0.02 else "succeeded",
                    hotfix=rng.random() < 0.1,
                    created_at=finished - timedelta(minutes=5),
                    finished_at=finished,
                )
            )
        Deployment.objects.bulk_create(rows, batch_size=2000)
        prod = list(
            Deployment.objects.filter(tier="production", state="succeeded").order_by("environment_id", "finished_at")
        )
        rollbacks, incidents = [], []
        for before, after in zip(prod, prod[1:], strict=False):
            if before.environment_id != after.environment_id:
                continue
            if rng.random() < 0.02:
                after.kind, after.previous_id = "rollback", before.pk
                rollbacks.append(after)
            elif rng.random() < 0.03:
                assert before.finished_at is not None  # only succeeded deployments, which have finished
                started = before.finished_at + timedelta(minutes=30)
                incidents.append(
                    Incident(
                        repository_id=before.repository_id,
                        cause=before,
                        started_at=started,
                        description="bench",
                        resolved_at=after.finished_at,
                        resolved_by_deployment=after,
                    )
                )
        Deployment.objects.bulk_update(rollbacks, ["kind", "previous"], batch_size=2000)
        Incident.objects.bulk_create(incidents, batch_size=2000)
        batch = []
        for n in range(commits):
            d = prod[rng.randrange(len(prod))]
            deployed = d.finished_at
            assert deployed is not None
            lead = int(rng.lognormvariate(11, 1.2))  # median about 17 hours, a long tail
            batch.append(
                DeploymentCommit(
                    deployment_id=d.pk,
                    repository_id=d.repository_id,
                    sha=f"{n:040x}",
                    subject="bench",
                    authored_at=deployed - timedelta(seconds=lead),
                    started_at=deployed - timedelta(seconds=lead),
                    deployed_at=deployed,
                    lead_seconds=lead,
                )
            )
            if len(batch) == 5000:
                DeploymentCommit.objects.bulk_create(batch)
                batch = []
        DeploymentCommit.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"filled in {time.perf_counter() - began:.1f} s: {Deployment.objects.count()} deployments, "
        f"{DeploymentCommit.objects.count()} commits, {len(incidents)} incidents, {len(rollbacks)} rollbacks"
    )


def timed(label: str, fn: Callable[[], Any], rounds: int) -> float:
    fn()  # warm
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - began) * 1000)
    median = statistics.median(samples)
    print(f"{label:<62} {median:9.2f} ms  (min {min(samples):.2f}, max {max(samples):.2f})")
    return median


def naive(repository_ids: list[int] | None, days: int, now: datetime) -> tuple[float, float]:
    """The baseline: every lead time of the window loaded and sorted in Python."""
    from releaseboard.metrics import compute

    since = now - timedelta(days=days)
    values = sorted(compute.lead_commits(repository_ids, since, now).values_list("lead_seconds", flat=True))
    return compute.nearest_rank(values, 50) or 0, compute.nearest_rank(values, 90) or 0


def run(rounds: int, now: datetime) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    from releaseboard.metrics import compute
    from releaseboard.releases.models import Repository

    first = Repository.objects.order_by("pk").first()
    if first is None:
        raise SystemExit("No repository in the bench database; fill() did not run.")
    one = [first.pk]
    results: dict[str, Any] = {"vendor": connection.vendor}
    for days in compute.WINDOWS:
        results[f"report all {days}d"] = timed(
            f"compute.report, all repositories, {days} days", functools.partial(compute.report, None, days, now), rounds
        )
    results["report one 365d"] = timed(
        "compute.report, one repository, 365 days", lambda: compute.report(one, 365, now), rounds
    )
    results["baseline lead time all 365d"] = timed(
        "baseline: all lead times of 365 days into Python, sorted", lambda: naive(None, 365, now), rounds
    )
    fast = compute.report(None, 365, now)
    assert (fast.figure("lead_median").value, fast.figure("lead_p90").value) == naive(None, 365, now)
    user, _ = User.objects.get_or_create(username="bench", defaults={"is_superuser": True, "is_active": True})
    client = Client()
    client.force_login(user)
    with override_settings(ALLOWED_HOSTS=["*"], SECURE_SSL_REDIRECT=False):
        for label, url in (("all", "/metrics/?days=365"), ("one", "/r/repo-00/metrics/?days=365")):
            with CaptureQueriesContext(connection) as captured:
                response = client.get(url)
            assert response.status_code == 200, response.status_code
            results[f"page {label} queries"] = len(captured.captured_queries)
            results[f"page {label} 365d"] = timed(
                f"whole page {url} ({len(captured.captured_queries)} queries)",
                functools.partial(client.get, url),
                rounds,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "releaseboard-bench-metrics")
    parser.add_argument("--database-url")
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--commits", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    setup(args.workdir, args.database_url)
    now = datetime.now(UTC)
    fill(args.deployments, args.commits, now)
    results = run(args.rounds, now)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

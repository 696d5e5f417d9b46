"""Throughput as on two worker machines: 100 promotions over 10 repositories.

Two Celery worker processes share only PostgreSQL, Redis and the remotes, as two
machines would: each has its own RELEASEBOARD_VAR_DIR (mirrors, worktrees) and its
own hostname (`-n`); they share the secret key and the audit signing key, as a
deployment's configuration does. This process plays the users, through the real
services:

* registers 10 repositories (each a small generated bare remote with 10 feature
  branches, each adding its own file, so every promotion merges cleanly);
* requests all 100 promotions at once (100 test jobs queued; test_command `true`);
* per repository, like a release manager, clicks "Promote" on the next promotion as
  soon as the previous one landed and this one's test passed (a promotion tested
  against an older staging is merged and tested again by its promote job, then pushed).

Checked at the end: every promotion is promoted once (Promotion rows, the audit log,
and each remote's staging history has each promotion's merge commit exactly once);
both workers ran jobs of most repositories; jobs of different repositories ran at the
same time. Reported: wall time, jobs per second, queue wait (published -> started)
p50/p95.

    .venv/bin/python bench/throughput.py --database-url postgres://postgres@127.0.0.1:5432/rb_bench_throughput
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchdb import drop_redis_prefix, reset_postgres  # noqa: E402


def make_remote(path: Path, branches: int) -> list[str]:
    """A bare remote: master = staging with a few files, and `branches` feature branches
    off staging, each adding one file of its own (one git fast-import)."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "master", str(path)], check=True)
    who = "committer Dev <dev@example.invalid> 1700000000 +0000\n"

    def blob(text: str) -> bytes:
        return f"data {len(text.encode())}\n{text}\n".encode()

    stream = [b"commit refs/heads/master\n", who.encode(), blob("Initial commit")]
    for f in ("README", "src/app.py", "tests/test_app.py"):
        stream += [f"M 644 inline {f}\n".encode(), blob(f"# {f}\n")]
    stream.append(b"\nreset refs/heads/staging\nfrom refs/heads/master\n\n")
    names = []
    for i in range(branches):
        name = f"feature/change-{i:02d}"
        names.append(name)
        stream += [f"commit refs/heads/{name}\n".encode(), who.encode(), blob(f"Change {i}")]
        stream += [b"from refs/heads/master\n", f"M 644 inline src/change_{i:02d}.py\n".encode(), blob(f"N = {i}\n")]
        stream.append(b"\n")
    subprocess.run(["git", "--git-dir", str(path), "fast-import", "--quiet"], input=b"".join(stream), check=True)
    return names


def start_worker(name: str, var: Path, env: dict[str, str], concurrency: int) -> tuple[subprocess.Popen, Path]:
    var.mkdir(parents=True)
    log_path = var / "worker.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "releaseboard", "worker", "-Q", "git,tests", "-c", str(concurrency)]
        + ["-n", f"{name}@%h", "--without-mingle", "--without-gossip", "-l", "info"],
        cwd=ROOT,
        env={**env, "RELEASEBOARD_VAR_DIR": str(var)},
        stdout=open(log_path, "w"),  # noqa: SIM115 (the worker's log, for its lifetime)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while "ready." not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker {name} did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc, log_path


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", required=True, help="a throwaway PostgreSQL DB (dropped and created)")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--repositories", type=int, default=10)
    ap.add_argument("--promotions", type=int, default=10, help="per repository (default: %(default)s)")
    ap.add_argument("--concurrency", type=int, default=2, help="worker slots per worker (default: %(default)s)")
    ap.add_argument("--workdir", default="/tmp/releaseboard-throughput-bench")
    ap.add_argument("--timeout", type=float, default=1200)
    args = ap.parse_args()

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    reset_postgres(args.database_url)
    # What the machines share: the database, the broker (one key prefix: one deployment),
    # the secret key and the audit signing key.
    shared = {
        "DATABASE_URL": args.database_url,
        "CELERY_BROKER_URL": args.redis_url,
        "RELEASEBOARD_BROKER_PREFIX": f"rbbench-{uuid.uuid4().hex[:8]}:",
        "RELEASEBOARD_SECRET_KEY": secrets.token_urlsafe(50),
        "RELEASEBOARD_AUDIT_KEY_FILE": str(work / "audit-key"),
        "RELEASEBOARD_ALLOW_LOCAL_REPOSITORIES": "True",
        "RELEASEBOARD_WORKER_MAX_TASKS_PER_CHILD": "100000",
        "DJANGO_SETTINGS_MODULE": "releaseboard.settings",
    }
    os.environ.update(shared)
    os.environ["RELEASEBOARD_VAR_DIR"] = str(work / "web")
    (work / "web").mkdir()
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command

    from releaseboard.audit.models import AuditEvent
    from releaseboard.jobs.models import Job, JobState
    from releaseboard.policy.models import DriftAlarm, DriftState
    from releaseboard.policy.service import adopt_head
    from releaseboard.releases import selectors, services
    from releaseboard.releases.models import Branch, Promotion, PromotionState, Repository
    from releaseboard.roles import Role

    call_command("migrate", verbosity=0)

    def user(name: str, role: Role) -> Any:
        u = User.objects.create(username=name, email=f"{name}@example.com")
        u.groups.add(Group.objects.get_or_create(name=role.value)[0])
        return u

    admin, dev, rm = user("admin", Role.ADMIN), user("dev", Role.DEVELOPER), user("rm", Role.RELEASE_MANAGER)
    env = dict(os.environ)
    workers = [start_worker(f"machine{i}", work / f"machine{i}", env, args.concurrency) for i in (1, 2)]
    try:
        remotes: dict[int, Path] = {}
        branch_names: dict[int, list[str]] = {}
        for r in range(args.repositories):
            path = work / "remotes" / f"repo-{r:02d}.git"
            names = make_remote(path, args.promotions)
            repo = Repository(name=f"repo-{r:02d}", remote_url=str(path), test_command="true", test_timeout=300)
            services.save_repository(repo, actor=admin)
            remotes[repo.pk], branch_names[repo.pk] = path, names
        wait(lambda: not Job.objects.exclude(state__in=JobState.final()).exists(), args.timeout, "the sync jobs")
        first_job = Job.objects.order_by("-id").values_list("id", flat=True).first() or 0

        alarms: list[dict[str, Any]] = []

        def click_promote(p: Any) -> bool:
            """Promote; when a drift alarm refuses it, record the alarm and adopt the head as
            a release manager would after review (they are Releaseboard's own merges here)."""
            try:
                services.promote(p, actor=rm)
                return True
            except services.Refused:
                found = list(DriftAlarm.objects.filter(repository_id=p.repository_id, state=DriftState.OPEN))
                if not found:
                    raise
                for alarm in found:
                    owner = Promotion.objects.filter(promoted_sha=alarm.found_sha).first() or (
                        Promotion.objects.filter(merge_sha=alarm.found_sha).first()
                    )
                    alarms.append(
                        {
                            "repository": p.repository.name,
                            "branch": alarm.branch_name,
                            "found": alarm.found_sha,
                            "promotion": owner.pk if owner else None,
                        }
                    )
                    adopt_head(alarm, actor=rm, reason="Releaseboard's own merge commit", found_sha=alarm.found_sha)
                return False

        t0 = time.monotonic()
        lanes: dict[int, collections.deque[Any]] = {}
        for pk, names in branch_names.items():
            lanes[pk] = collections.deque()
            for name in names:
                branch = Branch.objects.select_related("repository").get(repository_id=pk, name=name)
                # The developer owns it, as one who requested it would (the promotion rule).
                Branch.objects.filter(pk=branch.pk).update(requested_by=dev)
                branch.requested_by = dev
                lanes[pk].append(services.request_promotion(branch, actor=dev, title=f"Promote {name}"))
        print(f"{sum(len(v) for v in lanes.values())} promotions requested", flush=True)
        promoting: dict[int, Any] = {}
        failures: list[tuple[int, str]] = []
        deadline = time.monotonic() + args.timeout
        while lanes or promoting:
            for pk in list(promoting):
                p = Promotion.objects.get(pk=promoting[pk].pk)
                if p.state == PromotionState.PROMOTED:
                    del promoting[pk]
                elif (
                    p.state == PromotionState.FAILED
                    and not Job.objects.filter(
                        subject_id=p.pk, kind__in=["promote", "test_promotion"], state__in=JobState.active()
                    ).exists()
                ):
                    # What a release manager would do: read the message, click "Promote" again.
                    failures.append((p.pk, p.state_message))
                    if len(failures) > 5 * args.repositories * args.promotions:
                        raise SystemExit(f"too many failures, the last: #{p.pk}: {p.state_message}")
                    p = Promotion.objects.select_related("repository", "branch").get(pk=p.pk)
                    if p.merge_sha and selectors.has_passing_test(p.repository, p.merge_sha):
                        click_promote(p)
                    else:
                        services.retest_promotion(p, actor=rm)
            for pk in list(lanes):
                if pk in promoting:
                    continue
                p = Promotion.objects.select_related("repository", "branch").get(pk=lanes[pk][0].pk)
                if p.merge_sha and selectors.has_passing_test(p.repository, p.merge_sha) and click_promote(p):
                    promoting[pk] = lanes[pk].popleft()
                    if not lanes[pk]:
                        del lanes[pk]
                elif p.state == PromotionState.FAILED:
                    raise SystemExit(f"promotion #{p.pk} failed its test: {p.state_message}")
            if time.monotonic() > deadline:
                raise SystemExit(f"not done after {args.timeout} s")
            time.sleep(0.05)
        wait(lambda: not Job.objects.exclude(state__in=JobState.final()).exists(), 300, "the last jobs")
        wall = time.monotonic() - t0
    finally:
        for proc, _ in workers:
            stop(proc)
        drop_redis_prefix(args.redis_url, shared["RELEASEBOARD_BROKER_PREFIX"])

    # -- checks --------------------------------------------------------------------------
    total = args.repositories * args.promotions
    promotions = list(Promotion.objects.all())
    promoted = [p for p in promotions if p.state == PromotionState.PROMOTED]
    assert len(promoted) == total, f"{len(promoted)} of {total} promoted"
    assert len({p.promoted_sha for p in promoted}) == total, "two promotions share a merge commit"
    audited: collections.Counter[Any] = collections.Counter(
        AuditEvent.objects.filter(action="promotion.promoted").values_list("object_id", flat=True)
    )
    assert all(audited[str(p.pk)] == 1 or audited[p.pk] == 1 for p in promoted), f"audit: {audited}"
    on_remote: collections.Counter[str] = collections.Counter()
    for pk, path in remotes.items():
        log = subprocess.run(
            ["git", "--git-dir", str(path), "log", "--first-parent", "--format=%H %P", "refs/heads/staging"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        merges = [line.split()[0] for line in log if len(line.split()) == 3]
        assert len(merges) == args.promotions, f"repo {pk}: {len(merges)} merge commits on staging"
        on_remote.update(merges)
    assert all(on_remote[p.promoted_sha] == 1 for p in promoted), "a merge commit is missing or twice on staging"

    jobs = list(Job.objects.filter(pk__gt=first_job))
    failed = [j for j in jobs if j.state != JobState.SUCCEEDED]
    by_worker: dict[str, collections.Counter[str]] = {}
    job_worker = {}
    for i, (_, log_path) in enumerate(workers, 1):
        name = f"machine{i}"
        for m in re.finditer(r"job (\d+) \((\w+)\) (\w+):", log_path.read_text()):
            job_worker[int(m.group(1))] = name
    for j in jobs:
        by_worker.setdefault(job_worker.get(j.pk, "?"), collections.Counter())[j.scope_name] += 1
    waits = [(j.started_at - (j.published_at or j.created_at)).total_seconds() for j in jobs if j.started_at]
    runs = [(j.finished_at - j.started_at).total_seconds() for j in jobs if j.started_at and j.finished_at]
    # Parallel: the most jobs of different repositories running at one moment.
    edges = sorted(
        [(j.started_at, 1, j.scope_name) for j in jobs if j.started_at]
        + [(j.finished_at, -1, j.scope_name) for j in jobs if j.finished_at]
    )
    running: collections.Counter[str] = collections.Counter()
    most = 0
    for _, step, scope in edges:
        running[scope] += step
        most = max(most, sum(1 for v in running.values() if v > 0))
    kinds = collections.Counter(j.kind for j in jobs)

    load = os.getloadavg()
    print(
        f"\n{total} promotions over {args.repositories} repositories, 2 workers x {args.concurrency} slots, "
        f"nproc={os.cpu_count()}, load average {load[0]:.1f}/{load[1]:.1f}"
    )
    print(f"all {total} landed once: Promotion rows, audit 'promotion.promoted', staging first-parent history")
    print(f"wall time {wall:.1f} s; {len(jobs)} jobs ({dict(kinds)}), {len(failed)} not succeeded")
    if failures:
        print(f"{len(failures)} promotions FAILED on the way and were promoted again by a second click:")
        for message, n in collections.Counter(m for _, m in failures).most_common():
            print(f"  {n} x {message[:300]}")
    if alarms:
        print(f"{len(alarms)} drift alarms stopped promotions and were adopted (as after a review):")
        for a in alarms:
            print(f"  {a['repository']} {a['branch']} -> {a['found'][:10]}, merge commit of #{a['promotion']}")
    print(f"throughput {len(jobs) / wall:.2f} jobs/s, {total / wall:.2f} promotions/s")
    print(f"queue wait (published -> started): p50 {pct(waits, 50):.2f} s, p95 {pct(waits, 95):.2f} s")
    print(f"job run time: p50 {statistics.median(runs):.2f} s, p95 {pct(runs, 95):.2f} s")
    print(f"most repositories with a job running at the same moment: {most}")
    for name, counter in sorted(by_worker.items()):
        print(f"  {name}: {sum(counter.values())} jobs over {len(counter)} repositories")
    return 0


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())

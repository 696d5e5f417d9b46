"""One Releaseboard side of bench/jobs_path.py, in its own process (so SQLite and
PostgreSQL sides each have their own Django settings).

It sets up a var dir and a database, registers the repository through the real
service and runs its sync job, then answers JSON commands on stdin, one a line:

    {"op": "promote", "branch": NAME}   request_promotion -> run its test job ->
                                         promote -> run the promote job
    {"op": "release"}                   promote_to_master -> run the release job
    {"op": "sync"}                      refresh -> run the sync job
    {"op": "profile", "branch": NAME}   the same as promote, under cProfile
    {"op": "quit"}

Jobs run in this process exactly as a worker runs them: `execution.run(job_id)` does
the claim, lease, heartbeat thread, steps, log and audit writes. With --broker-url a
real Celery worker subprocess runs them instead, and the timings are click to remote
moved ("click_promote", "click_release").

Not meant to be run by hand; bench/jobs_path.py starts it.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import json
import os
import pstats
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchdb import drop_redis_prefix, reset_postgres  # noqa: E402

# Counts of git processes by subcommand, for every process this one starts (GitPython
# included: it binds Popen at import, so the class method is wrapped, not the name).
GIT_CALLS: collections.Counter[str] = collections.Counter()
_execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]


def _counting_execute_child(self: Any, args: Any, *rest: Any, **kw: Any) -> Any:
    argv = [args] if isinstance(args, (str, bytes)) else list(args)
    if argv and os.path.basename(str(argv[0])) == "git":
        it = iter(argv[1:])
        sub = "?"
        for a in it:
            a = str(a)
            if a in ("-C", "-c", "--git-dir", "--work-tree"):
                next(it, None)
            elif not a.startswith("-"):
                sub = a
                break
        GIT_CALLS[sub] += 1
    return _execute_child(self, args, *rest, **kw)


subprocess.Popen._execute_child = _counting_execute_child  # type: ignore[attr-defined]


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished children (the git
    processes): less sensitive than wall time to other work on a shared machine."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def setup_env(args: argparse.Namespace) -> None:
    var = Path(args.dir) / "var"
    var.mkdir(parents=True, exist_ok=True)
    os.environ["RELEASEBOARD_VAR_DIR"] = str(var)
    os.environ["DJANGO_SETTINGS_MODULE"] = "releaseboard.settings"
    os.environ["RELEASEBOARD_ALLOW_LOCAL_REPOSITORIES"] = "True"
    os.environ.setdefault("RELEASEBOARD_GIT_NAME", "Releaseboard Bench")
    if args.database_url:
        reset_postgres(args.database_url)
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
        for old in var.glob("db.sqlite3*"):
            old.unlink()
    if args.broker_url:
        os.environ["CELERY_BROKER_URL"] = args.broker_url
        os.environ["RELEASEBOARD_BROKER_PREFIX"] = args.broker_prefix
    else:
        os.environ.pop("CELERY_BROKER_URL", None)


def landed(job: dict[str, Any], at: Any) -> None:
    """When what the user waits for was committed, in ms from the job's start: the test
    result recorded, the promotion marked promoted, the release marked released. What the
    job does after (the release preview, branch facts and the radar against the new
    staging, the job's own end) is in its "ms" only."""
    job["landed_ms"] = (at.timestamp() - job["wall0"]) * 1000


class Side:
    def __init__(self, args: argparse.Namespace) -> None:
        import django

        django.setup()
        from django.contrib.auth.models import Group, User
        from django.core.management import call_command

        from releaseboard.releases import services
        from releaseboard.releases.models import Repository
        from releaseboard.roles import Role

        call_command("migrate", verbosity=0)

        def user(name: str, role: Role) -> Any:
            u = User.objects.create(username=name, email=f"{name}@example.com")
            u.groups.add(Group.objects.get_or_create(name=role.value)[0])
            return u

        self.admin = user("admin", Role.ADMIN)
        self.dev = user("dev", Role.DEVELOPER)
        self.rm = user("rm", Role.RELEASE_MANAGER)
        self.remote = args.remote
        # test_command "true": the test's own cost is ~0, so the jobs' overhead shows.
        repo = Repository(name="bench", remote_url=args.remote, test_command="true", test_timeout=600)
        services.save_repository(repo, actor=self.admin)
        self.repo_pk = repo.pk
        self.worker: subprocess.Popen | None = None
        self.broker = (args.broker_url, args.broker_prefix) if args.broker_url else None
        if args.broker_url:
            self.wait_all_final(600, run_here=True)
            self.start_worker(args)
        else:
            self.drain()
        self.repo = Repository.objects.get(pk=self.repo_pk)

    # -- jobs ---------------------------------------------------------------------------

    def drain(self) -> int:
        """Run every queued job here, oldest first (the sync, a staging test): setup only."""
        from releaseboard.jobs import execution
        from releaseboard.jobs.models import Job, JobState

        n = 0
        while (job := Job.objects.filter(state=JobState.QUEUED).order_by("id").first()) is not None:
            execution.run(job.pk)
            n += 1
        return n

    def wait_all_final(self, timeout: float, run_here: bool = False) -> None:
        from releaseboard.jobs.models import Job, JobState

        if run_here:
            self.drain()
        deadline = time.monotonic() + timeout
        while Job.objects.exclude(state__in=JobState.final()).exists():
            if time.monotonic() > deadline:
                raise SystemExit("jobs did not finish")
            time.sleep(0.01)

    def start_worker(self, args: argparse.Namespace) -> None:
        log = open(Path(args.dir) / "worker.log", "w")  # noqa: SIM115 (the worker's, for its lifetime)
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "releaseboard", "worker", "-Q", "git,tests", "-c", "1"]
            + ["-n", f"jobsbench-{os.getpid()}@%h", "--without-mingle", "--without-gossip", "-l", "info"],
            cwd=ROOT,
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while "ready." not in (Path(args.dir) / "worker.log").read_text():
            if self.worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("celery worker did not start:\n" + (Path(args.dir) / "worker.log").read_text()[-2000:])
            time.sleep(0.2)

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGTERM)
            try:
                self.worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, signal.SIGKILL)
                self.worker.wait()
        if self.broker:
            drop_redis_prefix(*self.broker)

    def newest_job(self, kind: str) -> Any:
        from releaseboard.jobs.models import Job

        return Job.objects.filter(kind=kind).order_by("-id").first()

    def run_job(self, job: Any) -> dict[str, Any]:
        """execution.run() as a worker calls it, timed, with its git processes and the SQL
        queries of the job's own thread (the heartbeat thread's few are not counted)."""
        from django.db import connection

        from releaseboard.jobs import execution

        queries = 0

        def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            nonlocal queries
            queries += 1
            return execute(sql, params, many, context)

        GIT_CALLS.clear()
        with connection.execute_wrapper(count):
            c0 = cpu_seconds()
            wall0 = time.time()  # the clock of the rows' timestamps: when it landed, see landed()
            t0 = time.perf_counter()
            execution.run(job.pk)
            ms = (time.perf_counter() - t0) * 1000
            cpu_ms = (cpu_seconds() - c0) * 1000
        job.refresh_from_db()
        if job.state != "succeeded":
            raise SystemExit(f"job #{job.pk} {job.kind} ended {job.state}: {job.message}")
        return {
            "ms": ms,
            "cpu_ms": cpu_ms,
            "queries": queries,
            "git": sum(GIT_CALLS.values()),
            "git_by": dict(GIT_CALLS),
            "wall0": wall0,
        }

    # -- commands -----------------------------------------------------------------------

    def sync(self) -> dict[str, Any]:
        """A sync job, as the periodic sync or a push webhook starts one: records the branch
        the round added (untimed by jobs_path.py; its time is returned)."""
        from releaseboard.releases import services
        from releaseboard.releases.models import Repository

        t0 = time.perf_counter()
        services.refresh(Repository.objects.get(pk=self.repo_pk), actor=self.admin)
        if self.broker:
            self.wait_all_final(120)
        else:
            self.drain()
        return {"ms": (time.perf_counter() - t0) * 1000}

    def promote(self, branch: str) -> dict[str, Any]:
        from releaseboard.releases import services
        from releaseboard.releases.models import Branch, Promotion, TestRun

        row = Branch.objects.select_related("repository").get(repository_id=self.repo_pk, name=branch)
        # The developer owns the branch, as one who requested it would (only its requester or
        # a release manager may ask for its promotion); outside the timed region.
        Branch.objects.filter(pk=row.pk).update(requested_by=self.dev)
        row.requested_by = self.dev
        t0 = time.perf_counter()
        promotion = services.request_promotion(row, actor=self.dev, title=f"Promote {branch}")
        request_ms = (time.perf_counter() - t0) * 1000
        test = self.run_job(self.newest_job("test_promotion"))
        promotion = Promotion.objects.select_related("repository", "branch").get(pk=promotion.pk)
        t0 = time.perf_counter()
        services.promote(promotion, actor=self.rm)
        promote_ms = (time.perf_counter() - t0) * 1000
        push = self.run_job(self.newest_job("promote"))
        promotion.refresh_from_db()
        if promotion.state != "promoted" or self.remote_head("refs/heads/staging") != promotion.merge_sha:
            raise SystemExit(f"promotion #{promotion.pk} did not land: {promotion.state} {promotion.state_message}")
        leftover = self.drain()  # none expected: the pushed merge commit was tested as that commit
        tested = TestRun.objects.filter(promotion=promotion, commit_sha=promotion.merge_sha).latest("pk").created_at
        landed(test, tested)
        landed(push, promotion.promoted_at)
        return {"request_ms": request_ms, "test": test, "promote_ms": promote_ms, "push": push, "leftover": leftover}

    def release(self) -> dict[str, Any]:
        from releaseboard.branching.versions import Version
        from releaseboard.releases import services
        from releaseboard.releases.models import Release, Repository

        repo = Repository.objects.get(pk=self.repo_pk)
        version = str(Version.parse(repo.latest_version).bump_minor())
        t0 = time.perf_counter()
        release = services.promote_to_master(repo, actor=self.rm, version=version, notes="Benchmark release")
        request_ms = (time.perf_counter() - t0) * 1000
        job = self.run_job(self.newest_job("release"))
        release = Release.objects.get(pk=release.pk)
        if self.remote_head("refs/heads/master") != release.sha:
            raise SystemExit(f"release {release.tag} did not move master")
        landed(job, release.released_at)
        leftover = self.drain()
        return {"request_ms": request_ms, "job": job, "leftover": leftover}

    def profile(self, branch: str) -> dict[str, Any]:
        """One promotion and one release under cProfile; the stats are also written next to
        the side's database (promotion.pstats, release.pstats) for a closer look."""
        result: dict[str, Any] = {}
        for name, step in (("promotion", lambda: self.promote(branch)), ("release", self.release)):
            prof = cProfile.Profile()
            prof.enable()
            result[name] = step()
            prof.disable()
            prof.dump_stats(Path(os.environ["RELEASEBOARD_VAR_DIR"]) / f"{name}.pstats")
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(40)
            result[name]["profile"] = out.getvalue()
        return result

    def remote_head(self, ref: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", self.remote, "rev-parse", "-q", "--verify", ref], capture_output=True, text=True
        ).stdout.strip()

    def wait_remote(self, ref: str, sha: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.remote_head(ref) != sha:
            if time.monotonic() > deadline:
                raise SystemExit(f"{ref} did not reach {sha[:10]} on the remote within {timeout} s")
            time.sleep(0.005)

    def wait_job(self, job: Any, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            job.refresh_from_db()
            if job.is_final:
                if job.state != "succeeded":
                    raise SystemExit(f"job #{job.pk} {job.kind} ended {job.state}: {job.message}")
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"job #{job.pk} {job.kind} still {job.state} after {timeout} s")
            time.sleep(0.005)

    def click_promote(self, branch: str) -> dict[str, Any]:
        """Through the Celery worker: click "request" -> test passed; click "promote" ->
        the remote's staging is the merge commit."""
        from releaseboard.releases import services
        from releaseboard.releases.models import Branch, Promotion

        row = Branch.objects.select_related("repository").get(repository_id=self.repo_pk, name=branch)
        # The developer owns the branch, as one who requested it would (only its requester or
        # a release manager may ask for its promotion); outside the timed region.
        Branch.objects.filter(pk=row.pk).update(requested_by=self.dev)
        row.requested_by = self.dev
        t0 = time.perf_counter()
        promotion = services.request_promotion(row, actor=self.dev, title=f"Promote {branch}")
        self.wait_job(self.newest_job("test_promotion"))
        tested_ms = (time.perf_counter() - t0) * 1000
        promotion = Promotion.objects.select_related("repository", "branch").get(pk=promotion.pk)
        t1 = time.perf_counter()
        services.promote(promotion, actor=self.rm)
        self.wait_remote("refs/heads/staging", promotion.merge_sha)
        moved_ms = (time.perf_counter() - t1) * 1000
        self.wait_all_final(120)
        return {"tested_ms": tested_ms, "moved_ms": moved_ms}

    def click_release(self) -> dict[str, Any]:
        from releaseboard.branching.versions import Version
        from releaseboard.releases import services
        from releaseboard.releases.models import Repository

        repo = Repository.objects.get(pk=self.repo_pk)
        version = str(Version.parse(repo.latest_version).bump_minor())
        t0 = time.perf_counter()
        release = services.promote_to_master(repo, actor=self.rm, version=version, notes="Benchmark release")
        self.wait_remote("refs/heads/master", release.sha)
        moved_ms = (time.perf_counter() - t0) * 1000
        self.wait_all_final(120)
        return {"moved_ms": moved_ms}

    def info(self) -> dict[str, Any]:
        from releaseboard.releases.models import Branch, BranchState

        open_branches = Branch.objects.filter(
            repository_id=self.repo_pk, state=BranchState.ACTIVE, kind__in=["feature", "hotfix"]
        ).count()
        return {"open_branches": open_branches}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--remote", required=True)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--broker-url", default="")
    ap.add_argument("--broker-prefix", default="")
    args = ap.parse_args()
    setup_env(args)
    side = Side(args)
    print("@@" + json.dumps({"ready": True, **side.info()}), flush=True)
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            op = cmd.pop("op")
            if op == "quit":
                break
            result = getattr(side, op)(**cmd)
            result.update(side.info())
            print("@@" + json.dumps(result), flush=True)
    finally:
        side.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

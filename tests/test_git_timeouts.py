"""Every git call has a timeout: a remote that accepts the connection and never answers
fails the call (and its job) after the configured time, with git and its transport
helper killed, no lock files left behind and the repository's lease released.

The hung remotes are real servers on free loopback ports: a socket server that accepts
and says nothing, and a `git http-backend` server that answers fetches but never pushes.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from releaseboard.jobs.models import Job, JobReason, JobState, Lease
from releaseboard.releases import services
from releaseboard.releases.models import Promotion, PromotionState, Repository
from releaseboard.vcs import GitError, GitTimeout, Mirror, RefUpdate, ls_remote
from releaseboard.vcs.commands import run_git
from tests.conftest import run_jobs
from tests.githttp import GitHTTPServer, serve
from tests.gitrepo import TEST_COMMAND, Remote

pytestmark = pytest.mark.timeout(90)  # a regression shows as a failure, not a 5-minute hang

TIMEOUT = 2.0
# Time to start git, kill it with its helpers and read what is left of its output.
SLACK = 6.0


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte: a hung remote."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed by stop()
            self.accepted.append(conn)

    def url(self, name: str = "shop.git") -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.stop()


def pushes(request: str) -> bool:
    return "git-receive-pack" in request


@pytest.fixture
def push_hanging(remote: Remote) -> Iterator[GitHTTPServer]:
    """`git http-backend` for fetches; push requests are accepted and never answered."""
    server = serve(remote.bare)
    server.hang = pushes
    yield server
    server.stop()


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain text (git, git-remote-http, ...)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if text in cmdline and "zombie" not in state:
            found.append(cmdline)
    return found


def lock_files(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.name.endswith(".lock") or p.name.startswith("tmp_")]


# -- vcs -------------------------------------------------------------------------------------


def test_ls_remote_against_a_remote_that_never_answers_fails_after_its_timeout(silent):
    started = time.monotonic()
    with pytest.raises(GitTimeout) as failed:
        ls_remote(silent.url(), allow_local=True, timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert TIMEOUT <= elapsed < TIMEOUT + SLACK
    assert str(failed.value) == "the remote did not answer within 2 s"
    assert failed.value.network and failed.value.timeout == TIMEOUT
    assert silent.accepted  # git did connect: the server just never answered
    assert not processes_mentioning(silent.url())  # git and git-remote-http are gone


def test_a_hung_fetch_is_killed_leaves_no_lock_behind_and_the_next_fetch_works(tmp_path, remote, silent):
    mirror = Mirror(tmp_path / "m.git", silent.url(), allow_local=True, network_timeout=TIMEOUT)
    started = time.monotonic()
    with pytest.raises(GitTimeout, match="the remote did not answer within 2 s"):
        mirror.fetch()
    assert time.monotonic() - started < TIMEOUT + SLACK
    assert not processes_mentioning(silent.url())
    assert not lock_files(mirror.path)
    # The same mirror, pointed at a remote that answers, fetches at once.
    mirror = Mirror(tmp_path / "m.git", remote.url, allow_local=True, network_timeout=TIMEOUT)
    mirror.fetch()
    assert mirror.heads()["staging"] == remote.head("staging")


def test_a_hung_push_fails_after_its_timeout_and_changes_nothing(tmp_path, remote, push_hanging):
    mirror = Mirror(tmp_path / "m.git", push_hanging.url("remote.git"), allow_local=True, network_timeout=TIMEOUT)
    mirror.fetch()  # fetches are answered
    staging = mirror.branch_head("staging")
    assert staging
    with pytest.raises(GitTimeout, match="the remote did not answer within 2 s"):
        mirror.push([RefUpdate("refs/heads/feature/x", staging, "")])
    assert push_hanging.hung
    assert not processes_mentioning(push_hanging.url("remote.git"))
    assert not remote.exists("refs/heads/feature/x")


def test_without_pgrep_the_http_helper_gives_up_on_its_own_soon_after(tmp_path, silent, monkeypatch):
    # A slim image has no pgrep (nor ps): GitPython then kills git but not git-remote-http,
    # whose stderr is our pipe. curl's low-speed limit, a little past the timeout, ends it.
    from releaseboard.vcs import commands

    monkeypatch.setattr(commands, "TRANSPORT_GRACE_SECONDS", 2)
    only_git = tmp_path / "bin"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git"))
    monkeypatch.setenv("PATH", str(only_git))
    started = time.monotonic()
    with pytest.raises(GitTimeout, match="the remote did not answer within 2 s"):
        ls_remote(silent.url(), allow_local=True, timeout=TIMEOUT)
    assert time.monotonic() - started < TIMEOUT + 2 + SLACK


def test_a_local_git_command_past_its_timeout_is_killed_with_its_children(tmp_path):
    # A shell alias stands for any slow local command; its `sleep` child holds git's
    # output pipes, so only killing the children lets the call return on time.
    marker = f"sleep 3{time.monotonic_ns() % 1000}"
    started = time.monotonic()
    with pytest.raises(GitTimeout) as failed:
        run_git(["-c", f"alias.slow=!{marker}", "slow"], timeout=1)
    assert time.monotonic() - started < 1 + SLACK
    assert str(failed.value) == "git slow did not finish within 1 s" and not failed.value.network
    assert not processes_mentioning(marker)


def test_a_command_that_fails_quickly_is_a_git_error_not_a_timeout(tmp_path):
    with pytest.raises(GitError) as failed:
        run_git(["-C", str(tmp_path), "rev-parse", "--verify", "HEAD"], timeout=TIMEOUT)
    assert not isinstance(failed.value, GitTimeout)


# -- through the job runner -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_sync_against_a_hung_remote_fails_as_timed_out_and_the_next_job_works(settings, remote, silent, developer):
    settings.GIT_NETWORK_TIMEOUT_SECONDS = int(TIMEOUT)
    repository = Repository.objects.create(
        name="shop", remote_url=silent.url(), test_command=TEST_COMMAND, test_timeout=60
    )
    started = time.monotonic()
    services.refresh(repository, actor=developer)
    [job] = run_jobs()
    assert time.monotonic() - started < TIMEOUT + SLACK + 10
    assert job.state == JobState.FAILED and job.reason == JobReason.TIMED_OUT
    assert "the remote did not answer within 2 s" in job.message
    assert "Check that the remote is up" in job.message
    assert not Lease.objects.filter(holder_job_id=job.pk).exists()
    assert not processes_mentioning(silent.url())
    # The remote comes back (here: at another address): the next job on the repository works.
    Repository.objects.filter(pk=repository.pk).update(remote_url=remote.url)
    repository.refresh_from_db()
    services.refresh(repository, actor=developer)
    jobs = run_jobs()
    assert jobs and all(j.state == JobState.SUCCEEDED for j in jobs), [(j.kind, j.message) for j in jobs]


@pytest.mark.django_db(transaction=True)
def test_a_promotion_whose_push_hangs_fails_as_timed_out_and_staging_is_untouched(
    settings, remote, push_hanging, developer, release_manager
):
    settings.GIT_NETWORK_TIMEOUT_SECONDS = int(TIMEOUT)
    repository = Repository.objects.create(
        name="shop", remote_url=push_hanging.url("remote.git"), test_command=TEST_COMMAND, test_timeout=60
    )
    push_hanging.hang = None
    services.refresh(repository, actor=developer)
    run_jobs()
    branch = services.request_branch(repository, actor=developer, kind="feature", name="dark", purpose="work")
    run_jobs()
    branch.refresh_from_db()
    remote.commit_on("feature/dark", {"dark.py": "D = 1\n"}, "Work on dark")
    promotion = services.request_promotion(branch, actor=developer, title="Dark mode")
    run_jobs()
    promotion.refresh_from_db()
    staging_before = remote.head("staging")

    push_hanging.hang = pushes
    job = services.promote(promotion, actor=release_manager)
    run_jobs()
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.reason == JobReason.TIMED_OUT, job.message
    assert "the remote did not answer within 2 s" in job.message
    assert remote.head("staging") == staging_before  # no half-done promotion
    assert Promotion.objects.get(pk=promotion.pk).state != PromotionState.PROMOTED
    assert not Lease.objects.filter(holder_job_id=job.pk).exists()
    assert not Job.objects.filter(state__in=JobState.active()).exists()

    # Pushes work again: the next job on the repository takes the lease and succeeds.
    push_hanging.hang = None
    services.refresh(repository, actor=developer)
    jobs = run_jobs()
    assert jobs and all(j.state == JobState.SUCCEEDED for j in jobs), [(j.kind, j.message) for j in jobs]

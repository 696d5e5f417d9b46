"""Remote credentials reach git only through its environment, and nowhere else: tried
against a real HTTP git server (git http-backend) that demands Basic auth."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from releaseboard.audit.models import AuditEvent
from releaseboard.jobs.models import JobLogLine, JobState, JobStep
from releaseboard.releases import services
from releaseboard.releases.models import PromotionState, ReleaseState, Repository
from releaseboard.vcs import Credentials, CredentialsError, GitError, Mirror, RefUpdate, credentials_for, ls_remote
from tests.conftest import run_jobs
from tests.githttp import GitHTTPServer, serve
from tests.gitrepo import Remote

USER = "ci-bot"
SECRET = "tok-7Hq2-Zm9v-SECRET"  # unique enough to grep for everywhere
ENV_DUMP = "python3 -c 'import os,json; print(json.dumps(dict(os.environ)))'"


@pytest.fixture
def server(remote: Remote) -> Iterator[GitHTTPServer]:
    server = serve(remote.bare, USER, SECRET)
    yield server
    server.stop()


@pytest.fixture
def creds_file(tmp_path: Path, server: GitHTTPServer) -> Path:
    path = tmp_path / "credentials.json"
    base = server.url("")
    path.write_text(
        json.dumps(
            {
                base.rstrip("/"): {"username": "wrong", "password": "not-this-one"},
                server.url("remote.git"): {"username": USER, "password": SECRET},  # the longest prefix wins
            }
        )
    )
    return path


class Recorder:
    """A CommandObserver that keeps each argv as git got it."""

    def __init__(self) -> None:
        self.argvs: list[list[str]] = []
        self.output = ""

    def command_started(self, argv: Sequence[str]) -> object:
        self.argvs.append(list(argv))
        return None

    def command_finished(self, token: object, returncode: int, output: str) -> None:
        self.output += output


# -- choosing the credentials ---------------------------------------------------------------------


def test_the_longest_matching_prefix_wins_at_a_path_boundary(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {
                "https://git.example.com": {"username": "a", "password": "host-wide"},
                "https://git.example.com/acme/": {"username": "b", "password": "acme-only"},
            }
        )
    )
    acme = credentials_for("https://git.example.com/acme/shop.git", path)
    other = credentials_for("https://git.example.com/other/x.git", path)
    assert acme and acme.password == "acme-only"
    assert other and other.password == "host-wide"
    # A prefix is not a substring match: another host that merely starts the same gets nothing.
    assert credentials_for("https://git.example.com.evil.net/acme/shop.git", path) is None
    assert credentials_for("https://git.example.community/acme/shop.git", path) is None


def test_credentials_are_never_given_to_ssh_local_or_clear_text_remotes(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {
                prefix: {"username": "u", "password": "p"}
                for prefix in ("ssh://git.example.com", "http://git.example.com", "/srv", "file:///srv")
            }
        )
    )
    for url in ("ssh://git.example.com/a.git", "http://git.example.com/a.git", "/srv/a.git", "file:///srv/a.git"):
        assert credentials_for(url, path) is None
    assert credentials_for("https://x/a.git", None) is None


def test_a_broken_credentials_file_is_an_error_that_does_not_quote_it(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"https://x": {"username": "u", "password": "p4ss-' + "\n")
    with pytest.raises(CredentialsError) as failed:
        credentials_for("https://x/a.git", path)
    assert "p4ss" not in str(failed.value)
    with pytest.raises(CredentialsError, match="does not exist"):
        credentials_for("https://x/a.git", tmp_path / "missing.json")
    path.write_text(json.dumps({"https://x": {"username": "u"}}))
    with pytest.raises(CredentialsError, match="password"):
        credentials_for("https://x/a.git", path)


def test_credentials_do_not_print_their_password():
    credentials = Credentials(USER, SECRET)
    assert SECRET not in repr(credentials) and SECRET not in str(credentials)
    assert set(credentials.secrets()) >= {SECRET, credentials.basic}


# -- git against the server ---------------------------------------------------------------------


def test_without_credentials_the_server_refuses(server):
    with pytest.raises(GitError):
        ls_remote(server.url("remote.git"), allow_local=True)
    assert server.refused and not server.authorized


def test_fetch_push_and_ls_remote_authenticate_through_the_environment_only(tmp_path, remote, server, creds_file):
    url = server.url("remote.git")
    credentials = credentials_for(url, creds_file)
    assert credentials is not None
    recorder = Recorder()
    mirror = Mirror(tmp_path / "m.git", url, allow_local=True, observer=recorder, credentials=credentials)
    mirror.fetch()
    assert mirror.heads()["staging"] == remote.head("staging")
    staging = mirror.branch_head("staging")
    assert staging
    mirror.push([RefUpdate("refs/heads/feature/x", staging, "")])
    assert remote.head("feature/x") == staging
    assert mirror.ls_remote()["refs/heads/feature/x"] == staging
    assert server.authorized >= 3
    basic = credentials.basic
    for argv in recorder.argvs:
        assert not any(SECRET in a or basic in a for a in argv), argv
    assert SECRET not in recorder.output and basic not in recorder.output
    assert all(SECRET not in line and basic not in line for line in server.requests)
    for path in (mirror.path / "config", *mirror.path.glob("*.lock")):
        text = path.read_text()
        assert SECRET not in text and basic not in text and "extraheader" not in text.lower()


def test_a_mirror_without_credentials_cannot_fetch_from_the_protected_remote(tmp_path, server):
    with pytest.raises(GitError):
        Mirror(tmp_path / "m.git", server.url("remote.git"), allow_local=True).fetch()


# -- a whole release cycle against the protected remote ------------------------------------------------


def test_a_whole_cycle_leaves_the_secret_nowhere(
    transactional_db, remote, server, creds_file, developer, release_manager, settings
):
    settings.CREDENTIALS_FILE = str(creds_file)
    repository = Repository.objects.create(
        name="shop", remote_url=server.url("remote.git"), test_command=ENV_DUMP, test_timeout=60
    )
    services.refresh(repository, actor=developer)
    jobs = run_jobs()
    assert all(j.state == JobState.SUCCEEDED for j in jobs), [(j.kind, j.message) for j in jobs]
    branch = services.request_branch(repository, actor=developer, kind="feature", name="login", purpose="p")
    jobs = run_jobs()
    assert all(j.state == JobState.SUCCEEDED for j in jobs), [(j.kind, j.message) for j in jobs]
    branch.refresh_from_db()
    remote.commit_on("feature/login", {"login.py": "x = 1\n"}, "Add login")
    promotion = services.request_promotion(branch, actor=developer, title="Login form")
    run_jobs()
    promotion.refresh_from_db()
    services.promote(promotion, actor=release_manager)
    jobs = run_jobs()
    assert jobs[-1].state == JobState.SUCCEEDED, [(j.kind, j.message) for j in jobs]
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED and remote.head("staging") == promotion.merge_sha
    repository.refresh_from_db()
    release = services.promote_to_master(repository, actor=release_manager, version="0.1.0", notes="First")
    jobs = run_jobs()
    assert jobs[-1].state == JobState.SUCCEEDED, [(j.kind, j.message) for j in jobs]
    release.refresh_from_db()
    assert release.state == ReleaseState.RELEASED and remote.exists("refs/tags/v0.1.0")
    assert server.authorized and server.refused == 0

    forms = Credentials(USER, SECRET).secrets()

    def clean(text: str) -> bool:
        return not any(form in text for form in forms)

    log = "".join(JobLogLine.objects.values_list("text", flat=True))
    assert '"CI": "true"' in log  # the test command's environment dump is in the log ...
    assert clean(log)  # ... and the secret is not
    assert all(clean(command) for command in JobStep.objects.values_list("command", flat=True))
    for event in AuditEvent.objects.values():
        assert clean(json.dumps(event, default=str)), event
    work = Path(django_settings.WORK_DIR)
    mirror_config = work / "mirrors" / f"{repository.pk}.git" / "config"
    assert mirror_config.exists() and clean(mirror_config.read_text())
    for path in (work / "worktrees").rglob("*"):
        if path.is_file():
            assert clean(path.read_bytes().decode(errors="replace")), path
    assert all(clean(line) for line in server.requests)


def test_a_job_masks_every_form_of_the_secret_if_git_ever_echoes_it(
    transactional_db, server, creds_file, developer, settings
):
    from releaseboard.jobs.execution import JobContext
    from releaseboard.releases.runners import mirror_for

    settings.CREDENTIALS_FILE = str(creds_file)
    repository = Repository.objects.create(name="shop", remote_url=server.url("remote.git"), test_command="true")
    job = services.refresh(repository, actor=developer)
    ctx = JobContext(job, "token")
    mirror = mirror_for(repository, ctx)
    assert mirror.credentials == Credentials(USER, SECRET)
    basic = mirror.credentials.basic
    ctx.log(f"fatal: Authorization: Basic {basic} for {USER}:{SECRET}\n")
    ctx.flush()  # the log is written in bulk: write it now
    text = "".join(JobLogLine.objects.filter(job=job).values_list("text", flat=True))
    assert "********" in text and SECRET not in text and basic not in text

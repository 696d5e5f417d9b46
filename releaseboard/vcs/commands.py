"""Running git through GitPython's command object: argv lists only, a locked-down
environment, a timeout on every call, every call observable."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import git

from releaseboard.vcs.credentials import LOOPBACK_HOSTS, Credentials

# Hooks never run, and no system or user config can change what git does for us.
BASE_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "protocol.ext.allow=never", "-c", "gc.auto=0")
REMOTE_PROTOCOLS = "https:ssh:git"
# Local mode (demo and tests) also allows plain http, and check_remote_url lets it reach
# this machine only: tests run a real HTTP git server with Basic auth on 127.0.0.1.
LOCAL_PROTOCOLS = "file:http"
OUTPUT_LIMIT = 256 * 1024
# Defaults for callers without settings; Releaseboard passes the configured values
# (RELEASEBOARD_GIT_NETWORK_TIMEOUT_SECONDS, RELEASEBOARD_GIT_LOCAL_TIMEOUT_SECONDS).
NETWORK_TIMEOUT_SECONDS = 300.0
LOCAL_TIMEOUT_SECONDS = 120.0
# The subcommands that talk to a remote: their timeout is the network one.
NETWORK_COMMANDS = frozenset({"fetch", "push", "ls-remote", "clone"})
# The transports stop a stalled transfer on their own a little after our timeout. The
# timeout kills git and its helpers (git-remote-http, ssh) found with pgrep; where pgrep
# is missing (a slim image) an orphaned helper would keep our pipes open, and these make
# it give up by itself. Never before the timeout, so the job's reason stays "did not answer".
TRANSPORT_GRACE_SECONDS = 30


class CommandObserver(Protocol):
    """Told about each git command before and after it runs (a job records it as a step)."""

    def command_started(self, argv: Sequence[str]) -> object: ...

    def command_finished(self, token: object, returncode: int, output: str) -> None: ...


class GitError(Exception):
    """A git command failed; `output` holds what it said (stderr and stdout)."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str, message: str = "") -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        super().__init__(message or f"git {_subcommand(argv)} failed (exit {returncode}): {output.strip()[-500:]}")


def _subcommand(argv: Sequence[str]) -> str:
    """The git subcommand in argv, skipping "-C <path>" and other leading options."""
    args = list(argv)
    while args and args[0].startswith("-"):
        args = args[2:] if args[0] in ("-C", "-c") else args[1:]
    return args[0] if args else ""


class GitTimeout(GitError):
    """A git command did not finish within its timeout and was killed (with its helpers)."""

    def __init__(self, argv: Sequence[str], timeout: float, output: str = "") -> None:
        self.timeout = timeout
        self.network = _subcommand(argv) in NETWORK_COMMANDS
        what = "the remote did not answer" if self.network else f"git {_subcommand(argv)} did not finish"
        super().__init__(argv, -9, output, f"{what} within {timeout:g} s")


class InvalidRemoteURL(ValueError):
    """A repository URL that Releaseboard will not hand to git; the message says why."""


def drop_inherited_git_environment() -> list[str]:
    """Remove GIT_* variables this process inherited (e.g. GIT_DIR when started from a git
    hook); return their names.

    GitPython starts every git from a copy of os.environ, so a stray GIT_DIR or
    GIT_INDEX_FILE there would redirect commands that name their repository with -C.
    Workers call this when they start; run_git calls it too (a no-op once clean).
    """
    names = [k for k in os.environ if k.startswith("GIT_")]
    for name in names:
        os.environ.pop(name, None)
    return names


def git_env(allow_local: bool, network_timeout: float = NETWORK_TIMEOUT_SECONDS) -> dict[str, str]:
    """The environment git runs with, on top of the (GIT_*-free) process environment."""
    stall_seconds = int(network_timeout) + TRANSPORT_GRACE_SECONDS
    stall = str(stall_seconds)
    # ssh gives up after ServerAliveInterval x ServerAliveCountMax seconds of silence.
    alive = f"-o ServerAliveInterval=30 -o ServerAliveCountMax={stall_seconds // 30 + 1}"
    return {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ALLOW_PROTOCOL": REMOTE_PROTOCOLS + (":" + LOCAL_PROTOCOLS if allow_local else ""),
        "GIT_SSH_COMMAND": f"ssh -o BatchMode=yes -o ConnectTimeout={stall} {alive}",
        # curl aborts a transfer slower than 1 byte/s for this long (see TRANSPORT_GRACE_SECONDS).
        "GIT_HTTP_LOW_SPEED_LIMIT": "1",
        "GIT_HTTP_LOW_SPEED_TIME": stall,
        "LANG": "C",
        "LC_ALL": "C",
    }


def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    allow_local: bool = False,
    observer: CommandObserver | None = None,
    check: bool = True,
    input: bytes | None = None,
    extra_env: Mapping[str, str] | None = None,
    credentials: Credentials | None = None,
    timeout: float = LOCAL_TIMEOUT_SECONDS,
) -> subprocess.CompletedProcess[bytes]:
    """Run `git <args>` as an argv list through git.Git; raise GitError on failure when
    check is set, and GitTimeout (always) when it runs longer than `timeout` seconds.

    credentials are for the commands that talk to the remote (fetch, push, ls-remote):
    they reach git through its environment only, never argv, which the observer records.
    """
    argv = ["git", *BASE_CONFIG, *args]
    token = observer.command_started(["git", *args]) if observer else None
    drop_inherited_git_environment()
    env = git_env(allow_local, timeout)
    if extra_env:
        env.update(extra_env)
    if credentials:
        env.update(credentials.git_env())
    started = time.monotonic()
    with tempfile.TemporaryFile() if input is not None else contextlib.nullcontext() as stdin:
        if stdin is not None and input is not None:  # GitPython takes a file for stdin, not bytes
            stdin.write(input)
            stdin.seek(0)
        try:
            status, stdout, stderr_text = git.Git(cwd).execute(
                argv,
                istream=stdin,
                with_extended_output=True,
                with_exceptions=False,
                stdout_as_string=False,
                strip_newline_in_stdout=False,
                kill_after_timeout=timeout,
                env=env,
            )
        except git.GitCommandNotFound as exc:
            raise GitError(list(args), 127, str(exc), "git is not installed on this worker") from None
    stdout = stdout if isinstance(stdout, bytes) else b""
    stderr = stderr_text.encode("utf-8", errors="surrogateescape")
    stderr += b"\n" if stderr else b""
    timed_out = status < 0 and stderr.startswith(b"Timeout:") and time.monotonic() - started >= timeout
    if timed_out:
        stderr = f"killed after {timeout:g} s\n".encode()
    if observer:
        text = (stdout + stderr)[:OUTPUT_LIMIT].decode("utf-8", errors="replace")
        observer.command_finished(token, status, text)
    if timed_out:
        raise GitTimeout(list(args), timeout, stdout.decode("utf-8", errors="replace"))
    proc = subprocess.CompletedProcess(argv, status, stdout, stderr)
    if check and status != 0:
        output = (stderr + stdout).decode("utf-8", errors="replace")
        raise GitError(list(args), status, output)
    return proc


def check_branch_name(name: str) -> bool:
    """Whether git itself accepts `name` as a branch name (check-ref-format --branch)."""
    proc = run_git(["check-ref-format", "--branch", name], check=False)
    return proc.returncode == 0 and proc.stdout.decode(errors="replace").strip() == name


_SCP_LIKE = re.compile(r"^(?P<user>[A-Za-z0-9._-]+@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/].*|/.*)$")


def check_remote_url(url: str, *, allow_local: bool) -> str:
    """Return the URL when Releaseboard may hand it to git, else raise InvalidRemoteURL.

    Accepted: https://, ssh://, scp-like user@host:path, and (when allowed) file://,
    absolute local paths and http:// to this machine (127.0.0.1, ::1, localhost).
    Refused: other transports such as ext:: and fd::, anything that starts like an
    option, and credentials written into the URL.
    """
    url = url.strip()
    if not url:
        raise InvalidRemoteURL("Enter the repository's URL.")
    if any(ord(c) < 32 or c in " \x7f" for c in url) or url.startswith("-"):
        raise InvalidRemoteURL("A repository URL may not contain spaces or control characters, or start with '-'.")
    if "::" in url.split("/")[0]:
        raise InvalidRemoteURL("Git remote helpers (such as ext:: or fd::) are not allowed; use https:// or ssh://.")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("https", "ssh"):
        if not parts.hostname or parts.hostname.startswith("-"):
            raise InvalidRemoteURL("The URL has no valid host name.")
        if parts.password is not None or (scheme == "https" and parts.username):
            raise InvalidRemoteURL(
                "Do not put credentials in the URL; configure them for the worker (SSH key or credential helper)."
            )
        return url
    if scheme == "http" and allow_local and parts.hostname in LOOPBACK_HOSTS:
        if parts.username is not None or parts.password is not None:
            raise InvalidRemoteURL("Do not put credentials in the URL; configure them for the worker.")
        return url
    if scheme == "file" or url.startswith("/"):
        if not allow_local:
            raise InvalidRemoteURL("Local repositories are not allowed here; use an https:// or ssh:// URL.")
        return url
    if not scheme or len(scheme) == 1:
        match = _SCP_LIKE.match(url)
        if match and not match.group("host").startswith("-"):
            return url
    raise InvalidRemoteURL("Use an https:// or ssh:// URL (or user@host:path).")


def ls_remote(
    url: str,
    *,
    allow_local: bool,
    observer: CommandObserver | None = None,
    credentials: Credentials | None = None,
    timeout: float = NETWORK_TIMEOUT_SECONDS,
) -> dict[str, str]:
    """The remote's refs as {refname: sha}, read without a mirror. Peeled tags are skipped.

    Raises GitTimeout when the remote does not answer within `timeout` seconds.
    """
    proc = run_git(
        ["ls-remote", "--", url], allow_local=allow_local, observer=observer, credentials=credentials, timeout=timeout
    )
    refs: dict[str, str] = {}
    for line in proc.stdout.decode(errors="replace").splitlines():
        sha, _, ref = line.partition("\t")
        if ref and not ref.endswith("^{}"):
            refs[ref] = sha
    return refs

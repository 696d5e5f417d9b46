"""Running git: argv lists only, a locked-down environment, every call observable."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from releaseboard.vcs.credentials import LOOPBACK_HOSTS, Credentials

# Hooks never run, and no system or user config can change what git does for us.
BASE_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "protocol.ext.allow=never", "-c", "gc.auto=0")
REMOTE_PROTOCOLS = "https:ssh:git"
# Local mode (demo and tests) also allows plain http, and check_remote_url lets it reach
# this machine only: tests run a real HTTP git server with Basic auth on 127.0.0.1.
LOCAL_PROTOCOLS = "file:http"
OUTPUT_LIMIT = 256 * 1024


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


class InvalidRemoteURL(ValueError):
    """A repository URL that Releaseboard will not hand to git; the message says why."""


def git_env(allow_local: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ALLOW_PROTOCOL": REMOTE_PROTOCOLS + (":" + LOCAL_PROTOCOLS if allow_local else ""),
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
            "LANG": "C",
            "LC_ALL": "C",
        }
    )
    return env


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
) -> subprocess.CompletedProcess[bytes]:
    """Run `git <args>` as an argv list; raise GitError on failure when check is set.

    credentials are for the commands that talk to the remote (fetch, push, ls-remote):
    they reach git through its environment only, never argv, which the observer records.
    """
    argv = ["git", *BASE_CONFIG, *args]
    token = observer.command_started(["git", *args]) if observer else None
    env = git_env(allow_local)
    if extra_env:
        env.update(extra_env)
    if credentials:
        env.update(credentials.git_env())
    proc = subprocess.run(argv, cwd=cwd, env=env, input=input, capture_output=True, check=False)
    if observer:
        text = (proc.stdout + proc.stderr)[:OUTPUT_LIMIT].decode("utf-8", errors="replace")
        observer.command_finished(token, proc.returncode, text)
    if check and proc.returncode != 0:
        output = (proc.stderr + proc.stdout).decode("utf-8", errors="replace")
        raise GitError(list(args), proc.returncode, output)
    return proc


def check_branch_name(name: str) -> bool:
    """Whether git itself accepts `name` as a branch name (check-ref-format --branch)."""
    proc = run_git(["check-ref-format", "--branch", name], check=False)
    return proc.returncode == 0 and proc.stdout.decode(errors="replace").strip() == name


_SCP_LIKE = re.compile(r"^(?P<user>[A-Za-z0-9._-]+@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/].*|/.*)$")


def check_remote_url(url: str, *, allow_local: bool) -> str:
    """Return the URL when Releaseboard may hand it to git, else raise InvalidRemoteURL.

    Accepted: https://, ssh://, scp-like user@host:path, and (when allowed) file://,
    absolute local paths and http:// to this machine (127.0.0.1, ::1, localhost). Refused: other transports such as ext:: and fd::, anything
    that starts like an option, and credentials written into the URL.
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
    url: str, *, allow_local: bool, observer: CommandObserver | None = None, credentials: Credentials | None = None
) -> dict[str, str]:
    """The remote's refs as {refname: sha}, read without a mirror. Peeled tags are skipped."""
    proc = run_git(["ls-remote", "--", url], allow_local=allow_local, observer=observer, credentials=credentials)
    refs: dict[str, str] = {}
    for line in proc.stdout.decode(errors="replace").splitlines():
        sha, _, ref = line.partition("\t")
        if ref and not ref.endswith("^{}"):
            refs[ref] = sha
    return refs

"""Credentials for HTTPS remotes: read from a file kept outside the database, handed to
git through its environment only (never argv, never a config file on disk)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


class CredentialsError(ValueError):
    """The credentials file cannot be used; the message says why (never what it holds)."""


@dataclass(frozen=True)
class Credentials:
    """A username and password (an access token) for one remote."""

    username: str
    password: str

    def __repr__(self) -> str:  # never print the password by accident
        return f"Credentials(username={self.username!r}, password='********')"

    @property
    def basic(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")

    def secrets(self) -> list[str]:
        """Every form in which the secret could show up in output: mask all of them."""
        return [s for s in (self.password, self.basic, f"{self.username}:{self.password}") if s]

    def git_env(self) -> dict[str, str]:
        """Environment that makes git send the credentials as an HTTP Authorization header.

        GIT_CONFIG_COUNT/KEY/VALUE act like `-c` without showing in argv (ps, /proc/<pid>/cmdline,
        the job's step list), and nothing is written to the mirror's config.
        """
        return {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {self.basic}",
        }


def _matches(prefix: str, url: str) -> bool:
    """Whether `prefix` covers `url` at a path boundary: "https://git.example.com" covers
    "https://git.example.com/a.git" but not "https://git.example.com.evil.net/a.git"."""
    if not url.startswith(prefix):
        return False
    return len(url) == len(prefix) or prefix.endswith("/") or url[len(prefix)] in "/?#"


def credentials_for(url: str, path: str | Path | None) -> Credentials | None:
    """The credentials for `url` from the JSON file at `path` (longest matching prefix).

    The file maps a remote URL prefix to {"username": ..., "password": ...}. Only https
    URLs (and http to this machine, for local tests) get credentials: a password is
    never sent in clear text over the network or to an ssh or local remote.
    """
    if not path:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return None
    if parts.scheme not in ("https", "http"):
        return None
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CredentialsError(f"The credentials file {path} does not exist.") from None
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"The credentials file {path} cannot be read: {type(exc).__name__}.") from None
    if not isinstance(data, dict):
        raise CredentialsError(f"The credentials file {path} must hold a JSON object of URL prefix -> credentials.")
    best = ""
    for prefix in data:
        if isinstance(prefix, str) and prefix and _matches(prefix, url.strip()) and len(prefix) > len(best):
            best = prefix
    if not best:
        return None
    entry = data[best]
    if not (
        isinstance(entry, dict)
        and isinstance(entry.get("username"), str)
        and isinstance(entry.get("password"), str)
        and entry["password"]
    ):
        raise CredentialsError(f'The credentials for {best} need a "username" and a "password" string.')
    if any(ord(c) < 32 for c in entry["username"] + entry["password"]):
        raise CredentialsError(f"The credentials for {best} contain control characters.")
    return Credentials(entry["username"], entry["password"])


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

"""Talking to the API: configuration, one request function, errors mapped to exit codes."""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Exit codes scripts can branch on.
OK, FAILED, USAGE, REFUSED, UNAUTHENTICATED = 0, 1, 2, 3, 4


class CliError(Exception):
    """An expected failure: printed as one message, never as a traceback."""

    def __init__(self, message: str, exit_code: int, problem: dict[str, Any] | None = None) -> None:
        self.message = message
        self.exit_code = exit_code
        self.problem = problem
        super().__init__(message)


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "releaseboard" / "config.json"


def save_login(url: str, token: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created with mode 0600 from the start: the token is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "token": token}, handle)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return path


def load_login() -> tuple[str, str]:
    url = os.environ.get("RELEASEBOARD_URL", "")
    token = os.environ.get("RELEASEBOARD_TOKEN", "")
    if not (url and token):
        try:
            saved = json.loads(config_path().read_text())
        except (OSError, ValueError):
            saved = {}
        url = url or saved.get("url", "")
        token = token or saved.get("token", "")
    if not url or not token:
        raise CliError(
            "Not logged in: run 'rb login --url URL --with-token' (token on stdin), "
            "or set RELEASEBOARD_URL and RELEASEBOARD_TOKEN.",
            UNAUTHENTICATED,
        )
    return url.rstrip("/"), token


@dataclass
class Api:
    url: str
    token: str
    timeout: float = 60.0

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        return json.loads(self.raw(method, path, body, query) or b"null")

    def raw(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> bytes:
        url = f"{self.url}/api/v1{path}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v not in (None, "")})
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if method == "POST":
            # Every POST carries a key; a script that reruns a command after a dropped
            # connection sets RB_IDEMPOTENCY_KEY to the same value and gets what the
            # first run made instead of a second branch, promotion or release.
            headers["Idempotency-Key"] = os.environ.get("RB_IDEMPOTENCY_KEY") or str(uuid.uuid4())
            data = json.dumps(body if body is not None else {}).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            raise _problem_error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(f"Cannot reach {self.url}: {reason}. Check the URL (rb login).", FAILED) from None


def _problem_error(exc: urllib.error.HTTPError) -> CliError:
    try:
        problem = json.loads(exc.read() or b"{}")
    except ValueError:
        problem = {}
    detail = problem.get("detail") or exc.reason or "error"
    for error in problem.get("errors") or []:
        if error.get("message") and error.get("message") not in detail:
            detail += f"\n  {error.get('field')}: {error.get('message')}"
    code = problem.get("code", "")
    message = f"{detail} ({exc.code}{' ' + code if code else ''})"
    return CliError(message, UNAUTHENTICATED if exc.code == 401 else REFUSED, problem)

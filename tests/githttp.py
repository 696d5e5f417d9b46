"""A request handler's bridge to `git http-backend`, for tests that serve a remote over HTTP."""

from __future__ import annotations

import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path


def http_backend(handler: BaseHTTPRequestHandler, root: Path, body: bytes, remote_user: str = "") -> bytes:
    """Run `git http-backend` (CGI) for the handler's request on the repositories in root;
    return its raw output, headers first."""
    path, _, query = handler.path.partition("?")
    env = {
        "PATH": "/usr/bin:/bin",
        "GIT_PROJECT_ROOT": str(root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "REQUEST_METHOD": handler.command,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_CONTENT_ENCODING": handler.headers.get("Content-Encoding", ""),
        "GIT_PROTOCOL": handler.headers.get("Git-Protocol", ""),
    }
    if remote_user:
        env["REMOTE_USER"] = remote_user
    return subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout


def send_cgi_reply(handler: BaseHTTPRequestHandler, output: bytes) -> None:
    """Send a CGI program's output (a Status header, other headers, the body) as the answer."""
    head, _, payload = output.partition(b"\r\n\r\n")
    status, headers = 200, []
    for line in head.decode().split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name:
            headers.append((name, value.strip()))
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)

"""A real HTTP git remote for tests: `git http-backend` on a free loopback port, with
optional Basic auth and optionally requests that are accepted and never answered."""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class GitHTTPServer:
    """Serves the bare repositories under root.

    With a username and password it answers 401 to requests without that Basic auth.
    Requests for which hang("<path>?<query>") is true are accepted and left unanswered
    until stop(): a remote that hangs (e.g. only on pushes: "git-receive-pack" in it).
    """

    def __init__(self, root: Path, username: str | None = None, password: str | None = None) -> None:
        self.expected = (
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode() if username is not None else None
        )
        self.requests: list[str] = []  # request lines, as a proxy or access log would keep them
        self.authorized = 0
        self.refused = 0
        self.hang: Callable[[str], bool] | None = None
        self.hung = 0
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.handle_git()

            def do_POST(self) -> None:
                self.handle_git()

            def handle_git(self) -> None:
                server.requests.append(self.requestline)
                if server.expected is not None and self.headers.get("Authorization") != server.expected:
                    server.refused += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                server.authorized += 1
                path, _, query = self.path.partition("?")
                if server.hang is not None and server.hang(f"{path}?{query}"):
                    server.hung += 1
                    server.release.wait(120)  # say nothing until the test ends
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                send_cgi_reply(self, http_backend(self, root, body, remote_user=username or "anonymous"))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def serve(bare: Path, username: str | None = None, password: str | None = None) -> GitHTTPServer:
    """A server for the bare repository `bare` (and its siblings), pushes allowed."""
    subprocess.run(["git", "--git-dir", str(bare), "config", "http.receivepack", "true"], check=True)
    return GitHTTPServer(bare.parent, username, password)


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

#!/usr/bin/env python3
"""Run Releaseboard on this machine: what `make run` starts after it made the venv.

1. `manage.py migrate` and `manage.py load_demo` (both idempotent);
2. the web server (runserver), a Celery worker and Celery beat, each in its own process
   group, their output prefixed with their name (and copied to var/log/NAME.log);
3. prints the URL and the demo logins once the web server answers.

Ctrl-C (SIGINT) or SIGTERM stops all three; a test a job is running dies with the
worker (the sandbox's supervisor asks the kernel for a signal when its worker dies).
If one of them dies on its own, the others are stopped too and this script exits
non-zero. Needs only the standard library.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 10
COLOURS = {"web": "\033[32m", "worker": "\033[34m", "beat": "\033[35m", "setup": "\033[33m"}
RESET = "\033[0m"

_print_lock = threading.Lock()
_prctl: Any
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before any fork
except (OSError, AttributeError):
    _prctl = None


def say(name: str, line: str, *, colour: bool) -> None:
    prefix = f"{name:<6} | "
    if colour:
        prefix = f"{COLOURS.get(name, '')}{prefix}{RESET}"
    with _print_lock:
        sys.stdout.write(prefix + line.rstrip("\n") + "\n")
        sys.stdout.flush()


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM should this supervisor die (Linux only)."""
    if _prctl is not None:
        _prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


class Child:
    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log_dir: Path,
        colour: bool,
        stop_leader_only: bool = False,
    ) -> None:
        self.name = name
        self.argv = argv
        # The Celery worker shuts down its own pool processes ("warm shutdown"): signal
        # only its main process. Anything still alive after the grace period is killed.
        self.stop_leader_only = stop_leader_only
        self.log = open(log_dir / f"{name}.log", "a", buffering=1)  # noqa: SIM115 closed by main() at the end
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            process_group=0,
            preexec_fn=_die_with_parent,
        )
        self.reader = threading.Thread(target=self._pump, args=(self.proc.stdout, colour), daemon=True)
        self.reader.start()

    def _pump(self, stream: IO[str], colour: bool) -> None:
        for line in stream:
            say(self.name, line, colour=colour)
            self.log.write(line)

    def stop(self) -> None:
        if self.stop_leader_only:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
        else:
            self.signal_group(signal.SIGTERM)

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def group_alive(self) -> bool:
        self.proc.poll()  # reap the leader, so a zombie does not count as alive
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except ProcessLookupError:
            return False


def run_setup(argv: list[str], env: dict[str, str], colour: bool) -> str:
    """Run a setup command to the end, echoing its output; return the output."""
    say("setup", "$ " + " ".join(argv[1:]), colour=colour)
    proc = subprocess.run(
        argv,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    for line in proc.stdout.splitlines():
        say("setup", line, colour=colour)
    if proc.returncode != 0:
        say("setup", f"failed with exit code {proc.returncode}", colour=colour)
        raise SystemExit(proc.returncode or 1)
    return proc.stdout


def wait_for_port(
    address: str, port: int, children: list[Child], stopping: threading.Event, timeout: float = 60
) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stopping.is_set() or any(c.proc.poll() is not None for c in children):
            return False
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def bind_address(environ: Mapping[str, str], port: int) -> str:
    """Where the web server listens: this machine only (127.0.0.1) unless HOST says
    otherwise, because `make run` serves debug pages that must not reach the network."""
    host = (environ.get("HOST") or "").strip() or "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address, as runserver wants it
    return f"{host}:{port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    parser.add_argument("--no-demo", action="store_true", help="do not run load_demo")
    args = parser.parse_args()

    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    env = dict(os.environ)
    env.setdefault("RELEASEBOARD_DEBUG", "True")
    env["PYTHONUNBUFFERED"] = "1"
    env["PORT"] = str(args.port)
    env.setdefault("DJANGO_SETTINGS_MODULE", "releaseboard.settings")
    var_dir = Path(env.get("RELEASEBOARD_VAR_DIR") or ROOT / "var")
    log_dir = var_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    py = sys.executable

    # Signals during setup stop it like any Ctrl-C; from here on we handle them.
    run_setup([py, "manage.py", "migrate", "--noinput"], env, colour)
    logins = "" if args.no_demo else run_setup([py, "manage.py", "load_demo"], env, colour)

    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    address = bind_address(os.environ, args.port)
    commands = {
        "web": [py, "manage.py", "runserver", address],
        "worker": [py, "-m", "celery", "-A", "releaseboard", "worker", "-Q", "git,tests", "-c", "2", "-l", "info"],
        "beat": [
            py,
            "-m",
            "celery",
            "-A",
            "releaseboard",
            "beat",
            "-l",
            "info",
            "--schedule",
            str(var_dir / "celerybeat-schedule"),
        ],
    }
    children: list[Child] = []
    for name, argv in commands.items():
        if stopping.is_set():
            break
        children.append(Child(name, argv, env, log_dir, colour, stop_leader_only=name == "worker"))

    banner_shown = False
    died: Child | None = None
    try:
        while not stopping.is_set():
            for child in children:
                if child.proc.poll() is not None:
                    died = child
                    break
            if died:
                break
            if not banner_shown and not stopping.is_set():
                banner_shown = True
                if wait_for_port(address, args.port, children, stopping):
                    lines = logins.splitlines()
                    start = next(
                        (i for i, line in enumerate(lines) if line.startswith("Releaseboard demo:")), len(lines)
                    )
                    for line in lines[start + 1 :]:
                        say("run", line, colour=colour)
                    say(
                        "run",
                        f"Releaseboard is running at http://{address}/ — Ctrl-C stops it.",
                        colour=colour,
                    )
                    say("run", f"Logs are also in {log_dir}/", colour=colour)
                continue
            stopping.wait(0.3)
    finally:
        if died is not None:
            say("run", f"{died.name} exited with code {died.proc.returncode}; stopping the others", colour=colour)
        else:
            say("run", "stopping", colour=colour)
        for child in children:
            child.stop()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and any(c.group_alive() for c in children):
            time.sleep(0.1)
        for child in children:
            if child.group_alive():
                say("run", f"{child.name} did not stop within {STOP_GRACE_SECONDS} s; killing it", colour=colour)
                child.signal_group(signal.SIGKILL)
        for child in children:
            child.proc.wait()
            child.reader.join(timeout=2)
            child.log.close()
    if died is not None:
        code = died.proc.returncode
        return code if code and code > 0 else 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C during migrate or load_demo
        sys.exit(130)

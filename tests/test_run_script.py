"""`make run` (scripts/run.py) serves debug pages, so it listens on this machine only
unless HOST says otherwise."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "run.py"


def load_run_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("releaseboard_run_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_listens_on_localhost_by_default() -> None:
    run = load_run_script()
    assert run.bind_address({}, 8000) == "127.0.0.1:8000"
    assert run.bind_address({"HOST": "  "}, 8123) == "127.0.0.1:8123"


def test_run_listens_where_host_says() -> None:
    run = load_run_script()
    assert run.bind_address({"HOST": "0.0.0.0"}, 8000) == "0.0.0.0:8000"
    assert run.bind_address({"HOST": "::1"}, 8000) == "[::1]:8000"


def test_run_script_has_no_hard_coded_wildcard_address() -> None:
    assert "0.0.0.0:" not in SCRIPT.read_text()

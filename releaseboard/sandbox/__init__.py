"""Run a build or test command: argv only, its own process group, a timeout that kills
the whole group, capped output streamed to a callback, and a minimal environment.

No Django here. The caller decides what to do with the result.
"""

from __future__ import annotations

from releaseboard.sandbox.runner import CommandResult, Outcome, minimal_env, run, split_command

__all__ = ["CommandResult", "Outcome", "minimal_env", "run", "split_command"]

"""The demo's deploy command: "deploying" writes the version and SHA to a file, and fails
while a FAIL file sits next to it, so a failed deploy can be shown on purpose."""

from __future__ import annotations

import shlex
from pathlib import Path


def deploy_command(root: Path) -> str:
    """A deploy command writing `<root>/<environment>/VERSION` (two lines: version, SHA).

    It is split into argv (sh, -c, script); the script reads the RELEASEBOARD_* variables
    the runner sets, so nothing from the form reaches the shell.
    """
    script = (
        'd="$1/$RELEASEBOARD_ENVIRONMENT"; mkdir -p "$d"; '
        'echo "deploying $RELEASEBOARD_VERSION ($RELEASEBOARD_SHA) to $RELEASEBOARD_ENVIRONMENT, '
        'was ${RELEASEBOARD_PREVIOUS_VERSION:-nothing}"; '
        'if [ -e "$d/FAIL" ]; then echo "refusing: $d/FAIL exists (remove it to deploy)" >&2; exit 3; fi; '
        'printf "%s\\n%s\\n" "$RELEASEBOARD_VERSION" "$RELEASEBOARD_SHA" > "$d/VERSION.tmp" && '
        'mv "$d/VERSION.tmp" "$d/VERSION"'
    )
    return shlex.join(["sh", "-c", script, "deploy", str(root)])


def check_command(root: Path) -> str:
    """A smoke test: the VERSION file names the SHA just deployed."""
    script = 'grep -qx "$RELEASEBOARD_SHA" "$1/$RELEASEBOARD_ENVIRONMENT/VERSION" && echo "smoke test passed"'
    return shlex.join(["sh", "-c", script, "check", str(root)])

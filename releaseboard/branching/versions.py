"""Release versions: parse tags, find the latest, compute the next one."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from releaseboard.branching.model import BranchKind

TAG_PREFIX = "v"
_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse "1.2.3" (a leading "v" is allowed); raises ValueError with a readable message."""
        raw = text.strip()
        if raw.startswith(TAG_PREFIX):
            raw = raw[len(TAG_PREFIX) :]
        match = _VERSION.match(raw)
        if not match:
            raise ValueError(f"'{text}' is not a version like 1.4.0.")
        return cls(*(int(part) for part in match.groups()))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def tag(self) -> str:
        return f"{TAG_PREFIX}{self}"

    def bump_major(self) -> Version:
        return Version(self.major + 1, 0, 0)

    def bump_minor(self) -> Version:
        return Version(self.major, self.minor + 1, 0)

    def bump_patch(self) -> Version:
        return Version(self.major, self.minor, self.patch + 1)


ZERO = Version(0, 0, 0)


def parse_tag(tag: str) -> Version | None:
    """The version a tag names ("v1.2.3"), or None for tags that are not releases."""
    if not tag.startswith(TAG_PREFIX):
        return None
    try:
        return Version.parse(tag)
    except ValueError:
        return None


def latest_version(tags: Iterable[str]) -> Version:
    """The highest release version among tags, or 0.0.0 when there is none."""
    versions = [v for v in (parse_tag(t) for t in tags) if v is not None]
    return max(versions, default=ZERO)


def bump_for(current: Version, kinds: Iterable[BranchKind]) -> Version:
    """The proposed next version: minor if any feature is in the release, else patch.

    A major bump is never proposed; a release manager chooses it explicitly.
    """
    kinds = set(kinds)
    if BranchKind.FEATURE in kinds:
        return current.bump_minor()
    return current.bump_patch()

"""The radar's cached merge rows validate like any other model."""

from __future__ import annotations

import pytest

from releaseboard.radar.models import PairMerge
from releaseboard.releases.models import Repository

pytestmark = pytest.mark.django_db


def test_a_cached_merge_passes_model_validation(repository: Repository) -> None:
    # full_clean() calls Model.clean(); a property of that name once made it fail with
    # "'bool' object is not callable".
    merge = PairMerge(repository=repository, low_sha="a" * 40, high_sha="b" * 40, conflicts=[{"path": "x.py"}])
    merge.full_clean()
    assert not merge.merges_cleanly
    assert PairMerge(repository=repository, low_sha="a" * 40, high_sha="c" * 40).merges_cleanly

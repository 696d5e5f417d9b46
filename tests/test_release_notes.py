"""Release notes: drafted from the promotions, editable before the click, kept on the
release and listed safely on the Releases page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from releaseboard.releases import selectors
from releaseboard.releases.models import Branch, Promotion, PromotionState, Release, ReleaseState


def _promotion(repository, name, kind, title, requester, ticket="", state=PromotionState.PROMOTED):
    branch = Branch.objects.create(repository=repository, name=name, kind=kind, head_sha="c" * 40, ticket_url=ticket)
    return Promotion.objects.create(
        repository=repository, branch=branch, title=title, requested_by=requester, state=state
    )


@pytest.fixture
def promoted(repository, developer):
    return [
        _promotion(repository, "feature/login", "feature", "Login form", developer, "https://tickets.example/T-1"),
        _promotion(repository, "hotfix/typo", "hotfix", "Fix the typo", developer),
        _promotion(repository, "feature/cart", "feature", "Shopping   cart", None, "javascript:alert(1)"),
    ]


def test_notes_are_grouped_into_features_and_hotfixes_with_branch_requester_and_ticket(promoted):
    login, typo, cart = promoted

    notes = selectors.release_notes(promoted)

    assert notes == (
        "## Features\n\n"
        f"- Login form (`feature/login`, requested by dev, promotion #{login.pk}) \u2014 "
        "[ticket](https://tickets.example/T-1)\n"
        f"- Shopping cart (`feature/cart`, requested by unknown, promotion #{cart.pk})\n\n"
        "## Hotfixes\n\n"
        f"- Fix the typo (`hotfix/typo`, requested by dev, promotion #{typo.pk})"
    )


def test_notes_leave_out_empty_sections():
    assert selectors.release_notes([]) == ""


def test_promote_to_master_page_prefills_the_notes_from_the_unreleased_promotions(
    client, repository, promoted, release_manager
):
    _promotion(repository, "feature/old", "feature", "Already released", None, state=PromotionState.RELEASED)
    client.force_login(release_manager)

    page = client.get(reverse("web:release_new", args=[repository.name])).content.decode()

    assert "## Features" in page and "Login form" in page and "Fix the typo" in page
    assert "Already released" not in page.split("<textarea")[1]


def test_releases_page_shows_notes_escaped_and_links_promotions_and_audit(
    client, repository, promoted, release_manager, developer
):
    release = Release.objects.create(
        repository=repository,
        version="1.1.0",
        tag="v1.1.0",
        sha="d" * 40,
        notes="## Features\n\n- <script>alert(1)</script>",
        state=ReleaseState.RELEASED,
    )
    Promotion.objects.filter(pk=promoted[0].pk).update(state=PromotionState.RELEASED, release=release)
    client.force_login(release_manager)

    page = client.get(reverse("web:release_list", args=[repository.name])).content.decode()

    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert reverse("web:promotion_detail", args=[repository.name, promoted[0].pk]) in page
    assert f"{reverse('web:audit_list')}?repository={repository.pk}&amp;action=release.released" in page

    client.force_login(developer)  # no audit role: no audit link
    assert (
        reverse("web:audit_list")
        not in client.get(reverse("web:release_list", args=[repository.name])).content.decode()
    )

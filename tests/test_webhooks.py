"""Outgoing webhooks against a real local HTTP receiver: signed per Standard Webhooks
(checked by the independent `standardwebhooks` package), retried after errors,
disabled by 410, redelivered on request, and never sent where the guard forbids."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from releaseboard.audit.models import AuditEvent
from releaseboard.audit.service import record
from releaseboard.integrations import outbound, outbox, subscriptions
from releaseboard.integrations.models import Delivery, DeliveryState, Subscription
from releaseboard.releases.models import Repository
from tests.webhook_receiver import receiver

pytestmark = pytest.mark.django_db

LOOPBACK = "127.0.0.0/8"


@pytest.fixture(autouse=True)
def allow_loopback(settings: Any) -> None:
    settings.WEBHOOK_ALLOW_NETWORKS = LOOPBACK


def _subscribe(actor: Any, repository: Any, url: str, events: list[str], format: str = "standard") -> tuple[Any, str]:
    return subscriptions.create(actor=actor, repository=repository, url=url, event_types=events, format=format)


def _emit(action: str, repository: Any, **kwargs: Any) -> AuditEvent:
    with transaction.atomic():
        return record(action, actor=None, repository=repository, **kwargs)


def _send_all() -> list[Delivery]:
    """What the worker does, in this process: every due delivery, once."""
    sent = []
    for delivery_id in Delivery.objects.filter(state=DeliveryState.PENDING).values_list("pk", flat=True):
        done = outbox.deliver(delivery_id)
        if done is not None:
            sent.append(done)
    return sent


def test_a_promotion_event_is_delivered_signed_and_an_independent_verifier_accepts_it(
    repository: Repository, release_manager: Any
) -> None:
    with receiver() as hook:
        subscription, secret = _subscribe(release_manager, repository, hook.url, ["promotion.promoted"])
        assert secret.startswith("whsec_")
        _emit("promotion.promoted", repository, to_sha="a" * 40, message="landed")
        _emit("branch.requested", repository)  # not subscribed: no delivery
        [delivery] = _send_all()
        assert delivery.state == DeliveryState.DELIVERED and delivery.status_code == 200
        [got] = hook.received
        payload = Webhook(secret).verify(got.body, got.headers)
        assert payload["type"] == "promotion.promoted"
        assert payload["data"]["repository"] == "shop" and payload["data"]["to_sha"] == "a" * 40
        assert got.headers["webhook-id"] == delivery.message_id
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(got.body.replace(b"landed", b"forged"), got.headers)
        # The secret is in no audit event and in no stored header.
        assert not AuditEvent.objects.filter(details__icontains=secret[6:]).exists()
        assert secret not in json.dumps(delivery.request_headers)


def test_a_failing_receiver_is_retried_with_backoff_and_the_same_webhook_id(
    repository: Repository, release_manager: Any
) -> None:
    with receiver([500, 503, 200]) as hook:
        _subscribe(release_manager, repository, hook.url, ["release.created"])
        _emit("release.released", repository)
        first = _send_all()[0]
        assert first.state == DeliveryState.PENDING and first.attempts == 1 and first.status_code == 500
        assert first.next_attempt_at and first.last_attempt_at
        assert first.next_attempt_at - first.last_attempt_at >= dt.timedelta(seconds=outbox.BACKOFF[0])
        assert outbox.deliver(first.pk) is None, "not before its time"
        for expected_attempt in (2, 3):
            Delivery.objects.filter(pk=first.pk).update(next_attempt_at=timezone.now())
            done = outbox.deliver(first.pk)
            assert done is not None and done.attempts == expected_attempt
        assert done is not None and done.state == DeliveryState.DELIVERED
        assert [r.headers["webhook-id"] for r in hook.received] == [first.message_id] * 3


def test_the_receiver_answering_410_disables_the_subscription(repository: Repository, release_manager: Any) -> None:
    with receiver([410]) as hook:
        subscription, _ = _subscribe(release_manager, repository, hook.url, ["branch.created"])
        _emit("branch.created", repository)
        [delivery] = _send_all()
        assert delivery.state == DeliveryState.FAILED
        subscription.refresh_from_db()
        assert not subscription.active and "410" in subscription.disabled_reason
        assert AuditEvent.objects.filter(action="webhook.disabled", object_id=subscription.pk).exists()
        _emit("branch.created", repository)
        assert Delivery.objects.count() == 1, "a disabled subscription gets nothing new"


def test_gives_up_after_about_a_day_of_attempts(repository: Repository, release_manager: Any) -> None:
    assert 20 * 3600 <= sum(outbox.BACKOFF) <= 36 * 3600
    with receiver([500]) as hook:
        _subscribe(release_manager, repository, hook.url, ["branch.created"])
        _emit("branch.created", repository)
        delivery = Delivery.objects.get()
        for _ in range(len(outbox.BACKOFF) + 1):
            Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
            outbox.deliver(delivery.pk)
        delivery.refresh_from_db()
        assert delivery.state == DeliveryState.FAILED and "Gave up after 9 attempts" in delivery.error
        assert len(hook.received) == 9


def test_a_rotated_secret_signs_with_both_secrets_during_the_overlap(
    repository: Repository, release_manager: Any
) -> None:
    with receiver() as hook:
        subscription, old = _subscribe(release_manager, repository, hook.url, ["branch.created"])
        new = subscriptions.rotate(subscription, actor=release_manager)
        _emit("branch.created", repository)
        _send_all()
        got = hook.received[-1]
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        Webhook(old).verify(got.body, got.headers)
        Webhook(new).verify(got.body, got.headers)
        Subscription.objects.filter(pk=subscription.pk).update(
            previous_secret_expires_at=timezone.now() - dt.timedelta(seconds=1)
        )
        _emit("branch.created", repository)
        _send_all()
        got = hook.received[-1]
        Webhook(new).verify(got.body, got.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(got.body, got.headers)


def test_slack_format_sends_text_and_blocks(repository: Repository, release_manager: Any) -> None:
    with receiver() as hook:
        _subscribe(release_manager, repository, hook.url, ["drift.raised"], format="slack")
        _emit("drift.detected", repository, from_sha="1" * 40, to_sha="2" * 40, message="master moved")
        _send_all()
        message = json.loads(hook.received[0].body)
        assert "*shop*" in message["text"] and "outside Releaseboard" in message["text"]
        assert message["blocks"][0]["type"] == "section" and "master moved" in json.dumps(message["blocks"])


def test_redelivery_and_test_events_from_the_page(client: Client, repository: Repository, release_manager: Any) -> None:
    with receiver() as hook:
        subscription, _ = _subscribe(release_manager, repository, hook.url, ["branch.created"])
        client.force_login(release_manager)
        client.post(reverse("web:webhook_action", args=[subscription.pk, "test"]))
        [test_delivery] = _send_all()
        assert test_delivery.event_type == "test.event" and test_delivery.state == DeliveryState.DELIVERED
        page = client.get(reverse("web:webhook_detail", args=[subscription.pk])).content.decode()
        assert test_delivery.message_id in page and "Redeliver" in page
        client.post(reverse("web:delivery_redeliver", args=[subscription.pk, test_delivery.pk]))
        _send_all()
        assert [r.headers["webhook-id"] for r in hook.received] == [test_delivery.message_id] * 2
        assert AuditEvent.objects.filter(action="webhook.redelivered").count() == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "http://user:pw@example.com/hook",
    ],
)
def test_the_guard_refuses_private_loopback_link_local_and_odd_urls_by_default(url: str) -> None:
    with pytest.raises(outbound.Refused):
        outbound.check_url(url, [])
    answer = outbound.post(url, b"{}", {}, [])
    assert answer.status is None and answer.error


def test_a_subscription_to_a_forbidden_address_is_refused_with_the_reason(
    settings: Any, repository: Repository, release_manager: Any
) -> None:
    settings.WEBHOOK_ALLOW_NETWORKS = ""
    with pytest.raises(subscriptions.Refused, match="loopback address.*RELEASEBOARD_WEBHOOK_ALLOW_NETWORKS"):
        _subscribe(release_manager, repository, "http://127.0.0.1:8080/hook", ["branch.created"])


def test_a_subscription_made_while_allowed_is_not_sent_once_the_network_is_no_longer_allowed(
    settings: Any, repository: Repository, release_manager: Any
) -> None:
    with receiver() as hook:
        _subscribe(release_manager, repository, hook.url, ["branch.created"])
        settings.WEBHOOK_ALLOW_NETWORKS = ""
        _emit("branch.created", repository)
        [delivery] = _send_all()
        assert hook.received == [] and "loopback address" in delivery.error


def test_redirects_are_not_followed(repository: Repository, release_manager: Any) -> None:
    with receiver([302]) as target, receiver() as elsewhere:
        target.redirect_to = elsewhere.url
        _subscribe(release_manager, repository, target.url, ["branch.created"])
        _emit("branch.created", repository)
        [delivery] = _send_all()
        assert delivery.state == DeliveryState.PENDING and "redirects are not followed" in delivery.error
        assert elsewhere.received == []


def test_who_may_manage_webhooks(
    client: Client, repository: Repository, developer: Any, release_manager: Any, admin_user: Any, ops: Any
) -> None:
    with pytest.raises(subscriptions.Refused, match="Only an admin"):
        _subscribe(release_manager, None, "http://127.0.0.1:1/x", ["branch.created"])
    _subscribe(admin_user, None, "http://127.0.0.1:1/x", ["branch.created"])
    with pytest.raises(subscriptions.Refused):
        _subscribe(developer, repository, "http://127.0.0.1:1/x", ["branch.created"])
    for user, status in ((developer, 403), (ops, 403), (release_manager, 200), (admin_user, 200)):
        client.force_login(user)
        assert client.get(reverse("web:webhook_list")).status_code == status
    client.force_login(release_manager)
    assert "http://127.0.0.1:1/x" not in client.get(reverse("web:webhook_list")).content.decode()


def test_the_secret_is_shown_once_on_creation_and_never_again(
    client: Client, repository: Repository, release_manager: Any
) -> None:
    client.force_login(release_manager)
    response = client.post(
        reverse("web:webhook_list"),
        {
            "repository": repository.pk,
            "url": "http://127.0.0.1:1/hook",
            "events": ["branch.created"],
            "format": "standard",
        },
    )
    subscription = Subscription.objects.get()
    assert subscription.secret in response.content.decode()
    assert "not shown again" in response.content.decode()
    assert subscription.secret not in client.get(reverse("web:webhook_detail", args=[subscription.pk])).content.decode()
    assert subscription.secret not in client.get(reverse("web:webhook_list")).content.decode()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_the_events_of_a_branch_request(
    tmp_path: Any, repository: Repository, remote: Any, developer: Any, release_manager: Any
) -> None:
    from releaseboard.jobs.models import Job, JobState
    from releaseboard.releases import services
    from tests.conftest import WorkerProcess, run_jobs, wait_for, wait_for_job

    services.refresh(repository, actor=developer)
    run_jobs(scope_id=repository.pk)
    worker = WorkerProcess(tmp_path / "worker.log", extra_env={"RELEASEBOARD_WEBHOOK_ALLOW_NETWORKS": LOOPBACK})
    try:
        with receiver() as hook:
            _, secret = _subscribe(release_manager, repository, hook.url, ["branch.requested", "branch.created"])
            branch = services.request_branch(repository, actor=developer, kind="feature", name="hooks", purpose="x")
            job = wait_for_job(Job.objects.get(kind="create_branch", subject_id=branch.pk))
            assert job.state == JobState.SUCCEEDED, job.message
            wait_for(lambda: len(hook.received) == 2, timeout=30, what="two deliveries")
            types = [Webhook(secret).verify(r.body, r.headers)["type"] for r in hook.received]
            assert sorted(types) == ["branch.created", "branch.requested"]
            # The receiver answers before the worker records its answer: wait for the record, not just the request.
            delivered = Delivery.objects.filter(state=DeliveryState.DELIVERED)
            wait_for(lambda: delivered.count() == 2, timeout=30, what="both deliveries recorded as delivered")
    finally:
        worker.stop()

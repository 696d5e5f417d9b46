"""`rb status …` and `rb webhook …`: CI statuses and outgoing webhooks."""

from __future__ import annotations

import argparse
from typing import Any

from .client import OK, Api
from .output import emit, note, table

STATUS_COLUMNS = ["id", "context", "state", "counts", "reporter", "created_at", "target_url", "description"]
WEBHOOK_COLUMNS = ["id", "repository", "url", "events", "format", "active", "description"]
DELIVERY_COLUMNS = ["id", "event_type", "state", "attempts", "status_code", "duration_ms", "created_at", "error"]


def cmd_status_set(api: Api, args: argparse.Namespace) -> int:
    body = {
        "context": args.context,
        "state": args.state,
        "target_url": args.url or "",
        "description": args.description or "",
    }
    status = api.request("POST", f"/repos/{args.repo}/statuses/{args.sha}", body)
    emit(status, args.output, STATUS_COLUMNS)
    return OK


def cmd_status_list(api: Api, args: argparse.Namespace) -> int:
    found = api.request("GET", f"/repos/{args.repo}/statuses/{args.sha}")
    if args.output == "json":
        emit(found, "json")
        return OK
    table(found["statuses"], STATUS_COLUMNS)
    for gate in found["gates"]:
        print(f"\n{gate['target']}: {'passed' if gate['passed'] else 'not passed'} — {gate['summary']}")
        table(gate["checks"], ["context", "state", "reporters", "target_url", "description"])
    return OK


def cmd_webhook_add(api: Api, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "url": args.url,
        "events": args.event,
        "repo": args.repo or None,
        "format": args.format,
        "description": args.description or "",
    }
    created = api.request("POST", "/webhooks", body)
    if args.output == "json":
        emit(created, "json")
        return OK
    table([created], WEBHOOK_COLUMNS)
    note("The signing secret is shown this once; keep it where the receiver can read it:")
    print(created["secret"])  # its own last line, so `rb webhook add … | tail -1` is the secret
    return OK


def cmd_webhook_list(api: Api, args: argparse.Namespace) -> int:
    emit(api.request("GET", "/webhooks"), args.output, WEBHOOK_COLUMNS)
    return OK


def cmd_webhook_remove(api: Api, args: argparse.Namespace) -> int:
    api.request("DELETE", f"/webhooks/{args.id}")
    if args.output == "json":
        emit({"id": args.id, "removed": True}, "json")
    else:
        note(f"Webhook #{args.id} removed.")
    return OK


def cmd_webhook_deliveries(api: Api, args: argparse.Namespace) -> int:
    page = api.request("GET", f"/webhooks/{args.id}/deliveries", query={"limit": args.limit, "before": args.before})
    if args.output == "json":
        emit(page, "json")
        return OK
    table(page["deliveries"], DELIVERY_COLUMNS)
    if page["older_before"]:
        note(f"Older deliveries: rb webhook deliveries {args.id} --before {page['older_before']}")
    return OK


def cmd_webhook_rotate(api: Api, args: argparse.Namespace) -> int:
    rotated = api.request("POST", f"/webhooks/{args.id}/rotate")
    if args.output == "json":
        emit(rotated, "json")
        return OK
    note(
        f"New secret for webhook #{args.id}, shown this once; the old one also signs until "
        f"{rotated['previous_secret_expires_at']}:"
    )
    print(rotated["secret"])
    return OK


def cmd_webhook_test(api: Api, args: argparse.Namespace) -> int:
    delivery = api.request("POST", f"/webhooks/{args.id}/test")
    emit(delivery, args.output, DELIVERY_COLUMNS)
    if args.output != "json":
        note(f"Test event queued; 'rb webhook deliveries {args.id}' shows how it went.")
    return OK


def cmd_webhook_redeliver(api: Api, args: argparse.Namespace) -> int:
    delivery = api.request("POST", f"/webhooks/{args.id}/deliveries/{args.delivery}/redeliver")
    emit(delivery, args.output, DELIVERY_COLUMNS)
    return OK


def add_commands(top: Any, leaf: Any) -> None:
    """Called by parser.build_parser with its subparsers and its `leaf` helper."""
    status = top.add_parser("status", help="CI statuses of commits").add_subparsers(dest="sub", metavar="SUBCOMMAND")
    sset = leaf(status, "set", cmd_status_set, "report a CI status (the token needs the statuses scope)")
    sset.add_argument("repo")
    sset.add_argument("sha", help="the full 40-character commit SHA")
    sset.add_argument("context", help="e.g. ci/build")
    sset.add_argument("state", choices=["pending", "success", "failure", "error"])
    sset.add_argument("--url", help="a link to the CI run")
    sset.add_argument("--description", help="one line, e.g. '42 tests passed'")
    slist = leaf(status, "list", cmd_status_list, "a commit's statuses and the gates that read them")
    slist.add_argument("repo")
    slist.add_argument("sha")

    webhook = top.add_parser("webhook", help="outgoing webhooks").add_subparsers(dest="sub", metavar="SUBCOMMAND")
    add = leaf(webhook, "add", cmd_webhook_add, "subscribe a URL to events; prints its secret once")
    add.add_argument("url")
    add.add_argument("--event", action="append", required=True, help="an event name; repeat for more")
    add.add_argument("--repo", help="one repository (default: all, admins only)")
    add.add_argument("--format", choices=["standard", "slack"], default="standard")
    add.add_argument("--description")
    leaf(webhook, "list", cmd_webhook_list, "webhook subscriptions you manage")
    for name, handler, text in (
        ("remove", cmd_webhook_remove, "remove a webhook"),
        ("rotate", cmd_webhook_rotate, "a new signing secret (printed once; the old one signs for a day)"),
        ("test", cmd_webhook_test, "queue a test event"),
    ):
        leaf(webhook, name, handler, text).add_argument("id", type=int)
    deliveries = leaf(webhook, "deliveries", cmd_webhook_deliveries, "a webhook's deliveries, newest first")
    deliveries.add_argument("id", type=int)
    deliveries.add_argument("--limit", type=int, default=50)
    deliveries.add_argument("--before", type=int, help="show deliveries older than this id")
    redeliver = leaf(webhook, "redeliver", cmd_webhook_redeliver, "send a delivery again (same webhook-id)")
    redeliver.add_argument("id", type=int)
    redeliver.add_argument("delivery", type=int)

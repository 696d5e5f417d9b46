"""The body of a delivery, in the subscription's format."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from releaseboard.integrations.events import EVENTS, WebhookEvent


def body(format: str, event: WebhookEvent) -> str:
    if format == "slack":
        return json.dumps(slack_message(event), sort_keys=True)
    return json.dumps(event.payload, sort_keys=True, separators=(",", ":"))


def _link() -> str:
    base = getattr(settings, "RELEASEBOARD_BASE_URL", "")
    return f" <{base}|Open Releaseboard>" if base else ""


def slack_message(event: WebhookEvent) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` for notifications, `blocks` for the channel."""
    data = event.payload["data"]
    where = f"*{data['repository']}*" if data.get("repository") else "Releaseboard"
    what = EVENTS.get(event.type, event.type)
    thing = data.get("object") or {}
    subject = f" — {thing.get('name')}" if thing.get("name") else ""
    text = f"{where}: {what}{subject} (by {data.get('actor')})"
    fields = []
    if data.get("message"):
        fields.append(str(data["message"])[:2000])
    if data.get("to_sha"):
        fields.append(f"`{str(data.get('from_sha') or '')[:12]}` → `{str(data['to_sha'])[:12]}`")
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text + _link()}}]
    if fields:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f} for f in fields]})
    return {"text": text, "blocks": blocks}

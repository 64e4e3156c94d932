"""Webhook subscriptions over HTTP: create, list, show, delete, their delivery attempts, a test ping.

Deliveries themselves are made by workers; a ping is the one delivery the
gateway makes, at once, so that whoever sets a receiver up sees the answer
(status, latency, error) in the reply and in the attempts list.
"""

from __future__ import annotations

import os
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook as Signer

from cargohold.api import event_schemas as models
from cargohold.api.auth import principal
from cargohold.api.context import SERVICES
from cargohold.api.inputs import INT64_MAX, int_query, model_body, parse_int
from cargohold.api.native import API, Route, json_response
from cargohold.domain.webhooks import PING, Webhook, ping_body
from cargohold.metadata.repositories.webhooks import Outcome
from cargohold.metadata.tables import utcnow
from cargohold.workers.webhook_sender import Sender

#: App key: the pooled client the gateway's pings go out through.
PING_SENDER = web.AppKey("webhook_ping_sender", Sender)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def webhook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "types": list(hook.event_types) or ["*"],
        "bucket": hook.bucket,
        "owner": hook.owner_name,
        "status": hook.state,
        "created_at": hook.created_at.isoformat(),
        "delivered": hook.delivered,
        "cursor": hook.cursor,
        "failed_attempts": hook.attempts,
        "failing_since": _iso(hook.failing_since),
        "next_attempt_at": _iso(hook.next_attempt_at),
        "disabled_at": _iso(hook.disabled_at),
        "disabled_reason": hook.disabled_reason,
    }


async def create_webhook(request: web.Request) -> web.Response:
    body = await model_body(request, models.CreateWebhook)
    hook, secret = await request.app[SERVICES].webhooks.create(
        principal(request), body.url, body.types or (), body.bucket, body.secret
    )
    return json_response({**webhook_json(hook), "secret": secret}, status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    hooks = await request.app[SERVICES].webhooks.list_for(principal(request))
    return json_response({"webhooks": [webhook_json(h) for h in hooks]})


async def get_webhook(request: web.Request) -> web.Response:
    hook = await request.app[SERVICES].webhooks.get(principal(request), request.match_info["webhook_id"])
    return json_response(webhook_json(hook))


async def delete_webhook(request: web.Request) -> web.Response:
    await request.app[SERVICES].webhooks.delete(principal(request), request.match_info["webhook_id"])
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    limit = int_query(request, "limit", 100, minimum=1, maximum=1000)
    raw = request.query.get("cursor")
    before = parse_int(raw, "cursor", minimum=1, maximum=INT64_MAX) if raw is not None else None
    attempts = await request.app[SERVICES].webhooks.attempts(
        principal(request), request.match_info["webhook_id"], before=before, limit=limit
    )
    return json_response(
        {
            "deliveries": [
                {
                    "id": a.id,
                    "event_id": a.event_id,
                    "type": a.event_type,
                    "attempt": a.attempt,
                    "at": a.at.isoformat(),
                    "ok": a.ok,
                    "status_code": a.status_code,
                    "latency_ms": a.latency_ms,
                    "error": a.error,
                }
                for a in attempts
            ],
            "next_cursor": str(attempts[-1].id) if len(attempts) == limit else None,
        }
    )


async def ping_webhook(request: web.Request) -> web.Response:
    service = request.app[SERVICES].webhooks
    hook = await service.get(principal(request), request.match_info["webhook_id"])
    now = utcnow()
    message = "ping_" + os.urandom(8).hex()
    body = ping_body(hook.id, now)
    result = await request.app[PING_SENDER].send(hook.url, Signer(service.secret(hook)), message, body)
    await service.record_ping(
        Outcome(
            hook.id,
            hook.cursor,
            event_type=PING,
            at=now,
            ok=result.ok,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
        )
    )
    return json_response(
        {
            "ok": result.ok,
            "status_code": result.status_code,
            "latency_ms": result.latency_ms,
            "error": result.error,
        }
    )


WEBHOOKS = API + "/webhooks"
WEBHOOK = WEBHOOKS + "/{webhook_id}"
ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        WEBHOOKS,
        create_webhook,
        "Subscribe a URL to events (types: default every type; bucket: optional). The answer holds"
        " the signing secret, once. The URL must resolve to public addresses (422"
        " webhook_target_forbidden) unless an admin allows private ones",
        "webhooks",
        action="webhook.create",
        body=models.CreateWebhook,
        answer=models.NewWebhook,
        status=201,
        errors=(422,),
    ),
    Route(
        "GET",
        WEBHOOKS,
        list_webhooks,
        "The caller's webhooks (an admin's: everyone's)",
        "webhooks",
        action="webhook.list",
        answer=models.WebhookList,
    ),
    Route(
        "GET",
        WEBHOOK,
        get_webhook,
        "One webhook: where it sends, what it selects, how far it got, whether it is failing",
        "webhooks",
        action="webhook.read",
        answer=models.WebhookOut,
    ),
    Route(
        "DELETE",
        WEBHOOK,
        delete_webhook,
        "Delete a webhook; nothing more is sent to it",
        "webhooks",
        action="webhook.delete",
        status=204,
    ),
    Route(
        "GET",
        WEBHOOK + "/deliveries",
        list_deliveries,
        "Delivery attempts, newest first: event, attempt number, status code, latency, error",
        "webhooks",
        action="webhook.deliveries",
        answer=models.AttemptList,
        query=(
            ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ("cursor", {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}),
        ),
    ),
    Route(
        "POST",
        WEBHOOK + "/ping",
        ping_webhook,
        "Send a signed webhook.ping now and answer what the receiver said",
        "webhooks",
        action="webhook.ping",
        answer=models.PingOut,
    ),
)

"""Buckets as namespaces over the native API: a bucket's description and its grants.

``GET /api/v1/buckets/{bucket}`` shares its path with the bucket's PUT and
DELETE in ``native.py``: aiohttp resolves a path against each registered
resource in turn and only answers 405 when none of them takes the method, so
the three methods work side by side from two route tables.

Handlers translate HTTP to :class:`NamespaceService` calls, which check the
caller's level on the bucket before anything else.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cargohold.api import schemas
from cargohold.api.audit import note
from cargohold.api.auth import principal
from cargohold.api.context import SERVICES
from cargohold.api.inputs import model_body
from cargohold.api.native import API, Route, json_response
from cargohold.metadata.repositories.grants import GrantRecord
from cargohold.service.namespaces import BucketView, NamespaceService

BUCKET = API + "/buckets/{bucket}"
GRANTS = BUCKET + "/grants"


def _namespaces(request: web.Request) -> NamespaceService:
    return request.app[SERVICES].namespaces


def bucket_view_json(view: BucketView) -> dict[str, Any]:
    bucket = view.bucket
    return {
        "name": bucket.name,
        "layout": bucket.layout,
        "owner": view.owner,
        "versioning": bucket.versioning,
        "level": view.level.label,
        "created_at": bucket.created_at.isoformat(),
    }


def grant_json(grant: GrantRecord) -> dict[str, Any]:
    return {
        "user": grant.user_name,
        "level": grant.level,
        "granted_by": grant.granted_by_name,
        "created_at": grant.created_at.isoformat(),
    }


async def get_bucket(request: web.Request) -> web.Response:
    view = await _namespaces(request).describe(principal(request), request.match_info["bucket"])
    return json_response(bucket_view_json(view))


async def list_grants(request: web.Request) -> web.Response:
    found = await _namespaces(request).grants(principal(request), request.match_info["bucket"])
    return json_response(
        {"bucket": found.bucket.name, "owner": found.owner, "grants": [grant_json(g) for g in found.grants]}
    )


async def create_grant(request: web.Request) -> web.Response:
    body = await model_body(request, schemas.CreateGrant)
    grant = await _namespaces(request).grant(
        principal(request), request.match_info["bucket"], body.user, body.level
    )
    note(request, detail={"user": grant.user_name, "level": grant.level})
    return json_response(grant_json(grant), status=201)


async def revoke_grant(request: web.Request) -> web.Response:
    """``DELETE …/grants/{user}``, or ``DELETE …/grants`` naming the user in a JSON ``{"user": …}``."""
    user = request.match_info.get("user") or (await model_body(request, schemas.RevokeGrant)).user
    revoked = await _namespaces(request).revoke(principal(request), request.match_info["bucket"], user)
    note(request, detail={"user": revoked.user_name, "level": revoked.level})
    return web.Response(status=204)


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        BUCKET,
        get_bucket,
        "A bucket: layout, owner, versioning and your level on it (read, write or admin)",
        "buckets",
        action="bucket.read",
        answer=schemas.BucketView,
    ),
    Route(
        "GET",
        GRANTS,
        list_grants,
        "Who may use the bucket: its owner and every grant (needs admin on it)",
        "grants",
        action="grant.list",
        answer=schemas.GrantList,
    ),
    Route(
        "POST",
        GRANTS,
        create_grant,
        "Grant a user read, write or admin on the bucket: {user, level}; replaces an earlier grant"
        " (the owner always holds admin: 409 owner_grant)",
        "grants",
        action="grant.create",
        body=schemas.CreateGrant,
        answer=schemas.GrantOut,
        status=201,
        errors=(409,),
    ),
    Route(
        "DELETE",
        GRANTS + "/{user}",
        revoke_grant,
        "Revoke a user's grant on the bucket",
        "grants",
        action="grant.revoke",
        status=204,
    ),
    Route(
        "DELETE",
        GRANTS,
        revoke_grant,
        "Revoke a user's grant on the bucket, the user named by {user}",
        "grants",
        action="grant.revoke",
        body=schemas.RevokeGrant,
        status=204,
    ),
)

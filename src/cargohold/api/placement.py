"""``GET /api/v1/buckets/{bucket}/placement/{key}``: where an object's shares are, for its readers.

The object details of the web page (and of anyone asking "is my file safe?")
need more than HEAD gives: per part, which node holds each share and whether
that node is up, draining or lost. The rules (who may ask, how health is
judged) are in ``service/placement.py``; this module only speaks HTTP.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cargohold.api import schemas
from cargohold.api.audit import note
from cargohold.api.auth import principal
from cargohold.api.context import SERVICES
from cargohold.api.native import BUCKET, TAIL, VERSION_HEADER, Route, json_response, object_json
from cargohold.service.placement import PartPlace, Placement, SharePlace, placement


def _share_json(share: SharePlace) -> dict[str, Any]:
    holder = share.holder
    node = None
    if holder is not None:
        node = {
            "id": holder.id,
            "zone": holder.zone,
            "status": holder.status,
            "state": holder.state,
            "enabled": holder.enabled,
        }
    return {"index": share.index, "node": node, "state": share.state, "available": share.available}


def _part_json(part: PartPlace) -> dict[str, Any]:
    return {
        "part_number": part.part.part_number,
        "offset": part.part.offset,
        "size": part.part.size,
        "layout": part.part.layout,
        "needed": part.needed,
        "available": part.available,
        "health": part.health,
        "shares": [_share_json(s) for s in part.shares],
    }


def placement_json(bucket: str, found: Placement) -> dict[str, Any]:
    return {
        **object_json(bucket, found.record),
        "layout": found.layout,
        "health": found.health,
        "parts": [_part_json(p) for p in found.parts],
    }


async def get_placement(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    bucket = request.match_info["bucket"]
    found = await placement(
        services.objects,
        services.nodes,
        principal(request),
        bucket,
        request.match_info["key"],
        request.query.get("version_id"),
    )
    note(request, version_id=found.record.version_id)
    return json_response(placement_json(bucket, found), headers={VERSION_HEADER: found.record.version_id})


#: The action before the key, as rename and restore do: no key can be mistaken for it.
PLACEMENT = BUCKET + "/placement/{key:" + TAIL + "}"
ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        PLACEMENT,
        get_placement,
        "Where an object is stored: per part, each share's node (id, zone, up/down, life state)"
        " and whether the share is there (?version_id=V: of that version)",
        "objects",
        action="object.placement",
        answer=schemas.ObjectPlacement,
        query=(("version_id", schemas.VERSION_ID_SCHEMA),),
    ),
)

"""Zones (admin) and ``whereami`` (anyone authenticated): where the gateway thinks a client is.

The client's zone is decided once per request by :func:`zone_middleware`
and kept in a context variable, so the read path deep in the services picks
the nearest shares without every handler passing it along.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cargohold.api import zone_schemas
from cargohold.api.auth import require_admin
from cargohold.api.context import SERVICES
from cargohold.api.inputs import model_body
from cargohold.api.native import API, Route, json_response
from cargohold.domain.zones import IPNetwork, Location, client_address, validate_zone_name
from cargohold.problems import Handler
from cargohold.service.zones import READER_ZONE, ZoneService, ZoneView

#: The trusted proxies' networks, parsed once at start.
TRUSTED = web.AppKey("trusted_proxies", tuple)
#: Whether downloads from clients of another zone are sent to a gateway in theirs.
REDIRECT = web.AppKey("redirect_to_nearest", bool)
#: The routes a redirect may answer: object and share-link downloads (their bytes are what
#: crosses zones; everything else is small and answered where it arrives).
REDIRECTED_ROUTES = frozenset({"/api/v1/buckets/{bucket}/objects/{key}", "/s/{token}", "/s/{token}/{rest}"})
LOCATION = web.RequestKey[Location]("client_location")


def _zones(request: web.Request) -> ZoneService:
    return request.app[SERVICES].zones


async def locate(request: web.Request) -> Location:
    """Where the client of this request is (computed once per request)."""
    found = request.get(LOCATION)
    if found is None:
        trusted: tuple[IPNetwork, ...] = request.app.get(TRUSTED, ())
        address, forwarded = client_address(
            request.remote or "",
            request.headers.getall("X-Forwarded-For", []),
            request.headers.getall("Forwarded", []),
            trusted,
        )
        found = await _zones(request).locate(address, forwarded=forwarded)
        request[LOCATION] = found
    return found


@web.middleware
async def zone_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Readers of object bytes take their shares nearest the client's zone."""
    if request.method not in ("GET", "HEAD") or SERVICES not in request.app:
        return await handler(request)
    location = await locate(request)
    if request.app.get(REDIRECT) and request.method == "GET":
        target = await _nearer_gateway(request, location)
        if target is not None:
            return web.Response(status=307, headers={"Location": target, "Cache-Control": "no-store"})
    token = READER_ZONE.set(location.zone)
    try:
        return await handler(request)
    finally:
        READER_ZONE.reset(token)


async def _nearer_gateway(request: web.Request, location: Location) -> str | None:
    """The same URL on a healthy gateway in the client's zone, when this one is elsewhere."""
    services = request.app[SERVICES]
    if location.zone == services.zones.home:
        return None
    resource = request.match_info.route.resource
    if resource is None or resource.canonical not in REDIRECTED_ROUTES:
        return None
    gateway = await services.gateways.in_zone(location.zone)
    return gateway.url + request.path_qs if gateway is not None else None


def _zone_json(view: ZoneView) -> dict[str, Any]:
    zone = view.zone
    return {
        "name": zone.name,
        "defined": view.defined,
        "latitude": zone.latitude,
        "longitude": zone.longitude,
        "networks": [str(n) for n in zone.networks],
        "nodes": view.nodes,
    }


async def list_zones(request: web.Request) -> web.Response:
    service = _zones(request)
    return json_response({"home": service.home, "zones": [_zone_json(v) for v in await service.views()]})


async def put_zone(request: web.Request) -> web.Response:
    require_admin(request)
    name = validate_zone_name(request.match_info["zone"])
    body = await model_body(request, zone_schemas.PutZone)
    service = _zones(request)
    zone, _ = await service.put(name, body.latitude, body.longitude, body.networks)
    view = next(v for v in await service.views() if v.zone.name == zone.name)
    return json_response(_zone_json(view))


async def delete_zone(request: web.Request) -> web.Response:
    require_admin(request)
    await _zones(request).delete(validate_zone_name(request.match_info["zone"]))
    return web.Response(status=204)


async def whereami(request: web.Request) -> web.Response:
    location = await locate(request)
    lat, lon = location.coordinates or (None, None)
    return json_response(
        {
            "address": location.address,
            "zone": location.zone,
            "decided_by": location.how,
            "forwarded": location.forwarded,
            "network": location.network,
            "latitude": lat,
            "longitude": lon,
            "distance_km": location.distance_km,
            "gateway_zone": _zones(request).home,
        }
    )


ZONE = API + "/zones/{zone}"
ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        API + "/zones",
        list_zones,
        "Zones: defined ones and those nodes name, with coordinates, client networks and node counts",
        "zones",
        action="zone.list",
        answer=zone_schemas.ZoneList,
    ),
    Route(
        "PUT",
        ZONE,
        put_zone,
        "Create or replace a zone: coordinates (both or neither) and client networks (admin)",
        "zones",
        action="zone.put",
        body=zone_schemas.PutZone,
        answer=zone_schemas.ZoneOut,
    ),
    Route(
        "DELETE",
        ZONE,
        delete_zone,
        "Forget a zone's definition; refused while nodes are in it (admin)",
        "zones",
        action="zone.delete",
        status=204,
        errors=(409,),
    ),
    Route(
        "GET",
        API + "/whereami",
        whereami,
        "Where this gateway places the caller: address, zone, and the rule that decided",
        "zones",
        action="zone.locate",
        answer=zone_schemas.WhereAmI,
    ),
)

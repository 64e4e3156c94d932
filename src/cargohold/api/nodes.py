"""Native API for operators: storage nodes, and the healing machinery (jobs, health, throttles).

Every call here is admin-only; the work itself happens in workers, these
handlers read the metadata store and queue jobs.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cargohold.api import schemas
from cargohold.api.auth import require_admin
from cargohold.api.context import SERVICES, Services
from cargohold.api.inputs import int_query, model_body, parse_int
from cargohold.api.native import API, Route, json_response
from cargohold.domain.jobs import ALL_KINDS
from cargohold.domain.model import NodeRecord
from cargohold.errors import InvalidArgument, NoSuchNode
from cargohold.service.healing import job_json, node_status

JOB_STATES = ("queued", "running", "done", "failed")
#: Node ids are positive 32-bit integers in the store.
MAX_NODE_ID = 2**31 - 1
MAX_NODE_URL = 255  # the widths of the columns that hold them
MAX_ZONE = 64


def _services(request: web.Request) -> Services:
    require_admin(request)
    return request.app[SERVICES]


def node_json(node: NodeRecord) -> dict[str, Any]:
    return {
        "id": node.id,
        "url": node.url,
        "zone": node.zone,
        "enabled": node.enabled,
        "active": node.active,
        "healthy": node.healthy,
        "status": node_status(node),
        "state": node.state,
        "capacity": node.capacity,
        "used": node.used,
        "free": node.free,
        "fill": round(node.fill, 6),
        "shares": node.shares,
        "last_seen": node.last_seen.isoformat() if node.last_seen else None,
    }


def _node_id(request: web.Request) -> int:
    raw = request.match_info["node_id"]
    if not raw.isdecimal() or not 1 <= int(raw) <= MAX_NODE_ID:
        raise NoSuchNode(f"node {raw[:40]!r} does not exist: node ids are integers from 1 to {MAX_NODE_ID}")
    return int(raw)


async def list_nodes(request: web.Request) -> web.Response:
    return json_response({"nodes": [node_json(n) for n in _services(request).nodes.nodes()]})


async def add_node(request: web.Request) -> web.Response:
    services = _services(request)
    body = await model_body(request, schemas.AddNode)
    url, zone = body.url, body.zone or "default"
    node = await services.nodes.add(url, zone)
    await services.healing.start_rebalance()  # a new node should fill up now, not only with new writes
    return json_response(node_json(node), status=201)


async def update_node(request: web.Request) -> web.Response:
    services = _services(request)
    node_id = _node_id(request)
    body = await model_body(request, schemas.UpdateNode)
    changes: dict[str, Any] = body.model_dump(include=body.model_fields_set, exclude_none=True)
    if not changes:
        raise InvalidArgument("nothing to change: send enabled, active, zone and/or state")
    state = changes.pop("state", None)
    node = services.nodes.get(node_id)
    if changes:
        node = await services.nodes.update(node_id, **changes)
        if changes.get("active") is True or changes.get("enabled") is True:
            await services.healing.start_rebalance()
    if state is not None:
        node = await services.healing.set_node_state(node_id, state)
    if node is None:
        raise NoSuchNode(f"node {node_id} does not exist", node_id=node_id)
    return json_response(node_json(node))


async def remove_node(request: web.Request) -> web.Response:
    await _services(request).healing.remove_node(_node_id(request))
    return web.Response(status=204)


# -- healing ------------------------------------------------------------------------


def _choices(request: web.Request, name: str, allowed: tuple[str, ...]) -> list[str]:
    values = [v for raw in request.query.getall(name, []) for v in raw.split(",") if v]
    for value in values:
        if value not in allowed:
            raise InvalidArgument(f"{name} must be one of {', '.join(allowed)}", field=name)
    return values


async def list_jobs(request: web.Request) -> web.Response:
    services = _services(request)
    before = request.query.get("before")
    limit = int_query(request, "limit", 100, minimum=1, maximum=1000)
    jobs = await services.healing.jobs(
        kinds=_choices(request, "kind", ALL_KINDS),
        states=_choices(request, "state", JOB_STATES),
        before=parse_int(before, "before", maximum=10**18 - 1) if before is not None else None,
        limit=limit,
    )
    next_cursor = str(jobs[-1].id) if len(jobs) == limit else None
    return json_response({"jobs": [job_json(j) for j in jobs], "next_cursor": next_cursor})


async def health(request: web.Request) -> web.Response:
    report = await _services(request).healing.health()
    return json_response(report.to_json())


async def get_worker_settings(request: web.Request) -> web.Response:
    return json_response((await _services(request).healing.limits()).to_json())


async def update_worker_settings(request: web.Request) -> web.Response:
    services = _services(request)
    body = await model_body(request, schemas.WorkerSettings)
    limits = await services.healing.update_limits(body.model_dump(exclude_unset=True))
    return json_response(limits.to_json())


async def start_scrub(request: web.Request) -> web.Response:
    return json_response({"queued": await _services(request).healing.start_scrub()}, status=202)


async def start_rebalance(request: web.Request) -> web.Response:
    return json_response({"queued": await _services(request).healing.start_rebalance()}, status=202)


NODE = API + "/nodes/{node_id}"
ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        API + "/nodes",
        list_nodes,
        "List storage nodes (admin)",
        "nodes",
        action="node.list",
        answer=schemas.NodeList,
    ),
    Route(
        "POST",
        API + "/nodes",
        add_node,
        "Register a running storage node",
        "nodes",
        action="node.add",
        body=schemas.AddNode,
        answer=schemas.NodeOut,
        status=201,
        errors=(409, 422),
    ),
    Route(
        "PATCH",
        NODE,
        update_node,
        "Switch a node on/off or active/inactive, change its zone, or set its state: "
        "draining (move every share off), lost (rebuild its shares elsewhere), normal",
        "nodes",
        action="node.update",
        body=schemas.UpdateNode,
        answer=schemas.NodeOut,
        errors=(409,),
    ),
    Route(
        "DELETE",
        NODE,
        remove_node,
        "Remove a node that holds no shares (drain it first)",
        "nodes",
        action="node.remove",
        status=204,
        errors=(409,),
    ),
    Route(
        "GET",
        API + "/jobs",
        list_jobs,
        "Background jobs, newest first (admin)",
        "healing",
        action="job.list",
        answer=schemas.JobList,
        query=(
            ("kind", {"type": "array", "items": {"type": "string", "enum": list(ALL_KINDS)}}),
            ("state", {"type": "array", "items": {"type": "string", "enum": list(JOB_STATES)}}),
            ("before", {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}),
            ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
    ),
    Route(
        "GET",
        API + "/health",
        health,
        "Redundancy of objects and parts, repair backlog, nodes by state, fill spread (admin)",
        "healing",
        action="health.read",
        answer=schemas.Report,
    ),
    Route(
        "GET",
        API + "/worker/settings",
        get_worker_settings,
        "Worker throttles: bandwidth per kind of work, jobs at once",
        "healing",
        action="worker.settings",
        answer=schemas.Report,
    ),
    Route(
        "PATCH",
        API + "/worker/settings",
        update_worker_settings,
        "Change worker throttles at run time (bytes/s, 0 = unlimited)",
        "healing",
        action="worker.configure",
        body=schemas.WorkerSettings,
        answer=schemas.Report,
    ),
    Route(
        "POST",
        API + "/scrub",
        start_scrub,
        "Start a scrub pass over every node now",
        "healing",
        action="scrub.start",
        answer=schemas.Queued,
        status=202,
    ),
    Route(
        "POST",
        API + "/rebalance",
        start_rebalance,
        "Start moving shares from full to empty nodes now",
        "healing",
        action="rebalance.start",
        answer=schemas.Queued,
        status=202,
    ),
)

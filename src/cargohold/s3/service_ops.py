"""Operations on the S3 service itself (no bucket in the request): ListBuckets."""

from __future__ import annotations

from aiohttp import web

from cargohold.api.auth import principal
from cargohold.api.context import SERVICES
from cargohold.s3 import xml


async def list_buckets(request: web.Request) -> web.StreamResponse:
    """``GET /``: the buckets the caller owns or holds a grant on (admins: all), by name.

    The same set the native ``GET /api/v1/buckets`` lists, through the same service.
    """
    who = principal(request)
    buckets = await request.app[SERVICES].namespaces.visible(who)
    document = xml.root("ListAllMyBucketsResult")
    xml.owner(document, who.name)
    container = xml.child(document, "Buckets")
    for bucket in buckets:
        entry = xml.child(container, "Bucket")
        xml.children(entry, [("Name", bucket.name), ("CreationDate", xml.timestamp(bucket.created_at))])
    return xml.xml_response(document)

"""S3 bucket operations over the namespace service: create, delete, head, location, versioning.

Every call goes through the same services as ``/api/v1/buckets`` with the
caller's principal, so grants decide exactly as they do there: a bucket the
caller may not see is ``NoSuchBucket``, one they may see but not change is
``AccessDenied``.
"""

from __future__ import annotations

from aiohttp import web

from cargohold.api.audit import note
from cargohold.errors import (
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    InvalidLocationConstraint,
    MalformedXML,
    NoSuchBucket,
)
from cargohold.s3.context import REGION, body, bucket_name, services, who
from cargohold.s3.documents import read_document, text_of
from cargohold.s3.xml import child, root, xml_response

VERSIONING_STATUS = {"enabled": "Enabled", "suspended": "Suspended"}


async def create_bucket(request: web.Request) -> web.StreamResponse:
    """PutBucket: the caller owns the new bucket; an optional location must be this region."""
    bucket = bucket_name(request)
    if request.content_length or request.headers.get("Transfer-Encoding"):
        document = await read_document(body(request), "CreateBucketConfiguration")
        location = text_of(document, "LocationConstraint")
        if location not in (None, "", REGION):
            raise InvalidLocationConstraint(f"this gateway's region is {REGION}, not {location!r}")
    caller = who(request)
    try:
        await services(request).namespaces.create(caller, bucket)
    except BucketAlreadyExists:
        try:
            existing = await services(request).buckets.get(bucket)
        except NoSuchBucket:
            raise BucketAlreadyExists(f"bucket {bucket!r} exists", bucket=bucket) from None
        if existing.owner_id == caller.user_id:
            raise BucketAlreadyOwnedByYou(f"you already own bucket {bucket!r}", bucket=bucket) from None
        raise
    return web.Response(status=200, headers={"Location": f"/{bucket}"})


async def delete_bucket(request: web.Request) -> web.StreamResponse:
    bucket = bucket_name(request)
    await services(request).namespaces.delete(who(request), bucket)
    return web.Response(status=204)


async def head_bucket(request: web.Request) -> web.StreamResponse:
    bucket = bucket_name(request)
    await services(request).namespaces.get(who(request), bucket)
    return web.Response(status=200, headers={"x-amz-bucket-region": REGION})


async def get_location(request: web.Request) -> web.StreamResponse:
    bucket = bucket_name(request)
    await services(request).namespaces.get(who(request), bucket)
    document = root("LocationConstraint")  # empty: us-east-1, as S3 answers for it
    if REGION != "us-east-1":
        document.text = REGION
    return xml_response(document)


async def get_versioning(request: web.Request) -> web.StreamResponse:
    bucket = bucket_name(request)
    found = await services(request).namespaces.get(who(request), bucket)
    document = root("VersioningConfiguration")
    status = VERSIONING_STATUS.get(found.versioning)
    if status is not None:  # never switched on: S3 answers an empty configuration
        child(document, "Status", status)
    return xml_response(document)


async def put_versioning(request: web.Request) -> web.StreamResponse:
    bucket = bucket_name(request)
    document = await read_document(body(request), "VersioningConfiguration")
    status = text_of(document, "Status")
    wanted = {"Enabled": "enabled", "Suspended": "suspended"}.get(status or "")
    if wanted is None:
        raise MalformedXML("Status must be Enabled or Suspended")
    if text_of(document, "MfaDelete") not in (None, "Disabled"):
        raise MalformedXML("MFA delete is not supported: MfaDelete may only be Disabled")
    changed = await services(request).namespaces.set_versioning(who(request), bucket, wanted)
    note(request, detail={"versioning": changed.versioning})
    return web.Response(status=200)

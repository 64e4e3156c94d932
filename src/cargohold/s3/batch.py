"""DeleteObjects: up to 1000 keys (or versions) deleted in one call, each by DeleteObject's rules.

Each key is deleted in its own transaction, as a loop of DeleteObject calls
would be, so one key's failure (no write access, a malformed version id)
is that key's ``<Error>`` and the others still go. A key that is not there
counts as deleted, as S3 counts it. The body must carry a Content-MD5 or
an ``x-amz-checksum-*`` that matches it (S3 demands one; the aws-chunked
decoder checks a trailing checksum).
"""

from __future__ import annotations

import base64
import hashlib

from aiohttp import web

from cargohold.api.audit import note
from cargohold.domain.versions import validate_version_id
from cargohold.errors import BadDigest, CargoholdError, InvalidRequest, MalformedXML, NoSuchKey
from cargohold.s3.checksums import checked
from cargohold.s3.context import body, bucket_name, services, who
from cargohold.s3.documents import elements, parse_document, read_bytes, text_of
from cargohold.s3.errors import s3_code
from cargohold.s3.headers import CHECKSUM_PREFIX
from cargohold.s3.xml import child, root, xml_response
from cargohold.service.access import Level

MAX_KEYS = 1000


async def _checked_body(request: web.Request) -> bytes:
    """The delete list, checked against the Content-MD5 or x-amz-checksum-* S3 demands with it."""
    declared = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith(CHECKSUM_PREFIX)}
    content_md5 = request.headers.get("Content-MD5")
    if content_md5 is None and not declared and "x-amz-trailer" not in request.headers:
        raise InvalidRequest("DeleteObjects needs a Content-MD5 or an x-amz-checksum-* header")
    data = await read_bytes(checked(body(request), declared))
    if content_md5 is not None:
        actual = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        if actual != content_md5.strip():
            raise BadDigest("the Content-MD5 you specified did not match what we received")
    return data


async def delete_objects(request: web.Request) -> web.StreamResponse:
    bucket = bucket_name(request)
    # A bucket the caller cannot see fails the whole call, as it would natively; a missing
    # write grant is each key's own AccessDenied.
    await services(request).access.bucket(who(request), bucket, Level.READ)
    data = await _checked_body(request)
    document = parse_document(data, "Delete")
    quiet = (text_of(document, "Quiet") or "false").strip().lower() == "true"
    listed = elements(document, "Object")
    if not listed:
        raise MalformedXML("name at least one Object to delete")
    if len(listed) > MAX_KEYS:
        raise MalformedXML(f"at most {MAX_KEYS} objects may be deleted in one request")
    wanted: list[tuple[str, str | None]] = []
    for item in listed:
        key = text_of(item, "Key")
        if not key:
            raise MalformedXML("every Object needs a Key")
        wanted.append((key, text_of(item, "VersionId")))
    answer = root("DeleteResult")
    objects = services(request).objects
    failed = 0
    for key, version_id in wanted:
        try:
            if version_id is not None:
                validate_version_id(version_id)
            deleted = await objects.delete(who(request), bucket, key, version_id)
        except NoSuchKey:
            if not quiet:
                _deleted(answer, key, version_id)
            continue
        except CargoholdError as error:
            failed += 1
            code, _ = s3_code(error)
            entry = child(answer, "Error")
            child(entry, "Key", key)
            if version_id is not None:
                child(entry, "VersionId", version_id)
            child(entry, "Code", code)
            child(entry, "Message", error.detail)
            continue
        if not quiet:
            entry = _deleted(answer, key, version_id)
            if deleted.delete_marker:
                child(entry, "DeleteMarker", True)
                child(entry, "DeleteMarkerVersionId", deleted.version_id)
    note(request, detail={"keys": len(wanted), "errors": failed, "quiet": quiet})
    return xml_response(answer)


def _deleted(answer, key: str, version_id: str | None):  # type: ignore[no-untyped-def]
    entry = child(answer, "Deleted")
    child(entry, "Key", key)
    if version_id is not None:
        child(entry, "VersionId", version_id)
    return entry

"""What every S3 operation handler needs from its request: services, caller, names, body, numbers."""

from __future__ import annotations

from aiohttp import web

from cargohold.api.auth import principal
from cargohold.api.context import SERVICES, Services
from cargohold.api.inputs import INT32_MAX, INT64_MAX, parse_int
from cargohold.domain.model import Principal
from cargohold.domain.names import validate_bucket
from cargohold.s3 import routing  # a module: routing imports the handlers, which import this
from cargohold.s3.auth import body, decoded_length, payload

__all__ = [
    "REGION",
    "body",
    "bucket_name",
    "decoded_length",
    "max_keys",
    "object_name",
    "payload",
    "query_int",
]

#: The one region this gateway is (what GetBucketLocation and HeadBucket report).
REGION = "us-east-1"


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def who(request: web.Request) -> Principal:
    return principal(request)


def bucket_name(request: web.Request) -> str:
    """The bucket a bucket or object operation names (validated: a bad name is InvalidBucketName)."""
    found = routing.target(request).bucket
    assert found is not None  # the dispatcher sends only bucket and object operations here
    return validate_bucket(found)


def object_name(request: web.Request) -> tuple[str, str]:
    """(bucket, key) of an object operation."""
    key = routing.target(request).key
    assert key is not None
    return bucket_name(request), key


def query_int(value: str, name: str, *, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    """A decimal parameter within bounds, else InvalidArgument naming it."""
    return parse_int(value, name, minimum=minimum, maximum=maximum)


def max_keys(request: web.Request, name: str = "max-keys", default: int = 1000) -> int:
    """A page size: 0..2^31-1 accepted as S3 does, served at most 1000 at a time."""
    value = request.query.get(name)
    return default if value is None else min(1000, query_int(value, name, maximum=INT32_MAX))

"""Shared pieces of the S3 tests: a boto3 client per user, and the S3 error of a refused call."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import httpx
import pytest

from cargohold.testing.cluster import Cluster
from cargohold.testing.s3 import s3_client


def s3_for(cluster: Cluster, api: httpx.Client, user: str | None = None, **config: Any) -> Any:
    """A boto3 client with a fresh S3 key of ``user`` (the admin when None); ``api`` is an admin client."""
    body: dict[str, Any] = {"kind": "s3", "name": f"s3 test key {user or 'admin'}"}
    if user is not None:
        body["user"] = user
    made = api.post("/api/v1/keys", json=body)
    assert made.status_code == 201, made.text
    return s3_client(cluster, made.json()["access_key_id"], made.json()["secret_access_key"], **config)


def refused(call: Any, *args: Any, **kwargs: Any) -> tuple[str, int]:
    """Make a call that must fail; its S3 error code and HTTP status."""
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(*args, **kwargs)
    error = caught.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]

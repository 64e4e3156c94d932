"""S3 clients for tests: boto3 against a running :class:`~cargohold.testing.cluster.Cluster`.

Path-style, ``us-east-1``, no retries (a test must see the first answer, not
the third), and checksums only when an operation requires them, so a test
controls exactly what is sent.
"""

from __future__ import annotations

from typing import Any

import boto3
import httpx
from botocore.config import Config

from cargohold.testing.cluster import Cluster

REGION = "us-east-1"


def s3_config(**overrides: Any) -> Config:
    settings: dict[str, Any] = {
        "region_name": REGION,
        "signature_version": "s3v4",
        "s3": {"addressing_style": "path"},
        "retries": {"max_attempts": 1, "mode": "standard"},
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
    }
    settings.update(overrides)
    return Config(**settings)


def s3_client(cluster: Cluster, access_key: str, secret: str, **config: Any) -> Any:
    """A boto3 S3 client for ``cluster`` signing with the S3 key ``access_key``/``secret``."""
    verify: bool | str = str(cluster.tls.ca) if cluster.tls is not None else True
    return s3_client_at(cluster.url, access_key, secret, verify=verify, **config)


def s3_client_at(url: str, access_key: str, secret: str, verify: bool | str = True, **config: Any) -> Any:
    """The same for a gateway known only by its URL (``cargohold up`` in a test)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        region_name=REGION,
        config=s3_config(**config),
        verify=verify,
    )


def create_s3_key(api: httpx.Client, **fields: Any) -> tuple[str, str]:
    """A new S3 key through the native API (``api`` carries the credentials): (id, secret)."""
    reply = api.post("/api/v1/keys", json={"kind": "s3", **fields})
    reply.raise_for_status()
    made = reply.json()
    return made["access_key_id"], made["secret_access_key"]

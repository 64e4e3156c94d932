"""S3 figures for bench/run.py --s3, each beside the native figure from the same run.

* 1 GiB PUT and GET: native with curl; S3 with the aws cli (``aws s3 cp``:
  8 MiB multipart parts, 10 at once, ranged GETs) and with boto3's single
  ``put_object`` / ``get_object`` (one request each way);
* 1 GiB multipart with boto3's TransferManager, 8 parallel 16 MiB parts;
* 4 KiB PUT and GET ops/s at concurrency 16 signed with SigV4 (botocore's
  signer, one signature and payload sha256 per request, as clients send
  them over plain HTTP), beside
  the native bearer-key figures.
"""

from __future__ import annotations

import asyncio
import functools
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import httpx
import run  # bench/run.py: the native figures' code
from boto3.s3.transfer import TransferConfig
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cargohold.testing.cluster import ADMIN_KEY, Cluster
from cargohold.testing.s3 import REGION, s3_config
from cargohold.testing.s3_clients import S3Clients

MB = 1_000_000
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


@dataclass
class S3Figures:
    runs: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.runs.setdefault(name, []).append(value)

    def median(self, name: str) -> float:
        return statistics.median(self.runs[name])


def _s3_key(url: str) -> tuple[str, str]:
    with httpx.Client(base_url=url, headers=AUTH) as api:
        reply = api.post("/api/v1/keys", json={"kind": "s3"})
        reply.raise_for_status()
        made = reply.json()
        return made["access_key_id"], made["secret_access_key"]


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _curl(args: list[str]) -> None:
    subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", *args], check=True)


def big_transfers(cluster: Cluster, source: Path, workdir: Path, repeat: int) -> S3Figures:
    url, size = cluster.url, source.stat().st_size
    access_key, secret = _s3_key(url)
    figures = S3Figures()
    auth = ["-H", f"Authorization: Bearer {ADMIN_KEY}"]
    _curl(["-X", "PUT", *auth, f"{url}/api/v1/buckets/native"])
    client = boto3.session.Session().client(
        "s3", endpoint_url=url, aws_access_key_id=access_key, aws_secret_access_key=secret,
        region_name=REGION, config=s3_config(),
    )  # fmt: skip
    client.create_bucket(Bucket="s3bench")
    tools = S3Clients(url, access_key, secret, workdir / "client-home")
    out = workdir / "out.bin"
    upload = TransferConfig(multipart_threshold=16 << 20, multipart_chunksize=16 << 20, max_concurrency=8)

    def put_single(key: str) -> None:
        with source.open("rb") as body:
            client.put_object(Bucket="s3bench", Key=key, Body=body)

    def get_single(key: str) -> None:
        for _ in client.get_object(Bucket="s3bench", Key=key)["Body"].iter_chunks(1 << 20):
            pass

    for attempt in range(repeat):
        native = f"{url}/api/v1/buckets/native/objects/big{attempt}"
        cli_key = f"s3://s3bench/cli{attempt}"
        steps: list[tuple[str, Callable[[], object]]] = [
            ("native PUT", functools.partial(_curl, [*auth, "-T", str(source), native])),
            ("native GET", functools.partial(_curl, [*auth, native])),
            (
                "aws s3 cp PUT",
                functools.partial(tools.aws, "s3", "cp", str(source), cli_key),
            ),
            ("aws s3 cp GET", functools.partial(tools.aws, "s3", "cp", cli_key, str(out))),
            ("boto3 put_object", functools.partial(put_single, f"one{attempt}")),
            ("boto3 get_object", functools.partial(get_single, f"one{attempt}")),
            (
                "boto3 multipart 8x16 MiB",
                functools.partial(client.upload_file, str(source), "s3bench", f"mp{attempt}", Config=upload),
            ),
        ]
        for name, step in steps:
            figures.add(name, size / _timed(step) / MB)
        out.unlink()
    return figures


class _Signer:
    """SigV4 for raw aiohttp requests, computed per request like any S3 client does."""

    def __init__(self, access_key: str, secret: str) -> None:
        self._auth = S3SigV4Auth(Credentials(access_key, secret), "s3", REGION)

    def headers(self, method: str, url: str, body: bytes = b"") -> dict[str, str]:
        # Over plain HTTP botocore signs the payload's sha256, as every client does there.
        request = AWSRequest(method=method, url=url, data=body)
        self._auth.add_auth(request)
        return dict(request.headers.items())


async def small_ops(url: str, count: int, concurrency: int) -> dict[str, tuple[float, float, float]]:
    """4 KiB PUT and GET with SigV4, the payload's sha256 signed and checked by the gateway."""
    access_key, secret = _s3_key(url)
    signer = _Signer(access_key, secret)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        made = f"{url}/s3small"
        async with session.put(made, headers=signer.headers("PUT", made)) as reply:
            assert reply.status == 200, await reply.text()
        return {
            method: await run.timed_ops(
                session,
                method,
                count,
                concurrency,
                os.urandom(4096),
                path=lambda i: f"{url}/s3small/o{i}",
                sign=signer.headers,
                created=200,
            )
            for method in ("PUT", "GET")
        }


def bench(workdir: Path, args: Any) -> list[tuple[str, str, str]]:
    """Every S3 figure beside its native one, from one cluster (8 nodes, ec:5+2)."""
    source = workdir / "source.bin"
    with source.open("wb") as f:
        for _ in range(args.size_mib):
            f.write(os.urandom(1024 * 1024))
    with Cluster(workdir / "cluster", gateway_workers=args.workers) as cluster:
        figures = big_transfers(cluster, source, workdir, args.repeat)
        native_ops = asyncio.run(run.small_ops(cluster.url, args.ops, args.concurrency))
        s3_ops = asyncio.run(small_ops(cluster.url, args.ops, args.concurrency))
    mib = args.size_mib
    put, get = figures.median("native PUT"), figures.median("native GET")
    rows = [
        (f"native PUT {mib} MiB (curl)", f"{put:8.0f} MB/s", "1.00 x native PUT"),
        (f"native GET {mib} MiB (curl)", f"{get:8.0f} MB/s", "1.00 x native GET"),
    ]
    for name, versus, label in (
        ("aws s3 cp PUT", put, "native PUT"),
        ("aws s3 cp GET", get, "native GET"),
        ("boto3 put_object", put, "native PUT"),
        ("boto3 get_object", get, "native GET"),
        ("boto3 multipart 8x16 MiB", put, "native PUT"),
    ):
        rate = figures.median(name)
        rows.append((f"{name} {mib} MiB", f"{rate:8.0f} MB/s", f"{rate / versus:.2f} x {label}"))
    for method in ("PUT", "GET"):
        (rate, p50, p99), (s3_rate, s3_p50, s3_p99) = native_ops[method], s3_ops[method]
        rows += [
            (
                f"native 4 KiB {method} x{args.concurrency}",
                f"{rate:8.0f} ops/s",
                f"p50 {p50:.1f}, p99 {p99:.1f} ms",
            ),
            (
                f"S3 4 KiB {method} x{args.concurrency} (SigV4)",
                f"{s3_rate:8.0f} ops/s",
                f"{s3_rate / rate:.2f} x native; p50 {s3_p50:.1f}, p99 {s3_p99:.1f} ms",
            ),
        ]
    runs = "; ".join(f"{name} {[round(r) for r in rates]}" for name, rates in figures.runs.items())
    rows.append(("runs (MB/s)", "", runs))
    return rows

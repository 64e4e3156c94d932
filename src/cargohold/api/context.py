"""Typed keys under which the composition root hands services to handlers."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from cargohold.service.buckets import BucketService
from cargohold.service.nodes import NodeRegistry
from cargohold.service.objects import ObjectService
from cargohold.service.uploads import UploadService


@dataclass(slots=True)
class Services:
    buckets: BucketService
    objects: ObjectService
    nodes: NodeRegistry
    uploads: UploadService


SERVICES = web.AppKey("services", Services)

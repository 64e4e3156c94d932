"""Typed keys under which the composition root hands services to handlers."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from cargohold.service.access import AccessService
from cargohold.service.accounts import AccountService
from cargohold.service.auth import AuthService
from cargohold.service.buckets import BucketService
from cargohold.service.events import EventFeed
from cargohold.service.gateways import GatewayDirectory
from cargohold.service.healing import HealingService
from cargohold.service.history import HistoryService
from cargohold.service.imports import ImportService
from cargohold.service.namespaces import NamespaceService
from cargohold.service.nodes import NodeRegistry
from cargohold.service.objects import ObjectService
from cargohold.service.quota import QuotaService
from cargohold.service.s3keys import S3KeyService
from cargohold.service.sessions import SessionService
from cargohold.service.share_links import ShareLinkService
from cargohold.service.uploads import UploadService
from cargohold.service.webhooks import WebhookService
from cargohold.service.zones import ZoneService


@dataclass(slots=True)
class Services:
    buckets: BucketService
    access: AccessService
    namespaces: NamespaceService
    quota: QuotaService
    auth: AuthService
    accounts: AccountService
    objects: ObjectService
    nodes: NodeRegistry
    uploads: UploadService
    sessions: SessionService
    history: HistoryService
    share_links: ShareLinkService
    healing: HealingService
    s3keys: S3KeyService
    zones: ZoneService
    gateways: GatewayDirectory
    imports: ImportService
    events: EventFeed
    webhooks: WebhookService


SERVICES = web.AppKey("services", Services)

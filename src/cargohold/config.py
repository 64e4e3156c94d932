"""Settings for every role, from flags, ``CARGOHOLD_*`` variables and a TOML file.

Precedence, highest first: command-line flags (passed as init values), the
environment, the TOML file (``--config`` or ``CARGOHOLD_CONFIG``), defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    """Everything a gateway, a node or ``up`` can be told."""

    model_config = SettingsConfigDict(env_prefix="CARGOHOLD_", extra="ignore")

    data_dir: Path = Field(Path(".cargohold"), description="Where `up` keeps the metadata and nodes")
    host: str = Field("127.0.0.1", description="Address the gateway listens on")
    port: int = Field(8080, description="Port the gateway listens on")
    db: str | None = Field(None, description="Metadata store URL (default: SQLite in data_dir)")
    nodes: int = Field(8, ge=1, le=64, description="Storage nodes `up` starts")
    gateways: int = Field(1, ge=1, le=32, description="Gateways `up` runs over the one metadata store")
    layout: str = Field("ec:5+2", description="Default layout: ec:K+M, mirror:R or stripe:K")
    zone: str = Field("default", description="Zone of this gateway (reads prefer it)")
    gateway_workers: int = Field(
        0, ge=0, le=256, description="Gateway processes on the one port (0: one per core)"
    )
    s3_domain: str | None = Field(
        None,
        description="Domain for virtual-hosted S3 (<bucket>.<s3_domain>); path-style works without it",
    )
    cluster_secret: str | None = Field(None, description="Secret nodes require from gateways")
    admin_key: str | None = Field(None, description="Admin API key to create at first start")
    admin_password: str | None = Field(
        None, description="Password of the first admin user (generated and printed once if unset)"
    )
    token_secret: str | None = Field(
        None, description="Key that signs access tokens (default: derived from the cluster secret)"
    )
    access_token_ttl: float = Field(900.0, gt=0, description="Seconds an access token (JWT) is valid")
    refresh_token_ttl: float = Field(
        30 * 24 * 3600.0, gt=0, description="Seconds a refresh token is valid if not rotated"
    )
    ui_idle_timeout: float = Field(
        1800.0,
        gt=0,
        le=30 * 24 * 3600.0,
        description="Seconds a web page sign-in (session cookie) lasts without a request",
    )
    login_max_failures: int = Field(
        5,
        ge=1,
        le=1000,
        description="Wrong passwords for one user from one address before it is blocked "
        "(one user from anywhere, and one address for any user: 4 times as many)",
    )
    auth_cache_seconds: float = Field(
        5.0, ge=0, description="Seconds keys, users and grants are cached (changes on other gateways)"
    )
    inline_threshold: int = Field(
        32 * 1024, ge=0, description="Objects up to this size live in the metadata store"
    )
    max_object_size: int = Field(5 * 1024**4, description="Largest single PUT accepted, in bytes")
    health_interval: float = Field(2.0, gt=0, description="Seconds between node health probes")
    health_timeout: float = Field(5.0, gt=0, description="Seconds a node may take to answer a health probe")
    node_timeout: float = Field(30.0, gt=0, description="Seconds a node may stay silent mid-transfer")
    upload_ttl: float = Field(24 * 3600.0, gt=0, description="Seconds an idle upload session lives")
    sweep_interval: float = Field(60.0, gt=0, description="Seconds between sweeps for expired uploads")
    max_part_size: int = Field(5 * 1024**3, gt=0, description="Largest part of an upload session, in bytes")
    blocks_in_flight: int = Field(4, ge=1, le=64, description="Blocks buffered per transfer")
    append_part_limit: int = Field(
        128 * 1024**2,
        gt=0,
        description="A part grown by tus PATCHes or Content-Range chunks takes no more chunks past this size",
    )
    # -- healing (the worker role) --------------------------------------------
    node_lost_after: float = Field(
        900.0, gt=0, description="Seconds a node may stay down before its shares are rebuilt elsewhere"
    )
    scrub_interval: float = Field(
        7 * 24 * 3600.0, gt=0, description="Seconds between full scrub passes over every share"
    )
    rebalance_threshold: float = Field(
        5.0, ge=0, le=100, description="Fill spread (percentage points) above which shares move"
    )
    orphan_grace: float = Field(
        3600.0,
        ge=0,
        description="Seconds an unreferenced share may live (a write in flight) before removal",
    )
    repair_bandwidth: int = Field(
        128 * 1024 * 1024, ge=0, description="Bytes/s repair may write (0: unlimited); changeable at run time"
    )
    rebalance_bandwidth: int = Field(
        100 * 1024 * 1024, ge=0, description="Bytes/s rebalance and drain may move (0: unlimited)"
    )
    scrub_bandwidth: int = Field(
        50 * 1024 * 1024, ge=0, description="Bytes/s of shares scrub verifies per node (0: unlimited)"
    )
    worker_concurrency: int = Field(4, ge=1, le=256, description="Jobs a worker runs at once")
    worker_poll_interval: float = Field(1.0, gt=0, description="Seconds between looks for new jobs")
    check_interval: float = Field(
        30.0,
        gt=0,
        description="Seconds between checks for lost nodes, fill spread and scrubs due",
    )
    # -- background imports (the worker role) ---------------------------------
    import_part_size: int = Field(
        64 * 1024 * 1024,
        ge=64 * 1024,
        description="Bytes per durable part of an import: a dropped source resumes at a part boundary",
    )
    import_concurrency: int = Field(4, ge=1, le=256, description="Imports one worker runs at once")
    import_connect_timeout: float = Field(
        10.0, gt=0, description="Seconds an import source may take to accept a connection"
    )
    import_read_timeout: float = Field(
        60.0, gt=0, description="Seconds an import source may stay silent before the connection is retried"
    )
    import_retries: int = Field(
        5, ge=0, le=100, description="Reconnections to a source without progress before an import fails"
    )
    import_retry_backoff: float = Field(
        1.0, ge=0, description="Seconds before an import's first reconnection (doubling after each)"
    )
    import_max_size: int = Field(5 * 1024**4, ge=0, description="Largest source an import accepts, in bytes")
    import_lease: float = Field(
        30.0, gt=0, description="Seconds before another worker takes over an import whose worker died"
    )
    # -- events and webhooks ---------------------------------------------------
    event_retention: float = Field(
        7 * 24 * 3600.0, gt=0, description="Seconds events (and webhook attempts) are kept"
    )
    event_poll_interval: float = Field(
        0.05,
        gt=0,
        le=10,
        description="Seconds between a process's looks for events other processes wrote (one query"
        " for all of its streams and deliveries)",
    )
    webhook_concurrency: int = Field(
        32, ge=1, le=1024, description="Webhook subscriptions a worker delivers at once"
    )
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds a webhook receiver may take to answer")
    webhook_backoff_base: float = Field(
        5.0, gt=0, description="Seconds before the first retry of a failed delivery (doubling after)"
    )
    webhook_backoff_max: float = Field(3600.0, gt=0, description="Longest wait between two retries, seconds")
    webhook_disable_after: float = Field(
        24 * 3600.0, gt=0, description="Seconds of failures after which a webhook is disabled"
    )
    # -- connections, fairness and exposure (every role) -----------------------
    header_timeout: float = Field(
        30.0, gt=0, description="Seconds from a request's first byte until its headers must be complete"
    )
    keepalive_timeout: float = Field(
        75.0, gt=0, description="Seconds an idle connection is kept open waiting for its next request"
    )
    body_idle_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a request body (or a response the client stops reading) may stall before the"
        " request is cut",
    )
    body_min_rate: int = Field(
        1024,
        ge=0,
        description="Bytes/s a request body must average over each body_idle_timeout window (0: no minimum)",
    )
    node_body_idle_timeout: float = Field(
        600.0,
        gt=0,
        description="Seconds a node waits for the next byte of a share (gateways send whole blocks)",
    )
    max_requests: int = Field(4096, ge=1, description="Requests a gateway serves at once (503 beyond)")
    max_requests_per_principal: int = Field(
        64, ge=1, description="Requests one user may have in progress on a gateway (429 beyond)"
    )
    max_requests_per_address: int = Field(
        256, ge=1, description="Requests one client address may have in progress on a gateway (429 beyond)"
    )
    max_upload_bytes: int = Field(
        2 * 1024**3, ge=1, description="Upload bytes a gateway holds in flight at once (503 beyond)"
    )
    max_upload_bytes_per_principal: int = Field(
        256 * 1024**2, ge=1, description="Upload bytes one user may have in flight on a gateway (429 beyond)"
    )
    max_upload_bytes_per_address: int = Field(
        512 * 1024**2,
        ge=1,
        description="Upload bytes one client address may have in flight on a gateway (429 beyond)",
    )
    # -- zones, nearest reads and metrics ------------------------------------------
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs of load balancers whose X-Forwarded-For / Forwarded name the client",
    )
    geoip_db: Path | None = Field(
        None, description="MaxMind-format database (GeoLite2/GeoIP2 City) to place clients by coordinates"
    )
    nearest_reads: bool = Field(True, description="Read the shares nearest the client's zone first")
    redirect_to_nearest: bool = Field(
        False, description="Answer GETs from clients of another zone with 307 to a gateway in their zone"
    )
    public_url: str | None = Field(
        None, description="URL other gateways redirect this gateway's zone's clients to (registers it)"
    )
    gateway_heartbeat: float = Field(10.0, gt=0, description="Seconds between a gateway's heartbeats")
    debug: bool = Field(False, description="Debug answers (X-Cargohold-Zone-Bytes on reads)")
    metrics_token: str | None = Field(
        None, description="Bearer token /metrics requires (without it and metrics_allow: no /metrics)"
    )
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Port a worker serves /metrics on (none: no metrics server)"
    )
    metrics_allow: list[str] = Field(
        default_factory=list, description="CIDRs allowed to scrape /metrics without the token"
    )
    log_format: Literal["text", "json"] = Field("text", description="Log lines as text or as JSON objects")
    tls_cert: Path | None = Field(None, description="PEM certificate (chain) this gateway or node serves")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    node_ca_file: Path | None = Field(
        None, description="PEM CA bundle that https:// node certificates must chain to (default: system CAs)"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CARGOHOLD_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def db_url(self) -> str:
        if self.db:
            return self.db
        return f"sqlite+aiosqlite:///{(self.data_dir / 'meta.db').resolve()}"


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Build settings; ``flags`` that are None are treated as "not given"."""
    if config_file is not None:
        os.environ["CARGOHOLD_CONFIG"] = str(config_file)
    return Settings(**{k: v for k, v in flags.items() if v is not None})

"""A cluster spread over zones on separate hosts: nodes and gateways in network namespaces.

One namespace per zone (a "host" of that zone) runs the zone's nodes and
gateways; every gateway reaches every node through the :class:`DelayProxy`
in the root namespace, which adds ``cross_zone_delay`` one way when the
gateway's zone and the node's differ. The test or benchmark talks to the
gateways from the root namespace. The metadata store is a SQLite file all
namespaces share through the filesystem (namespaces separate networks, not
disks).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cargohold.cli.children import node_command
from cargohold.testing.cluster import ADMIN_KEY, ADMIN_PASSWORD, SECRET, _wait_for_line
from cargohold.testing.delay import DelayProxy
from cargohold.testing.netns import Host, Lab

METRICS_TOKEN = "zone-lab-scrape-token"


def lab_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGOHOLD_")}
    env.update(
        CARGOHOLD_CLUSTER_SECRET=SECRET,
        CARGOHOLD_ADMIN_KEY=ADMIN_KEY,
        CARGOHOLD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        CARGOHOLD_HEALTH_INTERVAL="0.5",
        CARGOHOLD_NODE_TIMEOUT="5",
        CARGOHOLD_METRICS_TOKEN=METRICS_TOKEN,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@dataclass
class ZoneLab:
    lab: Lab
    root: Path
    zones: dict[str, tuple[float, float]]
    nodes_per_zone: int = 3
    layout: str = "ec:2+4"
    cross_zone_delay: float = 0.05
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    nodes: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)
    hosts: dict[str, Host] = field(default_factory=dict)
    proxy: DelayProxy | None = None

    @property
    def db(self) -> str:
        return f"sqlite+aiosqlite:///{self.root / 'meta.db'}"

    def start_nodes(self) -> None:
        """Every zone's host and nodes, behind the delay proxy (no gateway yet)."""
        names = list(self.zones)
        delays = {(x, y): self.cross_zone_delay for x in names for y in names if x != y}
        self.proxy = DelayProxy(self.lab.gateway_address, self.lab.zone_of, delays)
        self.hosts = {zone: self.lab.add_host(zone, zone) for zone in names}
        started = []
        for zone, host in self.hosts.items():
            for number in range(self.nodes_per_zone):
                command = [*node_command(self.root / f"{zone}{number}", 0, zone), "--host", host.address]
                process = host.spawn(command, lab_env())
                self.processes.append(process)
                self.nodes.setdefault(zone, []).append(process)
                started.append((host, zone, process))
        for host, zone, process in started:
            port = int(_wait_for_line(process, "listening on", 120).rsplit(":", 1)[1])
            self.proxy.add(host.address, port, zone)
        self._node_ports = list(zip([z for _, z, _ in started], self.proxy.start(), strict=True))

    def gateway(self, zone: str, **env: str) -> str:
        """One more gateway in ``zone``'s host; its URL (reachable from the root namespace)."""
        host = self.hosts[zone]
        command = [sys.executable, "-m", "cargohold", "gateway", "--db", self.db, "--host", host.address]
        # One process each: the zone figures compare gateways and zones, not a gateway's workers.
        command += ["--port", "0", "--zone", zone, "--layout", self.layout, "--workers", "1"]
        process = host.spawn(command, lab_env(**env))
        self.processes.append(process)
        return _wait_for_line(process, "gateway listening on", 120).rsplit(" ", 1)[1]

    def register(self, gateway: str, client_networks: dict[str, list[str]] | None = None) -> None:
        """Register every node (at its proxy address) and describe the zones, through ``gateway``."""
        with httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as api:
            for zone, port in self._node_ports:
                url = f"http://{self.lab.gateway_address}:{port}"
                reply = api.post("/api/v1/nodes", json={"url": url, "zone": zone})
                assert reply.status_code == 201, reply.text
            for zone, (lat, lon) in self.zones.items():
                body = {"latitude": lat, "longitude": lon, "networks": (client_networks or {}).get(zone, [])}
                assert api.put(f"/api/v1/zones/{zone}", json=body).status_code == 200

    def stop_zone(self, zone: str) -> None:
        """Every node of ``zone`` stops: the zone is lost."""
        for process in self.nodes[zone]:
            process.terminate()
        for process in self.nodes[zone]:
            process.wait(15)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.proxy is not None:
            self.proxy.stop()


def zone_bytes(gateway: str, client_zone: str) -> dict[str, float]:
    """``cargohold_zone_read_bytes`` of one gateway for readers in ``client_zone``, by share zone."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(gateway + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    return {
        s.labels["share_zone"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "cargohold_zone_read_bytes_total" and s.labels["client_zone"] == client_zone
    }

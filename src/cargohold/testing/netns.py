"""Hosts in Linux network namespaces, joined by a private bridge that exists only for one test.

Each :class:`Host` is a network namespace with one veth pair into the lab's
bridge and an address ``10.<net>.<zone>.<n>``; the test process stays in the
root namespace as ``10.<net>.0.1``, the bridge's own address, which is where
the :class:`~cargohold.testing.delay.DelayProxy` listens. No route leads
off the machine: the bridge has no uplink and the namespaces no default
route. Everything (namespaces, veths, bridge) is removed by :meth:`Lab.close`.

Needs root (``CAP_NET_ADMIN``) and the ``ip`` tool; :func:`unavailable`
says why a machine cannot run a lab, for a clean skip.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field

from cargohold.cli.children import die_with_parent


def unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if shutil.which("ip") is None:
        return "the `ip` tool (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Host:
    name: str
    namespace: str
    zone: str
    address: str

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def spawn(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.command(argv), stdout=subprocess.PIPE, env=env, preexec_fn=die_with_parent
        )


@dataclass
class Lab:
    """A bridge and the hosts on it; use as a context manager so the network is always removed."""

    tag: str = field(default_factory=lambda: f"{os.getpid() % 1000:03d}{random.randrange(100):02d}")
    net: int = field(default_factory=lambda: random.randrange(100, 250))
    hosts: list[Host] = field(default_factory=list)
    _zones: list[str] = field(default_factory=list)
    _made: bool = False

    @property
    def bridge(self) -> str:
        return f"chbr{self.tag}"

    @property
    def gateway_address(self) -> str:
        """The root namespace's address on the bridge (where the test and the delay proxy are)."""
        return f"10.{self.net}.0.1"

    def open(self) -> Lab:
        _ip("link", "add", self.bridge, "type", "bridge")
        self._made = True
        _ip("addr", "add", f"{self.gateway_address}/16", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def add_host(self, name: str, zone: str) -> Host:
        if zone not in self._zones:
            self._zones.append(zone)
        number = len(self.hosts) + 1
        namespace = f"ch{self.tag}-{name}"
        outside, inside = f"chv{self.tag}{number}a", f"chv{self.tag}{number}b"
        address = f"10.{self.net}.{self._zones.index(zone) + 1}.{number}"
        _ip("netns", "add", namespace)
        host = Host(name, namespace, zone, address)
        self.hosts.append(host)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", namespace)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        _ip("netns", "exec", namespace, "ip", "addr", "add", f"{address}/16", "dev", inside)
        _ip("netns", "exec", namespace, "ip", "link", "set", inside, "up")
        _ip("netns", "exec", namespace, "ip", "link", "set", "lo", "up")
        return host

    def zone_of(self, address: str) -> str:
        """The zone of a lab address (the root namespace is zone ``""``)."""
        for host in self.hosts:
            if host.address == address:
                return host.zone
        return ""

    def close(self) -> None:
        for host in self.hosts:
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True, check=False)
        if self._made:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        self.hosts.clear()

    def __enter__(self) -> Lab:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

"""A real HAProxy in front of several gateways (installed from Debian on first use).

The balancer checks ``/healthz`` every 200 ms and, with ``option redispatch``
and retries, sends a request whose connection a dead gateway refused to a
live one, as a production set-up would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from cargohold.cli.children import die_with_parent
from cargohold.testing import debian

CONFIG = """\
global
    maxconn 256
defaults
    mode http
    timeout connect 2s
    timeout client 5m
    timeout server 5m
    retries 3
    option redispatch
frontend cargohold
    bind 127.0.0.1:{port}
    option forwardfor
    default_backend gateways
backend gateways
    balance roundrobin
    option httpchk GET /healthz
{servers}
"""


def haproxy_binary() -> str:
    return debian.ensure(lambda: shutil.which("haproxy") or _sbin(), "haproxy")


def _sbin() -> str | None:
    path = Path("/usr/sbin/haproxy")
    return str(path) if path.exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HAProxy:
    """``with HAProxy(dir, [gateway URLs]) as url:`` a balancer at ``url`` until the block ends."""

    def __init__(self, workdir: Path, gateways: list[str]) -> None:
        self.workdir, self.gateways = workdir, gateways
        self.process: subprocess.Popen[bytes] | None = None
        self.port = _free_port()

    def __enter__(self) -> str:
        servers = "\n".join(
            f"    server gw{n} {urlsplit(url).netloc} check inter 200ms fall 1 rise 2"
            for n, url in enumerate(self.gateways, 1)
        )
        config = self.workdir / "haproxy.cfg"
        config.write_text(CONFIG.format(port=self.port, servers=servers))
        self.process = subprocess.Popen(
            [haproxy_binary(), "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return f"http://127.0.0.1:{self.port}"
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("haproxy did not listen in time")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

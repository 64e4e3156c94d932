"""TLS end to end: clients to a gateway, and gateway to nodes, verified against a CA."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cargohold.testing.cluster import ADMIN_PASSWORD, Cluster
from cargohold.testing.tls import ThrowawayCA


def test_tls_gateway_and_nodes_round_trip_and_refuse_a_stranger(tmp_path: Path) -> None:
    server = ThrowawayCA(tmp_path / "pki").issue("server")
    with Cluster(tmp_path / "cluster", node_count=3, layout="ec:2+1", tls=server) as cluster:
        assert cluster.url.startswith("https://")
        with cluster.client() as api:
            nodes = api.get("/api/v1/nodes").json()["nodes"]
            assert [(n["url"][:8], n["healthy"]) for n in nodes] == [("https://", True)] * 3
            assert api.put("/api/v1/buckets/tls").status_code == 201
            data = os.urandom(300_000)  # well past the inline threshold: shares go to the nodes
            put = api.put("/api/v1/buckets/tls/objects/blob", content=data)
            assert put.status_code == 201, put.text
            got = api.get("/api/v1/buckets/tls/objects/blob")
            assert got.status_code == 200
            assert got.content == data

            # A node whose certificate another CA signed is not registered.
            stranger = ThrowawayCA(tmp_path / "stranger", "stranger CA").issue("stranger")
            node = cluster.add_node(register=False, tls=stranger)
            refused = api.post("/api/v1/nodes", json={"url": node.url, "zone": "default"})
            assert refused.status_code == 422, refused.text
            problem = refused.json()
            assert problem["code"] == "node_untrusted"
            assert "certificate is not trusted" in problem["detail"]
            assert node.url in problem["detail"]
            assert len(api.get("/api/v1/nodes").json()["nodes"]) == 3

            # Over TLS the web page's cookies are Secure too.
            signed_in = api.post(
                "/api/v1/auth/cookie/login", json={"name": "admin", "password": ADMIN_PASSWORD}
            )
            assert signed_in.status_code == 200, signed_in.text
            cookies = signed_in.headers.get_list("set-cookie")
            assert len(cookies) == 2 and all("; Secure" in c for c in cookies), cookies

        # Least exposure on disk: the store, its WAL and the nodes' data are the owner's alone.
        store = [cluster.root / "meta.db", *cluster.root.glob("meta.db-*")]
        assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in store} == {"0o600"}
        for node in cluster.nodes[:3]:
            assert stat.S_IMODE(node.data.stat().st_mode) == 0o700
            shares = node.share_files()
            assert shares
            assert {stat.S_IMODE(p.stat().st_mode) for p in shares} == {0o600}

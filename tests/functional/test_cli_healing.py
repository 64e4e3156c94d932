"""The healing commands against a real cluster: health, jobs, scrub, worker-settings, drain, lost, rm.

No worker runs beside this module's cluster, so queued jobs stay queued and
can be looked at. The tests run in file order and share one cluster; the
one that marks a node lost comes last.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cargohold.testing.cluster import Cluster
from cargohold.testing.console import ConsoleScript
from cargohold.testing.data import sample

BUCKET = "cli-healing"


@pytest.fixture(scope="module")
def cli(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleScript]:
    run = ConsoleScript(cluster, tmp_path_factory.mktemp("home"))
    with cluster.client() as api:
        assert api.put(f"/api/v1/buckets/{BUCKET}").status_code == 201
        reply = api.put(f"/api/v1/buckets/{BUCKET}/objects/one", content=sample(300_000, seed=41))
        assert reply.status_code == 201, reply.text
    yield run


def _plain(cli: ConsoleScript, *args: str) -> list[list[str]]:
    return [line.split("\t") for line in cli.ok(*args, "--plain").splitlines()]


def _node_rows(cli: ConsoleScript) -> dict[str, list[str]]:
    return {row[0]: row for row in _plain(cli, "nodes")}


def test_health_of_a_whole_cluster(cli: ConsoleScript) -> None:
    figures = dict(_plain(cli, "health"))
    assert figures["objects.total"] == figures["objects.healthy"] == "1"
    assert (figures["objects.degraded"], figures["objects.unreadable"]) == ("0", "0")
    assert (figures["nodes.up"], figures["nodes.down"], figures["nodes.lost"]) == ("8", "0", "0")
    assert figures["repair_waiting_bytes"] == "0"
    table = cli.ok("health")
    assert table.splitlines()[0] == "healthy: every object has all its shares"
    assert "8 up · 0 down · 0 lost · 0 draining · 0 retired" in table


def test_scrub_now_queues_a_job_per_node(cli: ConsoleScript, cluster: Cluster) -> None:
    said = cli.ok("scrub", "--now")
    assert said == "scrub started: 8 job(s) queued (`cargohold jobs --kind scrub` shows progress)\n"
    rows = _plain(cli, "jobs", "--kind", "scrub")
    assert sorted(row[2] for row in rows) == sorted(f"node {node.node_id}" for node in cluster.nodes)
    assert {(row[1], row[3]) for row in rows} == {("scrub_node", "queued")}
    assert _plain(cli, "jobs", "--kind", "scrub", "--state", "done") == []
    table = cli.ok("jobs", "--kind", "scrub_node")
    assert table.count("scrub_node") == 8 and "queued" in table


def test_worker_settings_change_and_show(cli: ConsoleScript) -> None:
    changed = _plain(cli, "worker-settings", "--repair-bandwidth", "50MiB", "--concurrency", "8")
    assert dict(changed)["repair_bandwidth"] == str(50 << 20)
    assert dict(changed)["concurrency"] == "8"
    assert dict(_plain(cli, "worker-settings")) == dict(changed)
    assert "50 MiB/s" in cli.ok("worker-settings")
    refused = cli("worker-settings", "--concurrency", "100000")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: invalid_argument: concurrency must be between 1 and ")


def test_drain_cancel_and_rm_refused_while_shares_remain(cli: ConsoleScript) -> None:
    holder = next(row for row in _node_rows(cli).values() if row[10] != "0")
    node_id = holder[0]
    draining = cli.ok("nodes", "drain", node_id)
    assert f"node {node_id} is draining" in draining
    assert _node_rows(cli)[node_id][4] == "draining"
    drains = _plain(cli, "jobs", "--kind", "drain")
    assert [(row[1], row[2], row[3]) for row in drains] == [("drain_node", f"node {node_id}", "queued")]
    cli.ok("nodes", "drain", node_id, "--cancel")
    assert _node_rows(cli)[node_id][4] == "normal"
    refused = cli("nodes", "rm", node_id)
    assert refused.returncode == 1 and refused.stderr.startswith("error: node_not_empty: ")
    missing = cli("nodes", "rm", "999")
    assert missing.returncode == 1 and missing.stderr.startswith("error: no_such_node: ")


def test_mark_lost_queues_its_rebuild(cli: ConsoleScript) -> None:
    holder = next(row for row in _node_rows(cli).values() if row[10] != "0")
    node_id = holder[0]
    said = cli.ok("nodes", "lost", node_id)
    assert f"node {node_id} is lost: its shares are being rebuilt" in said
    assert _node_rows(cli)[node_id][4] == "lost"
    assert dict(_plain(cli, "health"))["nodes.lost"] == "1"
    lost = [row for row in _plain(cli, "jobs", "--kind", "repair") if row[1] == "lost_node"]
    assert [(row[2], row[3]) for row in lost] == [(f"node {node_id}", "queued")]

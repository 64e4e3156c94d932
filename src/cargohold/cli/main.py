"""The ``cargohold`` command: run roles (up, gateway, node, worker) and act as a client."""

from __future__ import annotations

import typer

from cargohold.cli import (
    accounts,
    client,
    events,
    grants,
    healing,
    history,
    imports,
    jobs,
    nodes,
    run,
    share,
    uploads,
    zones,
)

app = typer.Typer(
    name="cargohold",
    help="A distributed file store: erasure-coded shares over many storage nodes.",
    no_args_is_help=True,
    add_completion=False,
)
run.register(app)
client.register(app)
nodes.register(app)
jobs.register(app)
healing.register(app)
uploads.register(app)
imports.register(app)
history.register(app)
events.register(app)
grants.register(app)
accounts.register(app)
share.register(app)
zones.register(app)

if __name__ == "__main__":  # pragma: no cover
    app()

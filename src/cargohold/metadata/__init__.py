"""The metadata store: schema, migrations, the ``Database`` unit of work, repositories.

Start with :class:`cargohold.metadata.db.Database`; the query functions are in
:mod:`cargohold.metadata.repositories`.
"""

"""Repositories: async functions over an ``AsyncConnection`` that return domain records.

They never open or commit transactions themselves, so any mix of them can run
inside one ``db.write(fn)`` or ``db.transaction()`` and commit together (for
example a ``put_object`` and the ``enqueue`` of the gc job for the parts it
replaced). Expected conflicts come back as domain errors from
``cargohold.errors``, never as database exceptions, and leave the caller's
transaction usable.
"""

from cargohold.metadata.repositories.buckets import (
    count_owned,
    create_bucket,
    delete_bucket,
    get_bucket,
    get_bucket_by_id,
    list_buckets,
    set_versioning,
)
from cargohold.metadata.repositories.grants import (
    GrantRecord,
    delete_grant,
    get_level,
    granted_bucket_ids,
    list_grants,
    owner_names,
    set_grant,
)
from cargohold.metadata.repositories.jobs import (
    backoff_delay,
    claim,
    complete,
    enqueue,
    extend_lease,
    fail,
    job_counts,
)
from cargohold.metadata.repositories.keys import (
    count_keys,
    create_key,
    get_key,
    list_keys,
    revoke_key,
)
from cargohold.metadata.repositories.nodes import (
    add_node,
    get_node,
    get_node_by_url,
    list_nodes,
    update_node,
    update_node_stats,
)
from cargohold.metadata.repositories.objects import (
    Deletion,
    delete_latest,
    delete_object,
    get_object,
    list_objects,
    put_object,
)
from cargohold.metadata.repositories.parts import (
    delete_parts,
    mark_share_missing,
    part_share_locations,
    set_share,
)
from cargohold.metadata.repositories.uploads import (
    add_part,
    create_upload,
    expired_uploads,
    get_upload,
    list_uploads,
    move_part,
    release_parts,
    update_upload,
)
from cargohold.metadata.repositories.users import (
    bytes_owned,
    count_users,
    create_user,
    delete_user,
    get_user,
    get_user_by_name,
    list_users,
    lock_enabled_admins,
    update_user,
)
from cargohold.metadata.repositories.versions import (
    Renamed,
    delete_version,
    list_versions,
    rename_object,
    restore_version,
)

__all__ = [
    "Deletion",
    "GrantRecord",
    "Renamed",
    "add_node",
    "add_part",
    "backoff_delay",
    "bytes_owned",
    "claim",
    "complete",
    "count_keys",
    "count_owned",
    "count_users",
    "create_bucket",
    "create_key",
    "create_upload",
    "create_user",
    "delete_bucket",
    "delete_grant",
    "delete_latest",
    "delete_object",
    "delete_parts",
    "delete_user",
    "delete_version",
    "enqueue",
    "expired_uploads",
    "extend_lease",
    "fail",
    "get_bucket",
    "get_bucket_by_id",
    "get_key",
    "get_level",
    "get_node",
    "get_node_by_url",
    "get_object",
    "get_upload",
    "get_user",
    "get_user_by_name",
    "granted_bucket_ids",
    "job_counts",
    "list_buckets",
    "list_grants",
    "list_keys",
    "list_nodes",
    "list_objects",
    "list_uploads",
    "list_users",
    "list_versions",
    "lock_enabled_admins",
    "mark_share_missing",
    "move_part",
    "owner_names",
    "part_share_locations",
    "put_object",
    "release_parts",
    "rename_object",
    "restore_version",
    "revoke_key",
    "set_grant",
    "set_share",
    "set_versioning",
    "update_node",
    "update_node_stats",
    "update_upload",
    "update_user",
]

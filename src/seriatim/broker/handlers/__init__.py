"""One module per Kafka API. Each opens with the versions it serves and how they differ, and
registers itself on :data:`REGISTRY` with ``@REGISTRY.handles(ApiKey, min, max)``.

ApiVersions and docs/protocol.md are generated from the registry, so what is advertised cannot
drift from what is served. Handlers stay thin: they translate between kio entities and the
broker's state; the logic lives in storage/ and broker/state.py.

A handler is ``async def handle(ctx: RequestContext, request) -> Response``, where the response
is a kio entity, or a list of buffers already encoded (Produce, Fetch), or None when no reply
is owed (Produce with acks=0).
"""

from __future__ import annotations

import importlib

from seriatim.protocol import ApiRegistry

REGISTRY = ApiRegistry()

_MODULES = (
    "api_versions",
    "metadata",
    "produce",
    "fetch",
    "list_offsets",
    "init_producer_id",
    "create_topics",
    "delete_topics",
    "create_partitions",
    "delete_records",
    "describe_configs",
    "incremental_alter_configs",
    "alter_configs",
    "describe_cluster",
    "describe_log_dirs",
    "offset_for_leader_epoch",
    # consumer groups (the coordinator: coordinator/, driven by broker/groups.py)
    "find_coordinator",
    "join_group",
    "sync_group",
    "heartbeat",
    "leave_group",
    "offset_commit",
    "offset_fetch",
    "list_groups",
    "describe_groups",
    "delete_groups",
    "offset_delete",
    # transactions (the coordinator: coordinator/transactions.py, driven by broker/transactions.py)
    "add_partitions_to_txn",
    "add_offsets_to_txn",
    "end_txn",
    "txn_offset_commit",
    "describe_transactions",
    "list_transactions",
    "describe_producers",
)

_loaded = False


def load_all() -> ApiRegistry:
    """Import every handler module once (each registers itself) and return the registry."""
    global _loaded
    if not _loaded:
        for name in _MODULES:
            importlib.import_module(f"{__name__}.{name}")
        _loaded = True
    return REGISTRY

"""seriatim: a durable, Kafka-compatible log.

The embedded API::

    import seriatim
    with seriatim.open("data/events") as log:
        off = log.append(b"value", key=b"k")
        for rec in log.read(from_offset=0):
            print(rec.offset, rec.timestamp_ms, rec.key, rec.value)

Attributes are imported lazily so that ``seriatim serve`` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from seriatim.records import Record
    from seriatim.storage.embedded import Log, open

__all__ = ["Log", "Record", "__version__", "open"]


def __getattr__(name: str) -> Any:
    if name in ("open", "Log"):
        from seriatim.storage import embedded

        return getattr(embedded, name)
    if name == "Record":
        from seriatim.records import Record

        return Record
    raise AttributeError(f"module 'seriatim' has no attribute {name!r}")

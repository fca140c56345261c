"""The API version registry: which versions of which API seriatim serves, and by whom.

Theory of operation
-------------------
The registry is data only. The broker layer registers one handler per API with
``@registry.handles(api_key, min_version, max_version)``; ApiVersions (:meth:`table`) and
``docs/protocol.md`` (:meth:`render_markdown`) are generated from the same entries, so what is
advertised cannot drift from what is served (architecture rule 4).

``advertised_min`` exists for Produce: librdkafka before 2.11.1 only enables compression when
the broker's Produce range contains v0 (notes pitfall 5), yet kio cannot decode v0..v2. So
Produce is advertised from 0 and served from 3; :meth:`lookup` returns ``None`` for the
advertised-but-unserved versions, and the caller answers with a clean error or closes the
connection.

Registration checks that kio has a request schema for every served version, so a registry that
builds is a registry whose versions can all be decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from kio.index import UnknownAPIKey, UnknownEntity, load_request_schema
from kio.schema.index import api_key_map

__all__ = ["API_NAMES", "ApiEntry", "ApiRegistry", "api_name"]

H = TypeVar("H", bound=Callable[..., Any])

# kio's module names are snake_case ("offset_for_leader_epoch"); Kafka's are CamelCase. These
# are the ones a mechanical conversion gets wrong.
API_NAMES: dict[int, str] = {
    2: "ListOffsets",
    22: "InitProducerId",
    23: "OffsetForLeaderEpoch",
}


def api_name(api_key: int) -> str:
    """Kafka's name for an API key, e.g. 3 -> "Metadata"."""
    if api_key in API_NAMES:
        return API_NAMES[api_key]
    snake = api_key_map.get(api_key)
    if snake is None:
        return f"Unknown({api_key})"
    return "".join(part.capitalize() for part in snake.split("_"))


@dataclass(frozen=True, slots=True)
class ApiEntry:
    """One API: served versions ``min_version..max_version``, advertised from ``advertised_min``."""

    api_key: int
    min_version: int
    max_version: int
    advertised_min: int
    handler: Callable[..., Any]

    @property
    def name(self) -> str:
        return api_name(self.api_key)


class ApiRegistry:
    """API key -> handler and versions. Mutated only while the broker is being assembled."""

    def __init__(self) -> None:
        self._entries: dict[int, ApiEntry] = {}

    def handles(
        self,
        api_key: int,
        min_version: int,
        max_version: int,
        *,
        advertised_min: int | None = None,
    ) -> Callable[[H], H]:
        """Decorator: register the decorated callable as the handler of ``api_key``."""

        def register(handler: H) -> H:
            self.register(api_key, min_version, max_version, handler, advertised_min=advertised_min)
            return handler

        return register

    def register(
        self,
        api_key: int,
        min_version: int,
        max_version: int,
        handler: Callable[..., Any],
        *,
        advertised_min: int | None = None,
    ) -> ApiEntry:
        """Register ``handler`` directly (the decorator's body)."""
        if api_key in self._entries:
            raise ValueError(f"API key {api_key} ({api_name(api_key)}) is already registered")
        if not 0 <= min_version <= max_version:
            raise ValueError(f"invalid version range {min_version}..{max_version}")
        adv = min_version if advertised_min is None else advertised_min
        if not 0 <= adv <= min_version:
            raise ValueError(f"advertised_min {adv} must be in 0..{min_version}")
        entry = ApiEntry(api_key, min_version, max_version, adv, handler)
        self._entries[api_key] = entry
        return entry

    def verify(self) -> None:
        """Check that kio can decode every served version (a test calls this).

        Not done at registration: it imports every schema module (~0.2 s), and startup
        imports only what the first requests need.
        """
        for entry in self._entries.values():
            for version in range(entry.min_version, entry.max_version + 1):
                try:
                    load_request_schema(entry.api_key, version)
                except UnknownAPIKey:
                    raise ValueError(f"kio does not know API key {entry.api_key}") from None
                except UnknownEntity:
                    raise ValueError(
                        f"kio cannot decode {api_name(entry.api_key)} v{version}; "
                        "serve a smaller range"
                    ) from None

    def lookup(self, api_key: int, version: int) -> ApiEntry | None:
        """The entry serving (api_key, version) (its ``.handler``), or None when the key is
        unknown or the version is not served (including advertised-only versions)."""
        entry = self._entries.get(api_key)
        if entry is None or not entry.min_version <= version <= entry.max_version:
            return None
        return entry

    def entry(self, api_key: int) -> ApiEntry | None:
        return self._entries.get(api_key)

    def max_version(self, api_key: int) -> int | None:
        entry = self._entries.get(api_key)
        return None if entry is None else entry.max_version

    def table(self) -> list[tuple[int, int, int]]:
        """(api_key, advertised min, max) rows for ApiVersions, sorted by key."""
        return [
            (e.api_key, e.advertised_min, e.max_version)
            for e in sorted(self._entries.values(), key=lambda e: e.api_key)
        ]

    def render_markdown(self) -> str:
        """The API table of docs/protocol.md."""
        lines = [
            "| key | API | advertised | served |",
            "|---:|---|---|---|",
        ]
        for e in sorted(self._entries.values(), key=lambda e: e.api_key):
            advertised = f"{e.advertised_min}..{e.max_version}"
            served = f"{e.min_version}..{e.max_version}"
            if e.advertised_min < e.min_version:
                served += f" (v{e.advertised_min}..{e.min_version - 1} rejected)"
            lines.append(f"| {e.api_key} | {e.name} | {advertised} | {served} |")
        return "\n".join(lines) + "\n"

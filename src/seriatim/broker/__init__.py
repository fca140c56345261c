"""The Kafka broker: request handlers and the state they act on (see docs/architecture.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seriatim.broker.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from seriatim.broker.app import create_app

        return create_app
    raise AttributeError(name)

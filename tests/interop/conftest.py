"""The interop suite: real Kafka clients against a real broker (see interop_support.py).

Every test here is marked ``interop``; ``pytest -m "not interop"`` leaves them out.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/interop/" in item.nodeid.replace("\\", "/") or item.nodeid.startswith(
            "interop/"
        ):
            item.add_marker(pytest.mark.interop)

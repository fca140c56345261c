"""ApiRegistry: served vs advertised ranges, the ApiVersions table, the docs table."""

from __future__ import annotations

from typing import Any

import pytest

from seriatim.protocol import ApiRegistry, api_name


def handler(*_: Any) -> None:
    return None


def test_register_lookup_and_table() -> None:
    reg = ApiRegistry()
    reg.handles(0, 3, 11, advertised_min=0)(handler)
    reg.handles(18, 0, 4)(handler)
    reg.handles(3, 0, 12)(handler)
    assert reg.table() == [(0, 0, 11), (3, 0, 12), (18, 0, 4)]
    entry = reg.lookup(0, 9)
    assert entry is not None and entry.handler is handler
    assert reg.lookup(0, 2) is None  # advertised (pitfall 5) but not decodable
    assert reg.lookup(0, 12) is None
    assert reg.lookup(1, 4) is None
    assert reg.max_version(18) == 4


def test_verify_rejects_versions_kio_cannot_decode() -> None:
    reg = ApiRegistry()
    reg.handles(0, 0, 11)(handler)  # Produce v0..2 cannot be decoded
    with pytest.raises(ValueError, match="cannot decode"):
        reg.verify()
    reg = ApiRegistry()
    reg.handles(4242, 0, 0)(handler)
    with pytest.raises(ValueError, match="does not know"):
        reg.verify()


def test_every_served_version_of_the_broker_decodes() -> None:
    from seriatim.broker.handlers import load_all

    registry = load_all()
    registry.verify()  # raises if a handler claims a version kio cannot decode
    assert len(registry.table()) >= 15


def test_registration_rejects_duplicates_and_bad_ranges() -> None:
    reg = ApiRegistry()
    reg.handles(3, 0, 12)(handler)
    with pytest.raises(ValueError, match="already registered"):
        reg.handles(3, 0, 1)(handler)
    with pytest.raises(ValueError):
        reg.handles(18, 3, 2)(handler)
    with pytest.raises(ValueError):
        reg.handles(19, 2, 7, advertised_min=5)(handler)


def test_render_markdown() -> None:
    reg = ApiRegistry()
    reg.handles(2, 1, 7)(handler)
    reg.handles(0, 3, 11, advertised_min=0)(handler)
    md = reg.render_markdown()
    lines = md.splitlines()
    assert lines[0].startswith("| key | API |")
    assert lines[2] == "| 0 | Produce | 0..11 | 3..11 (v0..2 rejected) |"
    assert lines[3] == "| 2 | ListOffsets | 1..7 | 1..7 |"


def test_api_names() -> None:
    assert api_name(3) == "Metadata"
    assert api_name(18) == "ApiVersions"
    assert api_name(22) == "InitProducerId"
    assert api_name(32) == "DescribeConfigs"

"""The public test toolkit: ManualClock, the in-process broker runner, the pytest fixture."""

from __future__ import annotations

import importlib.util
import socket
import threading
from pathlib import Path

import pytest

import seriatim.testing
from seriatim.clock import Clock
from seriatim.errors import InvalidConfigError
from seriatim.server.app import AppFactory
from seriatim.testing import ManualClock
from seriatim.testing.echo import EchoApp, create_app

pytestmark = pytest.mark.timeout(30)

HAVE_BROKER = importlib.util.find_spec("seriatim.broker.app") is not None


def _server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "seriatim-server"]


def echo_roundtrip(bootstrap: str, payload: bytes = b"12345678") -> bytes:
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(len(payload).to_bytes(4, "big") + payload)
        data = b""
        while len(data) < 4 + len(payload):
            chunk = sock.recv(4096)
            assert chunk
            data += chunk
    return data[4:]


def test_manual_clock_moves_only_when_advanced() -> None:
    clock: Clock = ManualClock(wall_ms=1_000, monotonic_ns=5)
    assert (clock.wall_ms(), clock.monotonic_ns()) == (1_000, 5)
    assert (clock.wall_ms(), clock.monotonic_ns()) == (1_000, 5)
    assert isinstance(clock, ManualClock)
    clock.advance(250)
    assert (clock.wall_ms(), clock.monotonic_ns()) == (1_250, 5 + 250_000_000)
    clock.set_wall_ms(10)  # an NTP step backwards: monotonic time is unaffected
    assert (clock.wall_ms(), clock.monotonic_ns()) == (10, 5 + 250_000_000)
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_broker_runner_starts_restarts_on_the_same_port_and_cleans_up() -> None:
    apps: list[EchoApp] = []

    def factory(config: object) -> EchoApp:
        apps.append(EchoApp())
        return apps[-1]

    with seriatim.testing.broker(app_factory=factory, num_partitions=3) as b:
        assert b.running and b.port != 0
        assert b.bootstrap == f"127.0.0.1:{b.port}"
        assert b.config.num_partitions == 3
        assert b.config.group_initial_rebalance_delay_ms == 0
        data_dir = b.data_dir
        assert b.config.log_dir == str(data_dir) and data_dir.is_dir()
        assert echo_roundtrip(b.bootstrap) == b"12345678"
        port = b.port
        b.restart()
        assert b.port == port and b.data_dir == data_dir
        assert echo_roundtrip(b.bootstrap, b"again!!!") == b"again!!!"
        assert len(apps) == 2 and apps[0].stopped and not apps[1].stopped
        assert b.app is apps[1]
        b.stop()
        assert not b.running and apps[1].stopped
        assert _server_threads() == []
        b.start()  # start after stop works too
        assert echo_roundtrip(b.bootstrap) == b"12345678"
    assert not data_dir.exists()  # the temporary dir it made is gone
    assert _server_threads() == []


def test_broker_runner_keeps_a_given_dir_and_takes_dotted_config(tmp_path: Path) -> None:
    clock = ManualClock()
    with seriatim.testing.broker(
        tmp_path / "d",
        app_factory=lambda c: create_app(c, clock),
        clock=clock,
        config={"log.segment.bytes": 4096, "auto.create.topics.enable": False},
    ) as b:
        assert b.clock is clock
        assert b.config.log_segment_bytes == 4096
        assert b.config.auto_create_topics_enable is False
        assert b.data_dir == tmp_path / "d"
    assert _server_threads() == []


def test_broker_runner_rejects_bad_overrides_before_starting() -> None:
    with pytest.raises(InvalidConfigError, match=r"num\.partitions"):
        seriatim.testing.broker(app_factory=create_app, num_partitions=0)
    assert _server_threads() == []


def test_broker_runner_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERIATIM_NUM_PARTITIONS", "9")
    with seriatim.testing.broker(app_factory=create_app) as b:
        assert b.config.num_partitions == 1


@pytest.fixture
def seriatim_app_factory() -> AppFactory:
    return create_app


@pytest.fixture
def seriatim_broker_config() -> dict[str, object]:
    return {"num.partitions": 2}


def test_pytest_fixture_gives_a_running_broker(
    seriatim_broker: seriatim.testing.InProcessBroker, tmp_path: Path
) -> None:
    assert seriatim_broker.running
    assert seriatim_broker.config.num_partitions == 2
    assert seriatim_broker.data_dir == tmp_path / "seriatim-data"
    assert echo_roundtrip(seriatim_broker.bootstrap) == b"12345678"


@pytest.mark.skipif(not HAVE_BROKER, reason="seriatim.broker.app not written yet")
def test_the_real_broker_answers_api_versions() -> None:
    admin_module = pytest.importorskip("confluent_kafka.admin")
    AdminClient = admin_module.AdminClient

    with seriatim.testing.broker() as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        metadata = admin.list_topics(timeout=10)
        node = b.config.node_id
        assert f"{metadata.brokers[node].host}:{metadata.brokers[node].port}" == b.bootstrap
        cluster_id = metadata.cluster_id
        b.restart()
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        again = admin.list_topics(timeout=10)
        assert list(again.brokers) == [node]
        assert again.cluster_id == cluster_id  # meta.properties survives the restart

"""The malformed-frame corpus against a broker SUBPROCESS (notes/reliability.md section 9, item 2).

Every case of :mod:`malformed_corpus` goes on a fresh connection and must get its expected
outcome (a close, or the listed error code with the connection still usable) within 1 s; after
each case a long-lived connection must still get an ApiVersions answer; the broker must never
exit; and its RSS (VmRSS of the child, not of pytest) must grow by less than 50 MiB over the
whole corpus.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from malformed_corpus import CLOSE, MAX_REQUEST_BYTES, TOPIC, Case, Reply, build_corpus
from robust_support import BrokerProcess, RawConn, create_topic

from seriatim.errors import ErrorCode
from seriatim.records import Compression, build_batch
from seriatim.testing.wire import decode_response

CASE_BUDGET_S = 1.0
RSS_BUDGET_KIB = 50 * 1024


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    root = tmp_path_factory.mktemp("corpus")
    config = {
        "socket.request.max.bytes": MAX_REQUEST_BYTES,
        "auto.create.topics.enable": False,
        "log.flush.policy": "never",
    }
    with BrokerProcess(root / "data", config, log_path=root / "broker.log") as b:
        create_topic(b.bootstrap, TOPIC)
        yield b


def run_case(bootstrap: str, case: Case) -> str:
    """Send the case on a fresh connection; return '' if the outcome matched, else why not."""
    with RawConn(bootstrap, timeout_s=CASE_BUDGET_S + 1) as conn:
        try:
            conn.sock.sendall(case.data)
        except (BrokenPipeError, ConnectionResetError):
            return "" if case.expect == CLOSE else "closed while sending"
        if case.expect == CLOSE:
            got = bytearray()
            try:
                while chunk := conn.sock.recv(65536):
                    got += chunk
            except ConnectionResetError:
                pass
            except TimeoutError:
                return f"still open after {CASE_BUDGET_S + 1} s ({len(got)} bytes received)"
            if got and "after-a-good-frame" not in case.name:
                return f"expected a close without a reply, got {len(got)} bytes"
            return ""
        assert isinstance(case.expect, Reply)
        expect = case.expect
        try:
            frame = conn.recv_frame()
        except (EOFError, ConnectionResetError):
            return "closed instead of replying"
        corr, resp = decode_response(expect.api_key, expect.version, frame)
        if corr != struct.unpack_from(">i", case.data, 8)[0]:
            return f"correlation id {corr}"
        if expect.where == "partition":
            code = int(resp.responses[0].partition_responses[0].error_code)
        else:
            code = int(resp.error_code)
        if code != expect.code:
            return f"error code {code} ({ErrorCode(code).name}), expected {expect.code}"
        if not conn.api_versions_ok():
            return "the connection is unusable after the reply"
        return ""


def test_every_case_gets_its_outcome_and_the_broker_stays_healthy(broker: BrokerProcess) -> None:
    corpus = build_corpus()
    assert len(corpus) >= 200
    with RawConn(broker.bootstrap) as health:
        # Warm up what the corpus exercises (codecs, produce path) before the RSS baseline.
        for codec in Compression:
            body = {
                "acks": -1,
                "timeout_ms": 5000,
                "topic_data": [{"name": TOPIC, "partition_data": [
                    {"index": 0, "records": build_batch([(b"k", b"v" * 100)], compression=codec)}
                ]}],
            }
            resp = health.request(0, 9, body)
            assert int(resp.responses[0].partition_responses[0].error_code) == 0
        before = broker.rss_kib()
        failures: list[str] = []
        slow: list[str] = []
        worst = 0.0
        for case in corpus:
            t0 = time.monotonic()
            why = run_case(broker.bootstrap, case)
            took = time.monotonic() - t0
            worst = max(worst, took)
            if why:
                failures.append(f"{case.name}: {why}")
            if took > CASE_BUDGET_S:
                slow.append(f"{case.name}: {took:.2f} s")
            assert broker.alive(), f"the broker exited during {case.name}"
            t0 = time.monotonic()
            assert health.api_versions_ok(), f"no ApiVersions answer after {case.name}"
            assert time.monotonic() - t0 < CASE_BUDGET_S, f"slow health check after {case.name}"
        after = broker.rss_kib()
    print(f"{len(corpus)} cases; slowest {worst:.3f} s; RSS {before} -> {after} KiB")
    assert failures == [], "\n".join(failures)
    assert slow == [], "\n".join(slow)
    assert after - before < RSS_BUDGET_KIB, f"RSS grew {after - before} KiB"


def test_a_150_mib_frame_header_is_refused_without_allocating(broker: BrokerProcess) -> None:
    before = broker.rss_kib()
    socks = []
    try:
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", broker.port), timeout=2)
            socks.append(s)
            s.sendall(struct.pack(">i", 150 * 1024 * 1024) + b"\x00" * 1000)
        for s in socks:
            try:
                assert s.recv(1) == b""
            except ConnectionResetError:
                pass
    finally:
        for s in socks:
            s.close()
    assert broker.rss_kib() - before < 10 * 1024


def test_a_frame_just_under_the_limit_that_never_completes_costs_what_was_sent(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    """A peer announcing MAX bytes and sending 1 KiB holds ~1 KiB, not MAX (per connection)."""
    before = broker.rss_kib()
    socks = []
    try:
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", broker.port), timeout=2)
            socks.append(s)
            s.sendall(struct.pack(">i", MAX_REQUEST_BYTES) + b"\x00" * 1024)
        with RawConn(broker.bootstrap) as c:
            assert c.api_versions_ok()
        grown = broker.rss_kib() - before
    finally:
        for s in socks:
            s.close()
    assert grown < 10 * 1024, f"50 partial 1 MiB frames grew RSS by {grown} KiB"

"""kcat (Debian 12: kcat 1.7.1, librdkafka 2.0.2) against a real broker.

``make test`` installs kcat with apt when it can; without it these tests skip with a reason.

librdkafka before 2.11.1 enables compression only if Produce is advertised from v0 (notes,
pitfall 5), so the produce test checks the batches *on disk* with our own reader: each run's
batches must carry its codec bits (lz4 also needs FindCoordinator v0 advertised, see
interop_support.check_stored_codecs). It produces 10 runs (5 codecs x acks 1/all, idempotent
with acks=all) of 1000 keyed messages with headers into a 3-partition topic, reads them back
with ``kcat -C -J`` (read_committed, CRC checks on): every message exactly once, offsets
contiguous from 0, per-partition order = send order, keys/values/headers intact, CreateTime
within the produce window; ListOffsets by time (``kcat -Q``); then restarts the broker and
reads the same again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from interop_support import (
    ACKS,
    CODECS,
    DEADLINE_S,
    PARTITIONS,
    check_stored_codecs,
    now_ms,
)

KCAT = shutil.which("kcat")
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        KCAT is None,
        reason="kcat is not installed (`make test` installs it with apt-get when run as root "
        "on Debian/Ubuntu; otherwise `apt-get install kcat`)",
    ),
]

PER_RUN = 1000


def kcat(*args: str, stdin: bytes | None = None) -> str:
    assert KCAT is not None
    proc = subprocess.run(
        [KCAT, *args],
        input=stdin,
        capture_output=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert proc.returncode == 0, (
        f"kcat {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}"
    )
    return proc.stdout.decode()


def create_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(timeout=DEADLINE_S)


def run_lines(tag: str) -> list[tuple[str, str]]:
    """(key, value) pairs; printable ASCII without tab or newline (kcat's delimiters)."""
    return [
        (f"{tag}-{i:05d}", f"value {i} " + "abcdefghij" * (i % 40) + f" end {tag}")
        for i in range(PER_RUN)
    ]


def consume_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    out = kcat(
        "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-J",
        "-X", "check.crcs=true", "-X", "isolation.level=read_committed",
    )
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def check(
    records: list[dict[str, Any]],
    sent: list[tuple[str, str, tuple[tuple[str, str], ...]]],
    window: tuple[int, int],
) -> None:
    by_p: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_p[r["partition"]].append(r)
    assert sorted(by_p) == list(range(PARTITIONS)), sorted(by_p)
    assert len(records) == len(sent), f"read {len(records)} of {len(sent)} messages"
    order = {key: i for i, (key, _, _) in enumerate(sent)}
    expected = {key: (value, headers) for key, value, headers in sent}
    for p, recs in by_p.items():
        assert [r["offset"] for r in recs] == list(range(len(recs))), f"partition {p} offsets"
        positions = [order[r["key"]] for r in recs]
        assert positions == sorted(positions), f"partition {p} is not in send order"
    assert {r["key"] for r in records} == set(expected), "lost or duplicated keys"
    lo, hi = window
    for r in records:
        value, headers = expected[r["key"]]
        assert r["payload"] == value, r
        got_headers = tuple(zip(r["headers"][::2], r["headers"][1::2], strict=True))
        assert got_headers == headers, r
        assert r["tstype"] == "create", r
        assert lo <= r["ts"] <= hi, (r["ts"], window)


def query_offset(bootstrap: str, topic: str, partition: int, ts: int) -> int:
    out = kcat("-Q", "-b", bootstrap, "-t", f"{topic}:{partition}:{ts}")
    # "<topic> [<partition>] offset <n>"
    line = next(ln for ln in out.splitlines() if f"[{partition}]" in ln)
    return int(line.rsplit("offset", 1)[1].strip())


def test_kcat_produce_every_codec_consume_restart(tmp_path: Path) -> None:
    import seriatim.testing

    topic = "interop-kcat"
    with seriatim.testing.broker(tmp_path / "data") as broker:
        bs = broker.bootstrap
        create_topic(bs, topic)
        sent: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []
        before = now_ms()
        for codec in CODECS:
            for acks in ACKS:
                tag = f"kcat-{codec}-{acks}"
                headers = (("client", "kcat"), ("run", tag), ("empty", ""))
                lines = run_lines(tag)
                args = ["-P", "-b", bs, "-t", topic, "-K", "\t", "-z", codec]
                args += ["-X", f"acks={'all' if acks == -1 else acks}"]
                args += ["-X", f"enable.idempotence={'true' if acks == -1 else 'false'}"]
                args += ["-X", "linger.ms=5"]
                for name, value in headers:
                    args += ["-H", f"{name}={value}"]
                kcat(*args, stdin="".join(f"{k}\t{v}\n" for k, v in lines).encode())
                sent += [(k, v, headers) for k, v in lines]
        after = now_ms()

        # Compression reached the disk (pitfall 5), read with our own reader.
        check_stored_codecs(broker.data_dir, topic)

        first = consume_all(bs, topic)
        check(first, sent, (before, after))

        counts = defaultdict(int)
        for r in first:
            counts[r["partition"]] += 1
        for p in range(PARTITIONS):
            assert query_offset(bs, topic, p, before - 60_000) == 0
            assert query_offset(bs, topic, p, after + 60_000) == -1  # none: OFFSET_END
            stamps = sorted((r["ts"], r["offset"]) for r in first if r["partition"] == p)
            mid_ts = stamps[len(stamps) // 2][0]
            want = min(o for ts, o in stamps if ts >= mid_ts)
            assert query_offset(bs, topic, p, mid_ts) == want

        broker.restart()
        again = consume_all(bs, topic)
        assert again == first, "a restart changed what is read"

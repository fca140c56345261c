"""``seriatim produce`` and ``consume`` against the in-process broker: text and JSON, the
byte-identical JSON round trip, time travel, --key partition selection, positions, groups."""

from __future__ import annotations

import base64
import importlib.util
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import seriatim.testing
from seriatim.cli.codec import partition_for_key
from seriatim.cli.main import cli
from seriatim.testing import InProcessBroker

pytestmark = pytest.mark.timeout(60)

HAVE_GROUPS = all(
    importlib.util.find_spec(f"seriatim.broker.handlers.{m}") is not None
    for m in ("find_coordinator", "join_group", "sync_group", "offset_commit", "offset_fetch")
)


@pytest.fixture(scope="module")
def broker() -> Iterator[InProcessBroker]:
    with seriatim.testing.broker() as b:
        yield b


def run(broker: InProcessBroker, *args: str, code: int = 0,
        input: bytes | str | None = None) -> Result:
    result = CliRunner().invoke(cli, [*args, "-b", broker.bootstrap], input=input)
    assert result.exit_code == code, (result.output, result.exception)
    return result


def new_topic(broker: InProcessBroker, partitions: int = 3) -> str:
    topic = f"t-{uuid.uuid4().hex[:8]}"
    run(broker, "topic", "create", topic, "-p", str(partitions))
    return topic


def records(result: Result) -> list[dict[str, Any]]:
    return sorted((json.loads(line) for line in result.stdout_bytes.splitlines()),
                  key=lambda r: (r["partition"], r["offset"]))


def test_text_produce_and_kcat_fmt(broker: InProcessBroker) -> None:
    topic = new_topic(broker, 1)
    out = run(broker, "produce", topic, "-K", ":", "-H", "src=cli", "-H", "n",
              input=b"k1:v1\nk2:v:2\nnokey\n\n")
    assert f"produced 4 records to {topic}" in out.stderr
    fmt = run(broker, "consume", topic, "-e", "--fmt", r"%t %p %o %k=%s (%S) %h\n")
    assert fmt.stdout_bytes == (
        f"{topic} 0 0 k1=v1 (2) src=cli,n=\n{topic} 0 1 k2=v:2 (3) src=cli,n=\n"
        f"{topic} 0 2 =nokey (5) src=cli,n=\n{topic} 0 3 = (0) src=cli,n=\n").encode()
    plain = run(broker, "consume", topic, "-e", "-c", "2")
    assert plain.stdout_bytes == b"v1\nv:2\n"
    tabbed = run(broker, "consume", topic, "-e", "-f", r"%o\t%T")
    lines = tabbed.stdout_bytes.decode().splitlines()
    assert len(lines) == 4 and lines[0].startswith("0\t")
    assert abs(int(lines[0].split("\t")[1]) - time.time() * 1000) < 60_000
    # -Z: an empty line becomes a null value (a tombstone); -k: one key for all.
    run(broker, "produce", topic, "-Z", "-k", "same", input=b"\n")
    last = records(run(broker, "consume", topic, "-o", "-1", "-e", "--format", "json"))
    assert last[0]["key"] == "same" and last[0]["value"] is None


def test_produce_from_file_with_options(broker: InProcessBroker, tmp_path: Path) -> None:
    topic = new_topic(broker, 2)
    path = tmp_path / "lines.txt"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(500)))
    out = run(broker, "produce", topic, "-f", str(path), "-p", "1", "-z", "gzip",
              "--acks", "1", "--progress")
    assert "produced 500 records" in out.stderr
    got = records(run(broker, "consume", topic, "-e", "--format", "json"))
    assert [r["value"] for r in got] == [f"line {i}" for i in range(500)]
    assert {r["partition"] for r in got} == {1}
    bad = run(broker, "produce", topic, "-p", "7", input=b"x\n", code=1)
    assert "partition 7 does not exist" in bad.output
    run(broker, "produce", topic, "-f", str(tmp_path / "missing"), code=2)


def test_json_round_trip_is_byte_identical(broker: InProcessBroker) -> None:
    src, dst = new_topic(broker, 3), new_topic(broker, 3)
    values: list[bytes | None] = [b"\xff\xfe\x00\x01binary", "ünïcödé".encode(), b"",
                                  None, b"\xed\xa0\x80", b"tab\there\nnewline", bytes(range(256))]
    lines = []
    for i, value in enumerate(values):
        obj: dict[str, object] = {
            "key": base64.b64encode(b"\x80key%d" % i).decode(), "key_encoding": "base64",
            "partition": i % 3, "timestamp": 1_700_000_000_000 + i,
            "headers": [{"key": "bin", "value": base64.b64encode(b"\x00\xff").decode(),
                         "encoding": "base64"},
                        {"key": "text", "value": f"t{i}"}, {"key": "null", "value": None},
                        {"key": "text", "value": "duplicate"}],
        }
        if value is None:
            obj["value"] = None
        else:
            obj["value"] = base64.b64encode(value).decode()
            obj["value_encoding"] = "base64"
        lines.append(json.dumps(obj))
    run(broker, "produce", src, "--format", "json", input="\n".join(lines) + "\n")

    first = run(broker, "consume", src, "--format", "json", "-e")
    run(broker, "produce", dst, "--format", "json", input=first.stdout_bytes)
    second = run(broker, "consume", dst, "--format", "json", "-e")

    a, b = records(first), records(second)
    assert len(a) == len(values)
    for r in b:
        assert r.pop("topic") == dst
    for r in a:
        assert r.pop("topic") == src
    assert a == b  # keys, values, headers, timestamps, partitions, offsets
    # and the bytes are the ones produced in the first place
    by_ts = {r["timestamp"]: r for r in a}
    for i, value in enumerate(values):
        r = by_ts[1_700_000_000_000 + i]
        raw = r["value"]
        if value is None:
            assert raw is None
        elif r.get("value_encoding") == "base64":
            assert base64.b64decode(str(raw)) == value
        else:
            assert str(raw).encode() == value
        assert r["headers"][0] == {"key": "bin", "value": "AP8=", "encoding": "base64"}
        assert r["headers"][2] == {"key": "null", "value": None}
        assert r["partition"] == i % 3
    # --repartition ignores the recorded partitions (a one-partition topic)
    one = new_topic(broker, 1)
    run(broker, "produce", one, "--format", "json", "--repartition", input=first.stdout_bytes)
    assert len(records(run(broker, "consume", one, "--format", "json", "-e"))) == len(values)
    # without it, a partition the topic lacks stops the input there, deterministically
    stop = new_topic(broker, 1)
    lines = [json.dumps({"value": str(p), "partition": p}) for p in (0, 0, 1, 0)]
    failed = run(broker, "produce", stop, "--format", "json", input="\n".join(lines), code=1)
    assert "line 3: partition 1 does not exist" in failed.output
    assert "the 2 records before it were produced" in failed.output
    assert run(broker, "consume", stop, "-e").stdout_bytes == b"0\n0\n"


def test_time_travel(broker: InProcessBroker) -> None:
    topic = new_topic(broker, 2)
    now = int(time.time() * 1000)
    ages_min = [180, 120, 30, 5]  # minutes ago
    lines = [json.dumps({"value": f"{age}m", "timestamp": now - age * 60_000,
                         "partition": i % 2}) for i, age in enumerate(ages_min)]
    run(broker, "produce", topic, "--format", "json", input="\n".join(lines))

    def values(*args: str) -> list[str]:
        got = records(run(broker, "consume", topic, "-e", "--format", "json", *args))
        return sorted((str(r["value"]) for r in got), key=lambda v: -int(v[:-1]))

    assert values("--from", "-1h") == ["30m", "5m"]
    assert values("--from=-150m") == ["120m", "30m", "5m"]
    assert values("--from", "-1d") == ["180m", "120m", "30m", "5m"]
    assert values("-o", "-10m") == ["5m"]
    assert values("--from", "-1m") == []
    assert values("--from", f"@{now - 60 * 60_000}") == ["30m", "5m"]
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now - 150 * 60_000) / 1000))
    assert values("--from", f"@{iso}") == ["120m", "30m", "5m"]
    # other positions
    assert values("--from", "end") == []
    assert values("--from", "-1") == ["30m", "5m"]  # the last record of each partition
    assert values("--from", "1", "-p", "0") == ["30m"]
    past = run(broker, "consume", topic, "--from", "99", "-p", "1", code=1)
    assert "past the end" in past.output


def test_key_reads_the_partition_produce_used(broker: InProcessBroker) -> None:
    topic = new_topic(broker, 4)
    keys = [f"user-{i}" for i in range(24)]
    run(broker, "produce", topic, "-K", "\t",
        input="".join(f"{k}\tv{n}-{k}\n" for n in range(2) for k in keys))
    placed = {str(r["key"]): r["partition"]
              for r in records(run(broker, "consume", topic, "-e", "--format", "json"))}
    assert len(set(placed.values())) > 1  # the keys really spread
    for key in keys[:6]:
        assert placed[key] == partition_for_key(key.encode(), 4)
        got = records(run(broker, "consume", topic, "--key", key, "-e", "--format", "json"))
        assert [(r["key"], r["value"], r["partition"]) for r in got] == \
            [(key, f"v{n}-{key}", placed[key]) for n in range(2)]
    # murmur2 on both sides agrees too
    run(broker, "produce", topic, "-K", ":", "-X", "partitioner=murmur2_random",
        input=b"java-key:m\n")
    got = records(run(broker, "consume", topic, "--key", "java-key", "-e", "--format", "json",
                      "-X", "partitioner=murmur2_random"))
    assert [r["value"] for r in got] == ["m"]
    assert got[0]["partition"] == partition_for_key(b"java-key", 4, "murmur2_random")
    run(broker, "consume", topic, "--key", "", "-e", code=1)  # empty keys go anywhere


def test_count_partition_and_usage_errors(broker: InProcessBroker) -> None:
    topic = new_topic(broker, 2)
    run(broker, "produce", topic, "-p", "0", input=b"a\nb\nc\n")
    run(broker, "produce", topic, "-p", "1", input=b"d\n")
    assert run(broker, "consume", topic, "-c", "2", "-p", "0").stdout_bytes == b"a\nb\n"
    assert run(broker, "consume", topic, "-e", "-p", "1").stdout_bytes == b"d\n"
    started = time.monotonic()
    assert run(broker, "consume", topic, "-c", "4").stdout_bytes.count(b"\n") == 4
    assert time.monotonic() - started < 10
    run(broker, "consume", topic, "-p", "5", "-e", code=1)
    run(broker, "consume", topic, "--from", "bogus", code=2)
    run(broker, "consume", topic, "--from", "stored", code=2)
    run(broker, "consume", topic, "-g", "g", "-p", "0", code=2)
    run(broker, "consume", topic, "--fmt", "%s", "--format", "json", code=2)
    run(broker, "consume", topic, "--fmt", "%q", code=2)
    missing = run(broker, "consume", "no-such-topic", "-e", code=1)
    assert "unknown topic 'no-such-topic'" in missing.output
    bad_json = run(broker, "produce", topic, "--format", "json", input=b'{"value": "x"}\nnope\n',
                   code=1)
    assert "line 2" in bad_json.output


@pytest.mark.skipif(not HAVE_GROUPS, reason="the broker does not serve consumer groups yet")
def test_group_consume_commits_what_it_printed(broker: InProcessBroker) -> None:
    topic = new_topic(broker, 2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    run(broker, "produce", topic, "-p", "0", input=b"a\nb\nc\n")
    first = run(broker, "consume", topic, "-g", group, "-c", "2")
    assert first.stdout_bytes.count(b"\n") == 2
    rest = run(broker, "consume", topic, "-g", group, "-e")
    assert rest.stdout_bytes.count(b"\n") == 1
    again = run(broker, "consume", topic, "-g", group, "--from", "beginning", "-e")
    assert again.stdout_bytes.count(b"\n") == 3


def test_a_tail_survives_a_broker_restart_and_stops_on_ctrl_c(
        seriatim_broker: InProcessBroker) -> None:
    b = seriatim_broker
    topic = new_topic(b, 1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "seriatim.cli.main", "consume", topic, "-o", "end", "-b",
         b.bootstrap], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # assigned and polling
        b.stop()
        time.sleep(1.0)
        b.start()
        run(b, "produce", topic, input=b"after restart\n")
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"after restart\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
    assert b"warning: " in err and b"Connection refused" in err

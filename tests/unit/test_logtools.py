"""``seriatim log dump`` and ``seriatim log verify`` through click's CliRunner."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import seriatim
from seriatim.cli.main import cli


def make(path: Path) -> None:
    with seriatim.open(path, flush_policy="never", segment_bytes=500,
                       config={"index.interval.bytes": "50"}) as log:
        log.append(b"hello", key=b"k1", headers=[("h", b"v")])
        for i in range(20):
            log.append_many([(b"k", b"value-%d" % i), (None, None)])


def test_dump_prints_batches_and_records(tmp_path: Path) -> None:
    make(tmp_path / "p")
    result = CliRunner().invoke(cli, ["log", "dump", "--records", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert "baseOffset: 0 lastOffset: 0 count: 1" in result.output
    assert "isValid: true" in result.output and "compresscodec: none" in result.output
    assert "| offset: 0" in result.output and "key: k1 payload: hello" in result.output
    assert "headers: [h=v]" in result.output and "payload: null" in result.output
    index = sorted((tmp_path / "p").glob("*.index"))[0]
    result = CliRunner().invoke(cli, ["log", "dump", str(index)])
    assert result.exit_code == 0 and "offset:" in result.output


def test_verify_exits_0_when_clean_and_1_naming_file_and_position_on_damage(
        tmp_path: Path) -> None:
    make(tmp_path / "p")
    ok = CliRunner().invoke(cli, ["log", "verify", str(tmp_path / "p")])
    assert ok.exit_code == 0, ok.output
    assert "OK:" in ok.output
    seg = sorted((tmp_path / "p").glob("*.log"))[1]
    data = bytearray(seg.read_bytes())
    data[70] ^= 4
    seg.write_bytes(bytes(data))
    bad = CliRunner().invoke(cli, ["log", "verify", str(tmp_path / "p")])
    assert bad.exit_code == 1
    assert str(seg) in bad.output and "byte 0" in bad.output and "CRC" in bad.output


def test_verify_catches_an_index_entry_pointing_at_the_wrong_place(tmp_path: Path) -> None:
    make(tmp_path / "p")
    index = sorted((tmp_path / "p").glob("*.index"))[0]
    data = bytearray(index.read_bytes())
    assert len(data) >= 8
    data[7] ^= 1
    index.write_bytes(bytes(data))
    bad = CliRunner().invoke(cli, ["log", "verify", str(index.with_suffix(".log"))])
    assert bad.exit_code == 1 and str(index) in bad.output

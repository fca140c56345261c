"""The embedded durable log (``seriatim.open``) against what a Python user would write instead.

Every seriatim figure sits beside two baselines measured in the same run, on the same disk:

* **raw write**: ``f.write`` (a buffered ``open(path, "wb")``) of the very bytes seriatim
  writes, i.e. the encoded v2 record batches, one ``write`` per seriatim call;
* **sqlite3**: ``executemany`` into a WAL-mode table ``log(offset INTEGER PRIMARY KEY, key
  BLOB, value BLOB)`` (sqlite assigns the offset as the rowid), one transaction per seriatim call
  (per 1 000 records for the single-record case, see the notes).

Durability modes, the same for all three systems:

* ``never``: nothing is fsynced while timing (seriatim ``flush.policy=never``; sqlite
  ``synchronous=OFF``; raw: ``f.flush()`` at the end only);
* ``group commit``: one fdatasync per 1 000 records, or per batch when a batch is larger
  (seriatim ``flush.policy=interval`` + ``flush.messages=1000``; sqlite ``synchronous=FULL``,
  whose WAL commit fsyncs; raw: ``f.flush(); os.fdatasync()``).

Records are 100-byte values with an 8-byte key. Each run writes into a fresh directory; opening
and closing are outside the timed region.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    Measurement,
    Row,
    Settings,
    Suite,
    scratch_dir,
    skipped,
    target,
)
from bench.common import (
    measure as _measure,
)

VALUE_BYTES = 100
KEY_BYTES = 8
GROUP = 1000  # records per append_many call, and per fsync in group-commit mode
MIB = 1 << 20
MODES = ("never", "group")
MODE_TITLE = {
    "never": "fsync never",
    "group": "group commit (fsync per 1 000 records or per batch)",
}

Records = list[tuple[bytes, bytes]]


def _records(n: int) -> Records:
    value = bytes(range(VALUE_BYTES)) if VALUE_BYTES <= 256 else b"v" * VALUE_BYTES
    return [(b"key-%04d" % (i % 10000), value) for i in range(n)]


def _seriatim() -> tuple[Any, str]:
    """(seriatim module, "") or (None, why it is unusable)."""
    try:
        import seriatim
        from seriatim.records import build_batch  # noqa: F401

        if not callable(getattr(seriatim, "open", None)):
            return None, "seriatim.open is not available yet"
        return seriatim, ""
    except Exception as exc:  # any import failure means "not ready"
        return None, f"seriatim is not importable ({type(exc).__name__}: {exc})"


def _encode(records: Records) -> bytes:
    """The bytes seriatim writes for these records (a v2 record batch)."""
    from seriatim.records import build_batch

    return build_batch(records, timestamp_ms=int(time.time() * 1000))


def _encode_fallback(records: Records) -> bytes:
    """Length-prefixed key/value, used only when seriatim's encoder is missing."""
    return b"".join(struct.pack(">ii", len(k), len(v)) + k + v for k, v in records)


# --- one timed run per system -----------------------------------------------------------------


def _open_seriatim(mod: Any, path: Path, mode: str) -> Any:
    cfg = {"max.message.bytes": str(4 * MIB)}
    if mode == "never":
        cfg["flush.policy"] = "never"
    else:
        cfg.update({"flush.policy": "interval", "flush.messages": str(GROUP)})
    return mod.open(path, config=cfg)


def _seriatim_run(mod: Any, mode: str, body: Callable[[Any], int]) -> tuple[float, float]:
    with scratch_dir("log") as d:
        log = _open_seriatim(mod, d / "log", mode)
        try:
            t0 = time.perf_counter()
            n = body(log)
            dt = time.perf_counter() - t0
        finally:
            log.close()
    return n, dt


def _raw_run(mode: str, chunks: list[bytes], repeat: int, per_sync: int,
             items_per_chunk: int) -> tuple[float, float]:
    """Write ``chunks`` ``repeat`` times; in group mode fdatasync every ``per_sync`` writes."""
    with scratch_dir("raw") as d, open(d / "data.bin", "wb") as f:
        write, fileno = f.write, f.fileno()
        sync = mode == "group"
        t0 = time.perf_counter()
        i = 0
        for _ in range(repeat):
            for c in chunks:
                write(c)
                i += 1
                if sync and i % per_sync == 0:
                    f.flush()
                    os.fdatasync(fileno)
        f.flush()
        dt = time.perf_counter() - t0
    return repeat * len(chunks) * items_per_chunk, dt


def _sqlite_connect(path: Path, mode: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'OFF' if mode == 'never' else 'FULL'}")
    conn.execute("CREATE TABLE log (offset INTEGER PRIMARY KEY, key BLOB, value BLOB)")
    conn.commit()
    return conn


def _sqlite_many_run(mode: str, batch: Records, batches: int) -> tuple[float, float]:
    with scratch_dir("sqlite") as d:
        conn = _sqlite_connect(d / "log.db", mode)
        try:
            sql = "INSERT INTO log (key, value) VALUES (?, ?)"
            t0 = time.perf_counter()
            for _ in range(batches):
                conn.executemany(sql, batch)
                conn.commit()
            dt = time.perf_counter() - t0
        finally:
            conn.close()
    return batches * len(batch), dt


def _sqlite_one_run(mode: str, records: Records) -> tuple[float, float]:
    with scratch_dir("sqlite") as d:
        conn = _sqlite_connect(d / "log.db", mode)
        try:
            execute, commit = conn.execute, conn.commit
            sql = "INSERT INTO log (key, value) VALUES (?, ?)"
            t0 = time.perf_counter()
            for i, (k, v) in enumerate(records, 1):
                execute(sql, (k, v))
                if i % GROUP == 0:
                    commit()
            commit()
            dt = time.perf_counter() - t0
        finally:
            conn.close()
    return len(records), dt


# --- the suite ----------------------------------------------------------------------------------


def run(settings: Settings) -> Suite:
    mod, why = _seriatim()
    suite = Suite("log", "Embedded log (`seriatim.open`) vs raw write and sqlite3",
                  "python -m bench log" + (" --quick" if settings.quick else ""))
    encode = _encode if mod is not None else _encode_fallback

    def measure(label: str, unit: str, case: Any, **kw: Any) -> Measurement:
        return _measure(label, unit, case, settings, **kw)

    n_many = settings.scale(1_000_000, 200_000)
    n_one = settings.scale(200_000, 50_000)
    mib_total = settings.scale(128, 32)
    mib_sqlite = settings.scale(32, 8)
    n_read = settings.scale(1_000_000, 200_000)

    batch = _records(GROUP)
    batch_bytes = encode(batch)
    singles = _records(n_one)
    single_bytes = [encode([r]) for r in _records(GROUP)]
    # 1 MiB batches: as many 100-byte records as fit in 1 MiB once encoded.
    per_mib = MIB // (len(batch_bytes) // GROUP + 1)
    while len(encode(_records(per_mib))) > MIB:
        per_mib -= 16
    big = _records(per_mib)
    big_bytes = encode(big)
    big_mib = len(big_bytes) / MIB

    by_mode: dict[str, dict[str, Row]] = {}
    for mode in MODES:
        print(f"  [{MODE_TITLE[mode]}]", flush=True)
        rows: dict[str, Row] = {}

        # append_many, 1 000 records per call
        batches = n_many // GROUP
        if mod is not None:
            def body_many(log: Any, b: int = batches) -> int:
                append_many = log.append_many
                for _ in range(b):
                    append_many(batch)
                return b * GROUP
            s = measure("seriatim append_many(1000)", "records/s",
                        lambda m=mode, f=body_many: _seriatim_run(mod, m, f))
        else:
            s = skipped("seriatim append_many(1000)", "records/s", why)
        raw = measure("raw f.write of the same batches", "records/s",
                      lambda m=mode, b=batches: _raw_run(m, [batch_bytes], b, 1, GROUP))
        sql = measure("sqlite3 executemany(1000) + commit", "records/s",
                      lambda m=mode, b=batches: _sqlite_many_run(m, batch, b))
        rows["many"] = Row(f"100-byte records, append_many of 1 000 - {MODE_TITLE[mode]}",
                           s, [raw, sql])

        # append, one record per call
        if mod is not None:
            def body_one(log: Any) -> int:
                append = log.append
                for k, v in singles:
                    append(v, key=k)
                return len(singles)
            s = measure("seriatim append()", "records/s",
                        lambda m=mode, f=body_one: _seriatim_run(mod, m, f))
        else:
            s = skipped("seriatim append()", "records/s", why)
        reps = n_one // GROUP
        raw = measure("raw f.write per record (same bytes)", "records/s",
                      lambda m=mode, r=reps: _raw_run(m, single_bytes, r, GROUP, 1))
        sql = measure("sqlite3 execute per record, commit per 1 000", "records/s",
                      lambda m=mode: _sqlite_one_run(m, singles))
        rows["one"] = Row(f"100-byte records, append one at a time - {MODE_TITLE[mode]}",
                          s, [raw, sql])

        # 1 MiB batches
        nbig = max(1, round(mib_total / big_mib))
        nbig_sql = max(1, round(mib_sqlite / big_mib))
        rec_per_mib = len(big) * MIB / len(big_bytes)  # items are records; rate -> MiB/s
        if mod is not None:
            def body_blob(log: Any, n: int = nbig) -> int:
                append_batch = log.append_batch
                for _ in range(n):
                    append_batch(big_bytes)
                return n * len(big)

            def body_big(log: Any, n: int = nbig) -> int:
                append_many = log.append_many
                for _ in range(n):
                    append_many(big)
                return n * len(big)
            s_blob = measure("seriatim append_batch(pre-encoded 1 MiB)", "MiB/s",
                             lambda m=mode, f=body_blob: _seriatim_run(mod, m, f),
                             per=rec_per_mib)
            s_big = measure(f"seriatim append_many({len(big)} records = 1 MiB)", "MiB/s",
                            lambda m=mode, f=body_big: _seriatim_run(mod, m, f),
                            per=rec_per_mib)
        else:
            s_blob = skipped("seriatim append_batch(pre-encoded 1 MiB)", "MiB/s", why)
            s_big = skipped("seriatim append_many(1 MiB of records)", "MiB/s", why)
        raw = measure("raw f.write of the same 1 MiB batches", "MiB/s",
                      lambda m=mode, n=nbig: _raw_run(m, [big_bytes], n, 1, len(big)),
                      per=rec_per_mib)
        sql = measure(f"sqlite3 executemany({len(big)}) + commit", "MiB/s",
                      lambda m=mode, n=nbig_sql: _sqlite_many_run(m, big, n),
                      per=rec_per_mib, note=f"{nbig_sql} batches per run")
        rows["blob"] = Row(f"1 MiB batches ({len(big)} records of 100 bytes, "
                           f"{len(big_bytes):,} bytes encoded), append_batch - "
                           f"{MODE_TITLE[mode]}", s_blob, [raw, sql])
        rows["big"] = Row(f"1 MiB batches, append_many of {len(big)} records - "
                          f"{MODE_TITLE[mode]}", s_big, [raw, sql])
        by_mode[mode] = rows
        suite.rows += [rows["many"], rows["one"], rows["blob"], rows["big"]]

    # reading back
    print("  [read back]", flush=True)
    read_row = _read_suite(mod, why, settings, n_read, batch=batch,
                           batch_bytes=batch_bytes)
    suite.rows.append(read_row)

    # targets
    for mode in MODES:
        r = by_mode[mode]
        t = MODE_TITLE[mode].split(" (")[0]
        suite.targets += [
            target(f"{t}: 1 MiB batch append (append_batch) >= 50 % of raw write",
                   r["blob"].subject, 0.5, base=r["blob"].baselines[0]),
            target(f"{t}: 1 MiB batch append (append_many) >= 50 % of raw write",
                   r["big"].subject, 0.5, base=r["big"].baselines[0]),
            target(f"{t}: append_many >= 500k records/s", r["many"].subject, 500_000),
            target(f"{t}: append_many >= 1.5x sqlite3", r["many"].subject, 1.5,
                   base=r["many"].baselines[1]),
            target(f"{t}: append >= 100k records/s", r["one"].subject, 100_000),
        ]
    suite.targets.append(target("reading back >= 1M records/s", read_row.subject, 1_000_000))

    suite.notes += [
        f"Sizes per run: append_many {n_many:,} records; append {n_one:,} records; "
        f"1 MiB batches {mib_total} MiB (sqlite3 {mib_sqlite} MiB: it is the slow one, and "
        f"its rate does not depend on the total); read back {n_read:,} records. Median of "
        f"{settings.runs} runs after {settings.warmup} warm-up run(s); each run in a fresh "
        "directory.",
        "raw write is the ceiling for bytes: it does no encoding, no CRC, no index and no "
        "offset bookkeeping. The 1 MiB MiB/s figures count encoded bytes "
        f"({len(big)} records = {len(big_bytes):,} bytes) for all three systems.",
        "sqlite3 in the one-at-a-time case commits every 1 000 records, so its records are "
        "not visible (and not durable) until then; seriatim's `append` returns a final, "
        "readable offset per call. That favours sqlite3.",
        "group commit: seriatim `flush.policy=interval, flush.messages=1000` fsyncs when 1 000 "
        "records are pending (so once per `append_many` call, and once per 1 MiB batch); "
        "sqlite3 `synchronous=FULL` fsyncs the WAL on each commit (plus checkpoints); raw "
        "write calls `os.fdatasync` at the same points.",
    ]
    return suite


def _read_suite(mod: Any, why: str, settings: Settings, n: int, *, batch: Records,
                batch_bytes: bytes) -> Row:
    batches = n // GROUP
    with scratch_dir("read") as d:
        # raw: the same bytes, read in 1 MiB chunks (no decoding: the ceiling)
        raw_path = d / "raw.bin"
        with open(raw_path, "wb") as f:
            for _ in range(batches):
                f.write(batch_bytes)

        def raw_case() -> tuple[float, float]:
            buf = bytearray(MIB)
            t0 = time.perf_counter()
            with open(raw_path, "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass
            return batches * GROUP, time.perf_counter() - t0

        db = d / "log.db"
        conn = _sqlite_connect(db, "never")
        for _ in range(batches):
            conn.executemany("INSERT INTO log (key, value) VALUES (?, ?)", batch)
            conn.commit()
        conn.close()

        def sqlite_case() -> tuple[float, float]:
            c = sqlite3.connect(db)
            try:
                t0 = time.perf_counter()
                count = 0
                for _row in c.execute("SELECT offset, key, value FROM log ORDER BY offset"):
                    count += 1
                return count, time.perf_counter() - t0
            finally:
                c.close()

        if mod is not None:
            log = _open_seriatim(mod, d / "log", "never")
            for _ in range(batches):
                log.append_many(batch)
            log.flush()
            log.close()

            def seriatim_case() -> tuple[float, float]:
                lg = mod.open(d / "log", readonly=True)
                try:
                    t0 = time.perf_counter()
                    count = 0
                    for _rec in lg.read(0):
                        count += 1
                    return count, time.perf_counter() - t0
                finally:
                    lg.close()
            s = _measure("seriatim read(from_offset=0)", "records/s", seriatim_case, settings)
        else:
            s = skipped("seriatim read(from_offset=0)", "records/s", why)
        raw = _measure("raw readinto 1 MiB chunks, same bytes (no decoding)", "records/s",
                       raw_case, settings)
        sql = _measure("sqlite3 SELECT offset, key, value ORDER BY offset", "records/s",
                       sqlite_case, settings)
    return Row(f"Reading back {n:,} records of 100 bytes (page cache warm)", s, [raw, sql])

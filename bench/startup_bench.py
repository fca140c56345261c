"""Time from process start of ``seriatim serve`` to its first accepted TCP connection.

Each run spawns the process (fresh temporary ``log.dirs``, a free loopback port) and connects
in a tight loop (1 ms apart) until a connect succeeds; that instant is "first accepted
connection". The baseline is a bare ``python -c`` process running ``asyncio.start_server``,
spawned and measured the same way with the same interpreter. Every process is stopped by its
own PID (SIGTERM, then SIGKILL) and reaped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    Measurement,
    Row,
    Settings,
    Suite,
    free_port,
    scratch_dir,
    skipped,
    stop_process,
)
from bench.common import measure as _measure

ECHO_APP = "seriatim.testing.echo:create_app"
BASELINE_CODE = """\
import asyncio, sys
async def main():
    async def on_conn(r, w):
        w.close()
    server = await asyncio.start_server(on_conn, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def _seriatim_cmd() -> list[str] | None:
    exe = shutil.which("seriatim", path=str(Path(sys.executable).parent))
    if exe:
        return [exe]
    try:
        import seriatim.cli.main  # noqa: F401
    except Exception:
        return None
    return [sys.executable, "-m", "seriatim.cli.main"]


def _env() -> dict[str, str]:
    # With PYTHONDONTWRITEBYTECODE every run would compile from source; the warm-up run writes
    # the .pyc files (under __pycache__/, ignored by git).
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def time_to_accept(cmd: list[str], port: int, timeout_s: float = 30.0) -> float:
    """Seconds from Popen to the first successful connect to ``port``."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
    try:
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}: {err[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5):
                    return time.perf_counter() - started
            except OSError:
                if time.perf_counter() - started > timeout_s:
                    raise TimeoutError(f"{cmd} did not listen within {timeout_s} s") from None
                time.sleep(0.001)
    finally:
        stop_process(proc)
        if proc.stderr is not None:
            proc.stderr.close()


def _seriatim_case(base: list[str], app: str | None = None) -> tuple[float, float]:
    port = free_port()
    with scratch_dir("startup") as d:
        cmd = [*base, "serve", "-c", f"listeners=PLAINTEXT://127.0.0.1:{port}",
               "-c", f"log.dirs={d}/data", "--log-level", "warning"]
        if app:
            cmd += ["--app", app]
        return 1, time_to_accept(cmd, port)


def _baseline_case() -> tuple[float, float]:
    port = free_port()
    return 1, time_to_accept([sys.executable, "-c", BASELINE_CODE, str(port)], port)


def _try(base: list[str] | None, app: str | None, label: str, runs: Settings) -> Measurement:
    if base is None:
        return skipped(label, "ms", "the seriatim CLI is not importable")
    try:
        return _measure(label, "ms", lambda: _seriatim_case(base, app), runs,
                        lower_is_better=True)
    except (RuntimeError, TimeoutError) as exc:
        reason = str(exc).strip().splitlines()[-1][:200]
        print(f"    {label}: skipped: {reason}", flush=True)
        return skipped(label, "ms", f"`seriatim serve` failed: {reason}")


def _partitions_case(settings: Settings) -> dict[str, list[float]]:
    """Idle RSS; RSS with 1,000 partitions; reopen after a clean stop and after SIGKILL."""
    from bench import workers

    out: dict[str, list[float]] = {"idle": [], "rss1000": [], "clean": [], "unclean": []}
    parts = 1000
    port = free_port()
    with scratch_dir("parts") as d:
        data = d / "data"
        proc, _ = workers.start_seriatim(data, port)
        try:
            time.sleep(1.0)
            out["idle"].append(workers.rss_mib(proc.pid))
            workers.create_topic(f"127.0.0.1:{port}", "many", parts)
            # one small batch into every partition, so that recovery has segments to scan
            from confluent_kafka import Producer

            p = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "linger.ms": 50,
                          "log_level": 0})
            for i in range(parts * 10):
                p.produce("many", b"x" * 100, partition=i % parts)
            left = p.flush(60)
            del p  # destroyed before the broker stops, so it does not retry against it
            if left:
                raise RuntimeError("could not fill the 1,000 partitions")
            time.sleep(0.5)
            out["rss1000"].append(workers.rss_mib(proc.pid))
        finally:
            stop_process(proc)
        for _ in range(settings.warmup + settings.runs):
            proc, secs = workers.start_seriatim(data, port)  # after a clean stop (SIGTERM)
            out["clean"].append(secs * 1000)
            proc.kill()  # SIGKILL by PID: no clean-shutdown marker
            proc.wait()
            proc, secs = workers.start_seriatim(data, port)
            out["unclean"].append(secs * 1000)
            stop_process(proc)
        for k in ("clean", "unclean"):
            out[k] = out[k][settings.warmup:]
    return out


def run(settings: Settings) -> Suite:
    suite = Suite("startup", "Startup: `seriatim serve` to first accepted connection",
                  "python -m bench startup" + (" --quick" if settings.quick else ""))
    runs = Settings(settings.quick, settings.scale(11, 5), 2)
    base = _seriatim_cmd()
    s = _try(base, None, "seriatim serve (console script)", runs)
    echo = _try(base, ECHO_APP, "seriatim serve --app echo (server layer, no broker)", runs)
    b = _measure("python -c asyncio.start_server", "ms", _baseline_case, runs,
                 lower_is_better=True)
    suite.rows.append(Row("Process start to first accepted TCP connection (lower is better)",
                          s, [b, echo]))
    try:
        pc = _partitions_case(runs)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"[:200]
        print(f"    1,000 partitions: skipped: {reason}", flush=True)
        pc = {}
    def m(key: str, label: str, unit: str) -> Measurement:
        if not pc.get(key):
            return skipped(label, unit, "the 1,000-partition case failed")
        return Measurement(label, unit, values=pc[key], lower_is_better=True)

    idle = m("idle", "seriatim serve idle RSS (empty data dir, 1 s after start)", "MiB")
    rss1000 = m("rss1000", "seriatim serve RSS with 1,000 partitions (10 records each)", "MiB")
    clean = m("clean", "open a data dir of 1,000 partitions after a clean stop", "ms")
    unclean = m("unclean", "open it after SIGKILL (recovery)", "ms")
    suite.rows.append(Row("Memory (RSS, lower is better)", idle, [rss1000]))
    suite.rows.append(Row("Start to first accepted connection with 1,000 partitions "
                          "(lower is better)", clean, [unclean, s]))
    from bench.common import Target

    def lower(text: str, v: Measurement, limit: float) -> Target:
        if not v.ok:
            return Target(text, None, "a figure is missing")
        return Target(text, v.median <= limit, f"{v.median:,.1f} {v.unit} vs {limit:g}")

    suite.targets += [lower("startup <= 150 ms", s, 150), lower("idle RSS <= 60 MB", idle, 60)]
    if s.ok and b.ok:
        suite.notes.append(
            f"seriatim costs {s.median - b.median:+.1f} ms over the bare asyncio process "
            f"({s.median / b.median:.2f}x its time; the ratio column is seriatim ÷ baseline, "
            "so here lower is better).")
    suite.notes += [
        f"Median of {runs.runs} runs after {runs.warmup} warm-up runs (the warm-up writes "
        ".pyc files and warms the page cache). Connect attempts are 1 ms apart, so figures "
        "are accurate to about 1 ms.",
        "Each seriatim run gets a fresh, empty `log.dirs`; the time includes interpreter "
        "start, imports, config parsing, opening the (empty) log dir, the event loop and the "
        "bind.",
        "1,000 partitions: one topic of 1,000 partitions with 10 records each; RSS from "
        "/proc/PID/status (VmRSS). Reopen times are process start to first accepted connection; "
        "the server listens only after every log is opened and recovered. After SIGKILL "
        "there is no clean-shutdown marker, so every partition is recovered (scanned from its "
        "recovery point).",
        "The `--app echo` row runs the same server layer with a trivial echo app instead of "
        "the broker (no storage, no kio): the floor of the server layer itself.",
    ]
    return suite

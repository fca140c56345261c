"""Shared benchmark machinery: timing, medians of N runs, warm-up, machine info, reporting.

A benchmark case is a callable that does the work once and returns ``(items, seconds)``; the
harness calls it ``warmup`` times (discarded: first touch of guest RAM, page cache, .pyc
files, JIT-less but cache-cold code) and then ``runs`` times, and reports the median rate and
the spread (min..max). A :class:`Row` puts a seriatim figure beside the baselines measured in
the same process, in the same run, and :class:`Suite` renders them to Markdown.
"""

from __future__ import annotations

import datetime as _dt
import gc
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: Where the scratch data lives: under the system temp dir (ext4 on the benchmark machine;
#: override with SERIATIM_BENCH_DIR to put it on another disk).
SCRATCH_ROOT = os.environ.get("SERIATIM_BENCH_DIR") or tempfile.gettempdir()


# --- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How hard to run. ``quick`` is a smoke run (< 60 s in all); full is < 10 min."""

    quick: bool
    runs: int
    warmup: int

    @classmethod
    def make(cls, quick: bool, runs: int | None = None) -> Settings:
        if quick:
            return cls(quick=True, runs=runs or 3, warmup=1)
        return cls(quick=False, runs=runs or 5, warmup=1)

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full


# --- measurements -----------------------------------------------------------------------------


@dataclass
class Measurement:
    """Rates (items per second) of the measured runs, warm-ups excluded."""

    label: str
    unit: str  # e.g. "records/s", "MiB/s", "ms"
    values: list[float] = field(default_factory=list)
    note: str = ""
    skipped: str = ""  # non-empty: why this figure is missing
    lower_is_better: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.values) and not self.skipped

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def spread_pct(self) -> float:
        """(max - min) / median, in percent."""
        if len(self.values) < 2 or self.median == 0:
            return 0.0
        return (max(self.values) - min(self.values)) / self.median * 100

    def cell(self) -> str:
        if not self.ok:
            return f"skipped: {self.skipped}" if self.skipped else "n/a"
        return f"**{fmt(self.median)}** {self.unit}"

    def runs_cell(self) -> str:
        if not self.ok:
            return ""
        return " / ".join(fmt(v) for v in self.values) + f" (±{self.spread_pct / 2:.0f} %)"


def skipped(label: str, unit: str, reason: str) -> Measurement:
    return Measurement(label, unit, skipped=reason)


def fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


Case = Callable[[], tuple[float, float]]  # -> (items, seconds)


def measure(label: str, unit: str, case: Case, settings: Settings, *, note: str = "",
            per: float = 1.0, lower_is_better: bool = False, verbose: bool = True
            ) -> Measurement:
    """Run ``case`` warm-up + N times; the rate is ``items / seconds / per``.

    For a latency (``lower_is_better``) the case returns ``(1, seconds)`` and the figure is
    milliseconds.
    """
    m = Measurement(label, unit, note=note, lower_is_better=lower_is_better)
    for i in range(settings.warmup + settings.runs):
        gc.collect()
        items, seconds = case()
        if lower_is_better:
            value = seconds * 1000 / max(items, 1)
        else:
            value = items / seconds / per if seconds > 0 else float("inf")
        if i >= settings.warmup:
            m.values.append(value)
        if verbose:
            tag = "warm-up" if i < settings.warmup else f"run {i - settings.warmup + 1}"
            print(f"    {label:<58} {tag:<8} {fmt(value):>12} {unit}", flush=True)
    return m


def timed(fn: Callable[[], float]) -> tuple[float, float]:
    """Call ``fn`` (returns the item count) and time it."""
    t0 = time.perf_counter()
    items = fn()
    return items, time.perf_counter() - t0


# --- rows, targets, suites ------------------------------------------------------------------


@dataclass
class Row:
    case: str
    subject: Measurement
    baselines: list[Measurement]

    def ratio(self, base: Measurement) -> str:
        if not (self.subject.ok and base.ok) or base.median == 0:
            return "-"
        r = self.subject.median / base.median
        return f"{r:.2f}x"


@dataclass
class Target:
    text: str
    met: bool | None  # None: could not be judged
    detail: str

    def cell(self) -> str:
        return {True: "**met**", False: "**missed**", None: "not judged"}[self.met]


@dataclass
class Suite:
    name: str
    title: str
    command: str
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra_md: list[str] = field(default_factory=list)  # after the targets
    after_rows: list[str] = field(default_factory=list)  # Markdown between rows and targets
    seconds: float = 0.0

    def render(self) -> str:
        out = [f"## {self.title}", "", f"Command: `{self.command}` (took {self.seconds:.0f} s)", ""]
        for row in self.rows:
            out.append(f"### {row.case}")
            out.append("")
            out.append("| system | median | runs (±half-spread) | seriatim ÷ this |")
            out.append("|---|---:|---|---:|")
            s = row.subject
            out.append(f"| {s.label} | {s.cell()} | {s.runs_cell()} | - |")
            for b in row.baselines:
                label = b.label + (f" ({b.note})" if b.note else "")
                out.append(f"| {label} | {b.cell()} | {b.runs_cell()} | {row.ratio(b)} |")
            out.append("")
        out += self.after_rows
        if self.targets:
            out += ["### Targets", "", "| target | result | figures |", "|---|---|---|"]
            out += [f"| {t.text} | {t.cell()} | {t.detail} |" for t in self.targets]
            out.append("")
        out += self.extra_md
        if self.notes:
            out += ["Notes:", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(out)


def target(text: str, value: Measurement, threshold: float, *, base: Measurement | None = None,
           unit: str = "") -> Target:
    """``value >= threshold`` (absolute), or ``value >= threshold x base`` when base is given."""
    if not value.ok or (base is not None and not base.ok):
        return Target(text, None, "a figure is missing")
    if base is None:
        return Target(text, value.median >= threshold,
                      f"{fmt(value.median)} {unit or value.unit} vs {fmt(threshold)}")
    ratio = value.median / base.median
    return Target(text, ratio >= threshold,
                  f"{fmt(value.median)} vs {fmt(base.median)} {value.unit} = {ratio:.2f}x "
                  f"(needs {threshold:g}x)")


# --- scratch space, ports, processes ----------------------------------------------------------


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"seriatim-bench-{prefix}-", dir=SCRATCH_ROOT))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None,
                  interval_s: float = 0.01) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on 127.0.0.1:{port}") from None
            time.sleep(interval_s)


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM by PID, wait, then SIGKILL by PID if needed; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- machine ------------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_info() -> dict[str, str]:
    info: dict[str, str] = {}
    model = next((ln.split(":", 1)[1].strip() for ln in _read("/proc/cpuinfo").splitlines()
                  if ln.startswith("model name")), platform.processor() or "?")
    info["CPU"] = f"{os.cpu_count()} cores, {model}"
    mem_kb = next((int(ln.split()[1]) for ln in _read("/proc/meminfo").splitlines()
                   if ln.startswith("MemTotal:")), 0)
    info["memory"] = f"{mem_kb / 2**20:.1f} GiB"
    info["Python"] = f"{platform.python_implementation()} {platform.python_version()}"
    info["kernel"] = f"{platform.system()} {platform.release()}"
    os_release = dict(ln.split("=", 1) for ln in _read("/etc/os-release").splitlines()
                      if "=" in ln)
    if "PRETTY_NAME" in os_release:
        info["OS"] = os_release["PRETTY_NAME"].strip('"')
    info["disk"] = _disk_info(SCRATCH_ROOT)
    libs = []
    for mod in ("confluent_kafka", "redis", "hiredis", "sqlite3"):
        try:
            m = __import__(mod)
        except ImportError:
            continue
        if mod == "confluent_kafka":
            libs.append(f"confluent-kafka {m.__version__} (librdkafka {m.libversion()[0]})")
        elif mod == "sqlite3":
            libs.append(f"SQLite {m.sqlite_version}")
        else:
            libs.append(f"{mod} {getattr(m, '__version__', '?')}")
    redis_server = shutil.which("redis-server")
    if redis_server:
        try:
            v = subprocess.run([redis_server, "--version"], capture_output=True, text=True,
                               timeout=5, check=False).stdout.split()
            ver = next(x for x in v if x.startswith("v="))
            libs.append("redis-server " + ver.removeprefix("v="))
        except (OSError, StopIteration, subprocess.SubprocessError):
            pass
    info["libraries"] = ", ".join(libs)
    return info


def _disk_info(path: str) -> str:
    best = ("", "", "")
    real = os.path.realpath(path)
    for ln in _read("/proc/mounts").splitlines():
        parts = ln.split()
        if len(parts) >= 3 and real.startswith(parts[1]) and len(parts[1]) >= len(best[1]):
            best = (parts[0], parts[1], parts[2])
    dev, mnt, fstype = best
    sched = ""
    name = os.path.basename(dev)
    if name:
        s = _read(f"/sys/block/{name}/queue/scheduler").strip()
        if s:
            sched = f", scheduler {s}"
    return f"{fstype} on {dev} (mounted at {mnt}){sched}; scratch dir {path}"


def now_utc() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


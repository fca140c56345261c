"""Fuzzing in the suite: a short atheris smoke run of each target, and the regression replay.

* ``test_fuzz_smoke``: both targets of ``fuzz/`` run in parallel subprocesses for
  ``SERIATIM_FUZZ_SECONDS`` (default 20) each, from the committed seeds, with
  ``-rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=1``: any crash, leak-sized allocation or
  slow input fails the test and names the artifact. Skipped (with the reason) when atheris is
  not installed. Longer runs: ``make fuzz``.
* ``test_seeds_and_regressions_replay``: every committed seed and every file in
  ``fuzz/regressions/`` (crash inputs found by earlier runs) goes through both targets
  in-process, so a fixed crash stays fixed even without atheris.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
TARGETS = {"requests": "fuzz_requests.py", "records": "fuzz_records.py"}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"fuzz_{name}", FUZZ / TARGETS[name])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seeds_and_regressions_replay() -> None:
    files = sorted((FUZZ / "seeds").rglob("*.bin")) + sorted((FUZZ / "regressions").glob("*"))
    files = [f for f in files if f.is_file() and f.name != "README.md"]
    assert len(files) > 100, "the committed seeds are missing (python fuzz/capture_seeds.py)"
    targets = [_load(name) for name in TARGETS]
    for path in files:
        data = path.read_bytes()
        for target in targets:
            target.one_input(data)  # raises on a regression


def test_fuzz_smoke(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed (pip install atheris; see fuzz/fuzz_requests.py)")
    seconds = int(os.environ.get("SERIATIM_FUZZ_SECONDS", "20"))
    procs = {}
    for name, script in TARGETS.items():
        work = tmp_path / name
        (work / "corpus").mkdir(parents=True)
        args = [
            sys.executable, str(FUZZ / script),
            f"-max_total_time={seconds}", "-rss_limit_mb=1024", "-malloc_limit_mb=256",
            "-timeout=1", f"-artifact_prefix={work}/", "-print_final_stats=1",
            str(work / "corpus"), str(FUZZ / "seeds" / name),
        ]
        log = (work / "log").open("wb")
        procs[name] = (subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT), log, work)
    failures = []
    try:
        for name, (proc, log, work) in procs.items():
            try:
                rc = proc.wait(timeout=seconds + 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            log.close()
            artifacts = [p.name for p in work.iterdir() if p.name.startswith(("crash-", "oom-",
                                                                              "timeout-", "leak-"))]
            if rc != 0 or artifacts:
                tail = (work / "log").read_text(errors="replace")[-3000:]
                failures.append(f"{name}: exit {rc}, artifacts {artifacts}\n{tail}")
    finally:
        for proc, log, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    assert not failures, "\n\n".join(failures)

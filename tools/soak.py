"""Chaos/soak loop outside CI (``make soak``): kill -9 rounds and the malformed corpus, repeated.

Each iteration runs, against fresh broker subprocesses in a temporary directory:

1. the kill -9 loop (tests/robustness/kill_loop.py): idempotent acks=all confluent-kafka load,
   ``--rounds`` SIGKILL/restart rounds at seeded random moments, then the loss / consistency /
   contiguity check;
2. the malformed-frame corpus (tests/robustness/malformed_corpus.py) on a fresh connection per
   case, with an ApiVersions health check after each, tracking the broker's RSS.

It stops after ``--minutes`` (default 10) and prints one line per iteration and a summary;
the exit status is 1 if any iteration lost an acknowledged message, saw an inconsistent or
non-contiguous offset, a slow restart (>= 3 s), a corpus mismatch or a dead broker. Every
iteration's seed is printed; ``--seed`` replays one. Usage::

    python tools/soak.py --minutes 60 [--seed N] [--rounds 10] [--keep]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "robustness"))

from kill_loop import run_kill_loop  # noqa: E402
from malformed_corpus import MAX_REQUEST_BYTES, TOPIC, build_corpus  # noqa: E402
from robust_support import BrokerProcess, RawConn, create_topic  # noqa: E402
from test_malformed_corpus import run_case  # noqa: E402


def corpus_pass(root: Path) -> tuple[int, int, int]:
    """(failures, RSS growth KiB, slowest case ms) of one pass over the corpus."""
    config = {"socket.request.max.bytes": MAX_REQUEST_BYTES, "auto.create.topics.enable": False,
              "log.flush.policy": "never"}
    failures = 0
    slowest = 0.0
    with BrokerProcess(root / "corpus-data", config, log_path=root / "corpus.log") as b:
        create_topic(b.bootstrap, TOPIC)
        before = b.rss_kib()
        with RawConn(b.bootstrap) as health:
            for case in build_corpus():
                t0 = time.monotonic()
                why = run_case(b.bootstrap, case)
                slowest = max(slowest, time.monotonic() - t0)
                if why or not b.alive() or not health.api_versions_ok():
                    failures += 1
                    print(f"  corpus {case.name}: {why or 'broker unhealthy'}", flush=True)
        grown = b.rss_kib() - before
    return failures, grown, int(slowest * 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=None, help="replay one iteration's seed")
    parser.add_argument("--rounds", type=int, default=10, help="kill rounds per iteration")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args(argv)
    master = random.Random(args.seed)
    deadline = time.monotonic() + args.minutes * 60
    totals = {"iterations": 0, "acked": 0, "duplicates": 0, "bad": 0, "corpus_failures": 0}
    worst_restart = 0.0
    worst_rss = 0
    while True:
        seed = args.seed if args.seed is not None else master.randrange(2**32)
        root = Path(tempfile.mkdtemp(prefix="seriatim-soak-"))
        result = run_kill_loop(root, seed=seed, rounds=args.rounds)
        failures, grown, slowest_ms = corpus_pass(root)
        bad = bool(result.lost or result.inconsistent or result.gaps
                   or max(result.restart_s) >= 3.0 or failures)
        totals["iterations"] += 1
        totals["acked"] += result.acked
        totals["duplicates"] += result.duplicates
        totals["bad"] += int(bad)
        totals["corpus_failures"] += failures
        worst_restart = max(worst_restart, *result.restart_s)
        worst_rss = max(worst_rss, grown)
        print(f"[{'FAIL' if bad else 'ok'}] {result.summary()} corpus_failures={failures} "
              f"corpus_rss_growth={grown} KiB slowest_case={slowest_ms} ms dir={root}",
              flush=True)
        if not args.keep and not bad:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        if args.seed is not None or time.monotonic() >= deadline:
            break
    print(f"SUMMARY iterations={totals['iterations']} failed={totals['bad']} "
          f"acked={totals['acked']} duplicates={totals['duplicates']} "
          f"corpus_failures={totals['corpus_failures']} worst_restart={worst_restart:.2f}s "
          f"worst_corpus_rss_growth={worst_rss} KiB")
    return 1 if totals["bad"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m bench`: run the benchmarks and print each figure beside its baseline.

    python -m bench                 # the full run of issue 4 (about 10 minutes on 2 cores)
    python -m bench --quick         # small volumes, one run each: a smoke test (under a minute)
    python -m bench --only ingest   # one workload (repeatable)
    python -m bench --json out.json # also save the raw numbers

Exit status 1 when a workload could not be measured (its row says why); a missed target is
reported in the table, not in the exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from bench import auth, backfill, collect, concurrency, dashboard, hostile, ingest, install, runread, startup
from bench.measure import FULL, QUICK, BenchError, Row, Scale, machine, table

WORKLOADS: dict[str, Callable[[Scale, Path], list[Row]]] = {
    "collect": collect.run,
    "hostile": hostile.run,
    "ingest": ingest.run,
    "startup": startup.run,
    "concurrency": concurrency.run,
    "install": install.run,
    "dashboard": dashboard.run,
    "auth": auth.run,
    "runread": runread.run,
    "backfill": backfill.run,
}
DATA_DIR = Path(__file__).resolve().parent / ".data"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small volumes and one run each (smoke test)")
    parser.add_argument("--only", action="append", choices=list(WORKLOADS), help="run only this workload")
    parser.add_argument("--offline", action="store_true", help="skip the pip install (it contacts the index)")
    parser.add_argument("--json", type=Path, help="also write the raw numbers to this file")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where generated data goes")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scale = replace(QUICK if args.quick else FULL, offline=args.offline)
    where = machine()
    command = "python -m bench" + (" --quick" if args.quick else "")
    command += "".join(f" --only {name}" for name in args.only or []) + (" --offline" if args.offline else "")
    rows: list[Row] = []
    failed = False
    timings: dict[str, float] = {}
    for name in args.only or list(WORKLOADS):
        work = args.data_dir / scale.name
        work.mkdir(parents=True, exist_ok=True)
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            rows += WORKLOADS[name](scale, work)
        except BenchError as error:
            failed = True
            rows.append(Row(f"{name}: FAILED", "not measured", f"n/a: {error}".replace("\n", " ")[:500]))
        timings[name] = time.perf_counter() - began
        print(f"bench: {name} took {timings[name]:.1f} s", file=sys.stderr, flush=True)
    print(f"# batch-metrics benchmarks ({scale.name})\n")
    print(f"Command: `{command}`  ")
    print(
        f"Machine: {where['nproc']} CPUs ({where['cpu']}), {where['ram']} RAM, Python {where['python']}, "
        f"{where['os']}, {where['date']}\n"
    )
    print(table(rows))
    notes = [f"- {row.workload}: {row.raw['note']}" for row in rows if row.raw.get("note")]
    if notes:
        print("\nNotes:\n" + "\n".join(notes))
    if args.json:
        report = {"command": command, "machine": where, "scale": asdict(scale), "seconds": timings,
                  "rows": [asdict(row) for row in rows]}  # fmt: skip
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

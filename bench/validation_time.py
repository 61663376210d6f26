"""Wall time of the scheduled validation run (all of checks/) against a healthy sandbox:
serial against two xdist workers, side by side in one run (rounds alternate).

    .venv/bin/python bench/validation_time.py [--rounds 3]

Starts its own sandbox on free ports (playbook.sandbox.launch) and stops it at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playbook.sandbox.launch import local_aws_env, start_sandbox, stop_sandbox  # noqa: E402

VARIANTS = {"serial": [], "xdist -n 2": ["-n", "2"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sb = start_sandbox(Path(tempfile.mkdtemp()))
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    try:
        env = {**os.environ, **local_aws_env(sb.path),
               "PLAYBOOK_REPORTS": tempfile.mkdtemp()}
        for _ in range(args.rounds):
            for name, extra in VARIANTS.items():
                start = time.monotonic()
                proc = subprocess.run([sys.executable, "-m", "pytest", "checks", "--env",
                                       str(sb.path), "-q", "-p", "no:cacheprovider", *extra],
                                      cwd=ROOT, env=env, capture_output=True, text=True,
                                      timeout=600)
                times[name].append(time.monotonic() - start)
                last = proc.stdout.strip().splitlines()[-1]
                if proc.returncode != 0:
                    sys.exit(f"{name}: the checks did not pass: {last}")
    finally:
        stop_sandbox(sb)
    base = statistics.median(times["serial"])
    print("| run | median wall time | ratio to serial | all rounds |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.1f} s | {med / base:.2f} | "
              f"{', '.join(f'{t:.1f}' for t in ts)} s |")


if __name__ == "__main__":
    main()

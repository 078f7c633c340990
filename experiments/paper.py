r"""Runs (or continues) the paper's CIFAR-10 experiments.

  python experiments/paper.py --scale=cpu              # the whole CPU suite
  python experiments/paper.py --scale=paper --shard=0/4 # 1 of 4 GPU hosts
  python experiments/paper.py --experiments=table1 --dry_run
  python experiments/paper.py --models=mlp_1x512,mlp_3x512

Each run's workdir is results/runs/<scale>/<model>/<name>-<key>, derived
from its config (rethink_jax.experiments.sweep), so a run that several
tables and figures need is trained once. Rerunning the command skips the
finished runs and resumes a partial one from its checkpoints; stop it at
any time. Experiments and scales: rethink_jax.experiments.suite.
"""

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from rethink_jax.experiments import suite  # noqa: E402
from rethink_jax.experiments import sweep  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--scale", choices=suite.SCALES, default="cpu")
  parser.add_argument("--experiments", default="",
                      help="comma-separated subset of "
                      f"{','.join(suite.EXPERIMENTS)} (default: all)")
  parser.add_argument("--models", default="",
                      help="comma-separated models to run (default: all)")
  parser.add_argument("--seeds", type=int, default=1,
                      help="runs per row, seeds 0..k-1 (mean and spread)")
  parser.add_argument("--shard", default="0/1",
                      help="i/n: run every n-th run starting at i")
  parser.add_argument("--root", default=os.path.join(REPO, "results", "runs"))
  parser.add_argument("--dry_run", action="store_true",
                      help="list the runs and their status, train nothing")
  args = parser.parse_args()
  names = [n for n in args.experiments.split(",") if n]
  try:
    entries = suite.entries(names, args.scale, args.seeds)
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(suite.CPU_SCALE))
    if unknown:
      raise ValueError(f"unknown models {unknown}; choose from "
                       f"{sorted(suite.CPU_SCALE)}.")
    if models:
      entries = [e for e in entries if e.config.model in models]
    shard = sweep.parse_shard(args.shard)
  except ValueError as e:
    parser.error(str(e))
  root = os.path.join(args.root, args.scale)
  start = time.perf_counter()
  report = sweep.run([e.config for e in entries], root, shard=shard,
                     dry_run=args.dry_run)
  counts = {s: sum(r["before"] == s for r in report)
            for s in ("done", "partial", "missing")}
  print(f"{len(report)} runs in this shard ({counts}); "
        f"{time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
  main()

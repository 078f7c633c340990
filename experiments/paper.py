r"""Runs (or continues) the paper's CIFAR-10 experiments.

  python experiments/paper.py --scale=cpu              # the whole CPU suite
  python experiments/paper.py --scale=paper --shard=0/4 # 1 of 4 GPU hosts
  python experiments/paper.py --experiments=table1 --dry_run
  python experiments/paper.py --models=mlp_1x512,mlp_3x512
  python experiments/paper.py --runs=alexnet/random_labels_s0  # one row
  python experiments/paper.py --seeds=3 --runs_per_program=8  # seeds together

Each run's workdir is results/runs/<scale>/<model>/<name>-<key>, derived
from its config (rethink_jax.experiments.sweep), so a run that several
tables and figures need is trained once. Rerunning the command skips the
finished runs and resumes a partial one from its checkpoints; stop it at
any time. Experiments and scales: rethink_jax.experiments.suite.
"""

import os
import sys
import time

from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from rethink_jax import cli  # noqa: E402
from rethink_jax.experiments import suite  # noqa: E402
from rethink_jax.experiments import sweep  # noqa: E402


FLAGS = flags.FLAGS
flags.DEFINE_enum("scale", "cpu", list(suite.SCALES), "cpu: the CPU-scale "
                  "suite (subsets, documented in docs/reproduction.md); "
                  "paper: full CIFAR-10 and the paper's protocol")
flags.DEFINE_string("experiments", "", "comma-separated subset of "
                    f"{','.join(suite.EXPERIMENTS)} (default: all)")
flags.DEFINE_string("models", "", "comma-separated models to run (default: "
                    "all)")
flags.DEFINE_string("runs", "", "comma-separated parts of run names, as "
                    "--dry_run lists them (e.g. alexnet/random_labels_s0): "
                    "only the runs whose name contains one (default: all)")
flags.DEFINE_integer("seeds", 1, "runs per row, seeds 0..k-1 (mean and "
                     "spread)")
flags.DEFINE_integer("runs_per_program", 1, "train up to this many "
                     "compatible runs (e.g. the seeds of a row) in one "
                     "compiled program (rethink_jax.training.multi_run)")
flags.DEFINE_string("shard", "0/1", "i/n: run every n-th run starting at i")
flags.DEFINE_string("root", os.path.join(REPO, "results", "runs"),
                    "folder of the runs (one subfolder per scale)")
flags.DEFINE_bool("dry_run", False, "list the runs and their status, train "
                  "nothing")


def select_runs(entries: list[suite.Entry],
                parts: list[str]) -> list[suite.Entry]:
  """The entries whose run name contains one of ``parts`` (all if none)."""
  if not parts:
    return entries
  chosen = [e for e in entries
            if any(part in sweep.run_name(e.config) for part in parts)]
  if not chosen:
    raise ValueError(f"no run name contains any of {parts}; list the names "
                     "with --dry_run.")
  return chosen


def main(argv: list[str]) -> None:
  del argv
  args = FLAGS
  names = [n for n in args.experiments.split(",") if n]
  try:
    entries = suite.entries(names, args.scale, args.seeds)
    models = [m for m in args.models.split(",") if m]
    declared = sorted({e.config.model for e in entries})
    unknown = sorted(set(models) - set(declared))
    if unknown:
      raise ValueError(f"unknown models {unknown}; choose from "
                       f"{declared}.")
    if models:
      entries = [e for e in entries if e.config.model in models]
    entries = select_runs(entries, [r for r in args.runs.split(",") if r])
    shard = sweep.parse_shard(args.shard)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  root = os.path.join(args.root, args.scale)
  start = time.perf_counter()
  report = sweep.run([e.config for e in entries], root, shard=shard,
                     runs_per_program=args.runs_per_program,
                     dry_run=args.dry_run)
  if args.dry_run:
    rules: dict[str, set[str]] = {}
    for entry in entries:
      if entry.config.dataset == "cifar10":
        rules.setdefault(suite.stopping_rule(entry.config), set()).add(
            entry.config.model)
    for rule, model_names in sorted(rules.items()):
      print(f"{', '.join(sorted(model_names))}: {rule}")
  counts = {s: sum(r["before"] == s for r in report)
            for s in ("done", "partial", "missing")}
  print(f"{len(report)} runs in this shard ({counts}); "
        f"{time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
  cli.run_script(main)

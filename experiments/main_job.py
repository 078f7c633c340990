r"""The main job: random labels versus true labels on real CIFAR-10.

The paper's central phenomenon (Section 2, Table 1's MLP 1x512 rows): the
same network, trained with the same protocol, fits random labels perfectly
while its test accuracy falls to chance, and generalizes on the true labels.

  python experiments/main_job.py            # (`make main` runs exactly this)

Trains MLP 1x512 (paper protocol: SGD, momentum 0.9, lr 0.01 x 0.95 per
epoch, batch 128, no explicit regularizer) twice on CIFAR-10, once on the
true labels and once on random labels, and writes

* ``results/main_job/{true_labels,random_labels}/``: ``metrics.jsonl`` and
  ``summary.json`` of each run (config, data, corruption manifest);
* ``docs/main_job.md`` and ``docs/figures/main_job.png``: the results next to
  the paper's Table 1 numbers, generated from those files;
* the block between the ``main-job`` markers in ``README.md``.

``--report_only`` regenerates the docs from existing results without
training.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
RUNS = ("true_labels", "random_labels")


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--epochs", type=int, default=60,
                 help="epochs per run (the paper does not state it)")
  p.add_argument("--train_examples", type=int, default=0,
                 help="fixed random subset of the training set (0 = all)")
  p.add_argument("--out", default=str(REPO / "results" / "main_job"))
  p.add_argument("--docs", default=str(REPO / "docs"))
  p.add_argument("--report_only", action="store_true",
                 help="only regenerate docs/ and README from results")
  return p.parse_args(argv)


def _command(args) -> str:
  parts = ["python", "experiments/main_job.py"]
  if args.epochs != 60:
    parts.append(f"--epochs={args.epochs}")
  if args.train_examples:
    parts.append(f"--train_examples={args.train_examples}")
  return " ".join(shlex.quote(p) for p in parts)


def run(args) -> None:
  from rethink_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from rethink_jax import train  # pylint: disable=g-import-not-at-top
  for run_name in RUNS:
    config = config_lib.table1_config(
        "mlp_1x512", "random_labels" if run_name == "random_labels" else "")
    with config.unlocked():
      config.num_epochs = args.epochs
      config.train_examples = args.train_examples
    workdir = os.path.join(args.out, run_name)
    print(f"== {run_name}: {workdir}", flush=True)
    start = time.time()
    summary = train.train_and_evaluate(config, workdir)
    final = summary["final"]
    print(f"== {run_name}: train accuracy {final['train_accuracy']:.4f}, "
          f"test accuracy {final['test_accuracy']:.4f} "
          f"({time.time() - start:.0f} s)", flush=True)
  with open(os.path.join(args.out, "command.txt"), "w") as f:
    f.write(_command(args) + "\n")


def _load(out: str):
  runs = {}
  for run_name in RUNS:
    workdir = os.path.join(out, run_name)
    with open(os.path.join(workdir, "summary.json")) as f:
      summary = json.load(f)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      history = [json.loads(line) for line in f if line.strip()]
    runs[run_name] = (summary, history)
  return runs


def _pct(x) -> str:
  return "–" if x is None else f"{100 * x:.2f}"


def report(args) -> None:
  """Writes docs/main_job.md, the figure and README's block from results."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from rethink_jax import paper  # pylint: disable=g-import-not-at-top

  runs = _load(args.out)
  command_file = os.path.join(args.out, "command.txt")
  command = open(command_file).read().strip() if os.path.exists(
      command_file) else _command(args)
  docs = pathlib.Path(args.docs)
  (docs / "figures").mkdir(parents=True, exist_ok=True)

  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  for run_name, (summary, history) in runs.items():
    epochs = [h["epoch"] for h in history]
    axes[0].plot(epochs, [h["train_loss"] for h in history],
                 label=run_name.replace("_", " "))
    axes[1].plot(epochs, [100 * h["train_accuracy"] for h in history],
                 label=f"{run_name.replace('_', ' ')}: train")
    axes[1].plot(epochs, [100 * h["test_accuracy"] for h in history], "--",
                 label=f"{run_name.replace('_', ' ')}: test")
  axes[0].set(xlabel="epoch", ylabel="training loss (labels as trained)",
              title="MLP 1x512, CIFAR-10")
  axes[1].set(xlabel="epoch", ylabel="accuracy (%)", ylim=(0, 101),
              title="train vs test accuracy")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(docs / "figures" / "main_job.png", dpi=120)
  plt.close(fig)

  rows = []
  for run_name, (summary, _) in runs.items():
    row = paper.table1_row("mlp_1x512",
                           random_labels=run_name == "random_labels")
    final = summary["final"]
    rows.append(
        f"| {run_name.replace('_', ' ')} | {_pct(final['train_accuracy'])} | "
        f"{_pct(final['test_accuracy'])} | {row.train_accuracy:.2f} | "
        f"{row.test_accuracy:.2f} | {final['epoch']} | "
        f"{summary['steps_to_fit'] if summary['steps_to_fit'] is not None else 'not reached'} | "
        f"{summary['total_time_s']:.0f} |")
  some = next(iter(runs.values()))[0]
  data = some.get("data", {})
  table = "\n".join([
      "| labels | train acc (%) | test acc (%) | paper train | paper test "
      "| epochs | steps to fit (100%) | wall time (s) |",
      "|---|---|---|---|---|---|---|---|",
      *rows,
  ])
  random_manifest = runs["random_labels"][0].get("corruption") or {}
  devices = some.get("devices", {})
  machine = (f"{devices.get('count', '?')} x {devices.get('kind', '?')} "
             f"({os.cpu_count()} cores)")
  block = (
      f"MLP 1x512 on CIFAR-10 ({data.get('train_examples', '?')} training / "
      f"{data.get('test_examples', '?')} test images, source "
      f"`{data.get('name', 'cifar10')}`), measured on {machine} with\n"
      f"`{command}`:\n\n{table}\n\n"
      f"Random labels: seed {random_manifest.get('seed', '?')}, "
      f"{random_manifest.get('num_changed_labels', '?')} labels changed, "
      f"labels sha256 `{str(random_manifest.get('labels_sha256', '?'))[:16]}…`."
      f" Paper numbers: Table 1 (`rethink_jax.paper.TABLE1`).\n")
  (docs / "main_job.md").write_text(
      "# Main job: random labels vs true labels (CIFAR-10, MLP 1x512)\n\n"
      "Generated by `python experiments/main_job.py --report_only` from "
      f"`{os.path.relpath(args.out, REPO)}/*/summary.json` and "
      "`metrics.jsonl`; do not edit by hand.\n\n" + block +
      "\n![training curves](figures/main_job.png)\n")

  readme = REPO / "README.md"
  if readme.exists():
    text = readme.read_text()
    begin, end = "<!-- main-job:begin -->", "<!-- main-job:end -->"
    if begin in text and end in text:
      head, rest = text.split(begin, 1)
      _, tail = rest.split(end, 1)
      readme.write_text(head + begin + "\n" + block + end + tail)
  print(block)


def main(argv=None) -> None:
  args = _parse(sys.argv[1:] if argv is None else argv)
  if not args.report_only:
    run(args)
  report(args)


if __name__ == "__main__":
  main()

r"""The main job: random labels versus true labels on real CIFAR-10.

The paper's central phenomenon (Section 2, Table 1's MLP 1x512 rows): the
same network, trained with the same protocol, fits random labels perfectly
while its test accuracy falls to chance, and generalizes on the true labels.

  python experiments/main_job.py            # (`make main` runs exactly this)

Trains MLP 1x512 (SGD, momentum 0.9, lr 0.01, batch 128, no explicit
regularizer, the paper's Section 3 protocol) on CIFAR-10 three times:

* ``true_labels`` and ``random_labels``: lr x 0.97 per epoch for 100 epochs
  (``--lr_decay_factor``, ``--epochs``), the same schedule for both, as the
  paper keeps the schedule unchanged for random labels;
* ``random_labels_paper_schedule``: the paper's lr x 0.95 per epoch, for 60
  epochs (``--paper_schedule_epochs``; 0 skips it).

Why not 0.95 for all: the learning rate summed over all epochs of the 0.95
schedule is at most lr_0 / 0.05 = 0.2, and on 2 CPU cores that stalls the
random-label fit near 97-98% (the third run shows it). The paper itself,
when a fit converged slowly (Table 4, augmentation), raised the factor (to
0.999) and trained longer; a constant-ish 0.999 is too noisy for this MLP
and 0.97 is not (results/schedule_probe/, docs/ambiguities.md).

Writes

* ``results/main_job/<run>/``: ``metrics.jsonl`` and ``summary.json`` of each
  run (config, data, corruption manifest), and ``command.txt``;
* ``docs/main_job.md`` and ``docs/figures/main_job.png``: the results next to
  the paper's Table 1 numbers, generated from those files;
* the block between the ``main-job`` markers in ``README.md``.

``--report_only`` regenerates the docs from existing results without
training.
"""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import shutil
import time

from absl import flags

from rethink_jax import cli

REPO = pathlib.Path(__file__).resolve().parent.parent
# Run name -> (random labels?, uses the paper's 0.95 decay instead of the
# main job's schedule).
RUNS = {
    "true_labels": (False, False),
    "random_labels": (True, False),
    "random_labels_paper_schedule": (True, True),
}
DEFAULTS = dict(epochs=100, lr_decay_factor=0.97, paper_schedule_epochs=60)

FLAGS = flags.FLAGS
flags.DEFINE_integer("epochs", DEFAULTS["epochs"], "epochs of the two main "
                     "runs (the paper does not state it)")
flags.DEFINE_float("lr_decay_factor", DEFAULTS["lr_decay_factor"],
                   "lr multiplier per epoch of the two main runs")
flags.DEFINE_integer("paper_schedule_epochs",
                     DEFAULTS["paper_schedule_epochs"], "epochs of the "
                     "random-label run with the paper's 0.95 decay (0 skips "
                     "it)")
flags.DEFINE_integer("train_examples", 0, "fixed random subset of the "
                     "training set (0 = all)")
flags.DEFINE_string("out", str(REPO / "results" / "main_job"),
                    "folder of the runs and results")
flags.DEFINE_string("docs", str(REPO / "docs"), "where the report goes; "
                    "README.md is updated only for the default")
flags.DEFINE_bool("report_only", False, "only regenerate docs/ and README "
                  "from results")


def _command(args) -> str:
  parts = ["python", "experiments/main_job.py"]
  for name, default in DEFAULTS.items():
    if getattr(args, name) != default:
      parts.append(f"--{name}={getattr(args, name)}")
  if args.train_examples:
    parts.append(f"--train_examples={args.train_examples}")
  return " ".join(shlex.quote(p) for p in parts)


def _run_settings(args, run_name: str):
  """(epochs, lr decay factor) of one run; epochs 0 means skipped."""
  from rethink_jax import paper  # pylint: disable=g-import-not-at-top
  if RUNS[run_name][1]:
    return args.paper_schedule_epochs, paper.LR_DECAY_PER_EPOCH
  return args.epochs, args.lr_decay_factor


def run(args) -> None:
  from rethink_jax.training import config as config_lib  # pylint: disable=g-import-not-at-top
  from rethink_jax.training import train  # pylint: disable=g-import-not-at-top
  for run_name, (random_labels, _) in RUNS.items():
    epochs, decay = _run_settings(args, run_name)
    if not epochs:
      continue
    config = config_lib.table1_config(
        "mlp_1x512", "random_labels" if random_labels else "")
    with config.unlocked():
      config.num_epochs = epochs
      config.lr_decay_factor = decay
      config.train_examples = args.train_examples
    workdir = os.path.join(args.out, run_name)
    shutil.rmtree(workdir, ignore_errors=True)  # Always a fresh run.
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
    if not os.path.exists(os.path.join(workdir, "summary.json")):
      continue  # A skipped run (e.g. --paper_schedule_epochs=0).
    with open(os.path.join(workdir, "summary.json")) as f:
      summary = json.load(f)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      history = [json.loads(line) for line in f if line.strip()]
    runs[run_name] = (summary, history)
  return runs


def _pct(x) -> str:
  if x is None:
    return "–"
  if 0.9999 < x < 1.0:  # Not fitted, though it would round to 100.00.
    return "99.99+"
  return f"{100 * x:.2f}"


def _label(run_name: str, summary) -> str:
  return (f"{run_name.replace('_paper_schedule', '').replace('_', ' ')} "
          f"(x{summary['config']['lr_decay_factor']}/epoch)")


def _first_epoch_at(history, accuracy: float):
  """(epoch, wall seconds) of the first epoch whose train accuracy reaches
  ``accuracy``, or None."""
  for h in history:
    if h["train_accuracy"] >= accuracy:
      return h["epoch"], h["wall_time_s"]
  return None


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

  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for run_name, (summary, history) in runs.items():
    label = _label(run_name, summary)
    epochs = [h["epoch"] for h in history]
    line, = axes[0].plot(epochs, [h["train_loss"] for h in history],
                         label=label)
    axes[1].plot(epochs, [100 * h["train_accuracy"] for h in history],
                 color=line.get_color(), label=f"{label}: train")
    axes[1].plot(epochs, [100 * h["test_accuracy"] for h in history], "--",
                 color=line.get_color(), label=f"{label}: test")
  axes[1].axhline(99, color="grey", lw=0.8, ls=":")
  axes[0].set(xlabel="epoch", ylabel="training loss (labels as trained)",
              title="MLP 1x512, CIFAR-10")
  axes[1].set(xlabel="epoch", ylabel="accuracy (%)", ylim=(0, 101),
              title="train vs test accuracy (dotted: 99%)")
  axes[0].legend(fontsize=7)
  # Between the test curves (~10% and ~50%) the accuracy panel is empty.
  axes[1].legend(fontsize=7, loc="center right", bbox_to_anchor=(1.0, 0.3))
  for ax in axes:
    ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(docs / "figures" / "main_job.png", dpi=120)
  plt.close(fig)

  rows = []
  for run_name, (summary, history) in runs.items():
    row = paper.table1_row("mlp_1x512", random_labels=RUNS[run_name][0])
    final = summary["final"]
    at99 = _first_epoch_at(history, 0.99)
    steps_to_fit = summary["steps_to_fit"]
    rows.append(
        f"| {run_name.replace('_', ' ')} | "
        f"{summary['config']['lr_decay_factor']} | {final['epoch']} | "
        f"{_pct(final['train_accuracy'])} | {_pct(final['test_accuracy'])} | "
        f"{row.train_accuracy:.2f} | {row.test_accuracy:.2f} | "
        f"{'not reached' if at99 is None else f'{at99[0]} ({at99[1]:.0f} s)'}"
        f" | {'not reached' if steps_to_fit is None else steps_to_fit} | "
        f"{summary['total_time_s']:.0f} |")
  some = next(iter(runs.values()))[0]
  data = some.get("data", {})
  table = "\n".join([
      "| run | lr decay / epoch | epochs | train acc (%) | test acc (%) | "
      "paper train | paper test | first epoch >= 99% train (wall) | "
      "steps to fit (100%) | wall time (s) |",
      "|---|---|---|---|---|---|---|---|---|---|",
      *rows,
  ])
  random_manifest = runs["random_labels"][0].get("corruption") or {}
  main_decay = runs["random_labels"][0]["config"]["lr_decay_factor"]
  paper_note = ("The paper's Table 1 numbers are for its own schedule "
                "(lr 0.01 x 0.95 per epoch, epochs not stated); the main "
                f"runs use x {main_decay} per epoch, see "
                "`experiments/main_job.py` and `docs/ambiguities.md`.")
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
      f" Paper numbers: Table 1 (`rethink_jax.paper.TABLE1`). "
      f"{paper_note}\n")
  (docs / "main_job.md").write_text(
      "# Main job: random labels vs true labels (CIFAR-10, MLP 1x512)\n\n"
      "Generated by `python experiments/main_job.py --report_only` from "
      f"`{os.path.relpath(args.out, REPO)}/*/summary.json` and "
      "`metrics.jsonl`; do not edit by hand.\n\n" + block +
      "\n![training curves](figures/main_job.png)\n")

  readme = REPO / "README.md"
  if docs.resolve() == (REPO / "docs").resolve() and readme.exists():
    text = readme.read_text()
    begin, end = "<!-- main-job:begin -->", "<!-- main-job:end -->"
    if begin in text and end in text:
      head, rest = text.split(begin, 1)
      _, tail = rest.split(end, 1)
      readme.write_text(head + begin + "\n" + block + end + tail)
  print(block)


def main(argv: list[str]) -> None:
  del argv
  args = FLAGS
  if not args.report_only:
    run(args)
  report(args)


if __name__ == "__main__":
  cli.run_script(main)

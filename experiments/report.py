r"""Writes docs/reproduction.md, its figures and results/reproduction.json.

  python experiments/report.py              # the cpu scale, from results/
  python experiments/report.py --scale=paper  # docs/reproduction_paper.md

Everything comes from the runs' results files under results/runs/<scale>/
(rethink_jax.experiments.report); the paper's numbers from
rethink_jax.paper. Running it twice gives identical files. Rows whose runs
have not finished are listed with their status.
"""

import json
import math
import os
import sys

from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from rethink_jax import cli  # noqa: E402
from rethink_jax import results  # noqa: E402
from rethink_jax.experiments import claims  # noqa: E402
from rethink_jax.experiments import report  # noqa: E402
from rethink_jax.experiments import suite  # noqa: E402

MODEL_NAMES = claims.MODEL_NAMES
CURVE_NAMES = {"true_labels": "true labels", "random_labels": "random labels",
               "shuffled_pixels": "shuffled pixels",
               "random_pixels": "random pixels", "gaussian": "Gaussian"}


def _fmt(value, digits=2) -> str:
  if value is None:
    return "–"
  if isinstance(value, float):
    return f"{value:.{digits}f}"
  return str(value)


def _yes(flag: bool) -> str:
  return "yes" if flag else "no"


def _measured(row, key, digits=2) -> str:
  if row["measured"] is None:
    return f"_{row['status']}_"
  text = _fmt(row["measured"][key], digits)
  spread = (row.get("spread") or {}).get(key)
  return text + (f" ± {_fmt(spread, digits)}" if spread is not None else "")


def _epochs(row) -> str:
  """Epochs run (mean over seeds) out of the cap."""
  run = "–" if row["measured"] is None else _fmt(row["measured"]["epochs"], 0)
  return f"{run} / {row['num_epochs']}"


def _minutes(row) -> str:
  return "–" if row["seconds"] is None else f"{row['seconds'] / 60:.1f}"


def _table1(rows) -> list[str]:
  lines = ["| model | random crop | weight decay | labels | paper train | "
           "paper test | train (%) | test (%) | n train | epochs (cap) | "
           "min |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {MODEL_NAMES[r['model']]} | {_yes(r['random_crop'])} | "
        f"{_yes(r['weight_decay'])} | "
        f"{'random' if r['random_labels'] else 'true'} | "
        f"{_fmt(r['paper']['train'])} | {_fmt(r['paper']['test'])} | "
        f"{_measured(r, 'train')} | {_measured(r, 'test')} | "
        f"{r['train_examples']} | {_epochs(r)} | {_minutes(r)} |")
  return lines


def _table4(rows) -> list[str]:
  lines = ["| model | regularizer | paper train | train (%) | test (%) | "
           "n train | epochs (cap) | min |", "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    paper_train = r["paper"]["note"] or _fmt(r["paper"]["train"])
    lines.append(
        f"| {MODEL_NAMES[r['model']]} | {r['regularizer']} | {paper_train} | "
        f"{_measured(r, 'train')} | {_measured(r, 'test')} | "
        f"{r['train_examples']} | {_epochs(r)} | {_minutes(r)} |")
  return lines


def _switches(row) -> str:
  on = [name.replace("_", " ") for name in suite.TABLE2_SWITCHES
        if name != "random_labels" and row[name]]
  return ", ".join(on) or "none"


def _table2(rows) -> list[str]:
  lines = ["| labels | regularizers | paper train top-1 / top-5 | paper test "
           "top-1 / top-5 (best) | train top-1 / top-5 (%) | test top-1 / "
           "top-5 (%) | best test top-1 (%) | n train | epochs (cap) | min |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    p = r["paper"]
    best = (f" ({_fmt(p['best_test_top1'])})"
            if p["best_test_top1"] is not None else "")
    lines.append(
        f"| {'random' if r['random_labels'] else 'true'} | {_switches(r)} | "
        f"{_fmt(p['train_top1'])} / {_fmt(p['train_top5'])} | "
        f"{_fmt(p['test_top1'])} / {_fmt(p['test_top5'])}{best} | "
        f"{_measured(r, 'train_top1')} / {_measured(r, 'train_top5')} | "
        f"{_measured(r, 'test_top1')} / {_measured(r, 'test_top5')} | "
        f"{_measured(r, 'best_test_top1')} | {r['train_examples']} | "
        f"{_epochs(r)} | {_minutes(r)} |")
  return lines


def _figure_rows(rows, columns) -> list[str]:
  keys = [k for k, _ in columns]
  lines = ["| " + " | ".join(title for _, title in columns) + " |",
           "|" + "---|" * len(columns)]
  for r in rows:
    cells = []
    for key in keys:
      if key == "model":
        value = MODEL_NAMES[r["model"]]
      elif key == "randomization":
        value = CURVE_NAMES[r["randomization"]]
      elif key == "p":
        value = _fmt(r["p"], 1)
      elif key == "n":
        value = str(r["train_examples"])
      elif key == "regularizers":
        value = _switches(r)
      elif key == "epochs":
        value = _epochs(r)
      else:
        value = _measured(r, key, 0 if key == "steps_to_fit" else 2)
      cells.append(value)
    lines.append("| " + " | ".join(cells) + " |")
  return lines


def _legend(ax, outside: bool = False) -> None:
  """A legend, or a note that nothing is plotted; ``outside`` puts a long
  legend beside the axes, clear of the curves."""
  if ax.get_lines() and outside:
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5),
              fontsize="small")
  elif ax.get_lines():
    ax.legend()
  else:
    _no_run(ax)


def _no_run(ax) -> None:
  ax.text(0.5, 0.5, "no finished run yet", ha="center",
          transform=ax.transAxes)


def _curve(ax, runs, key, label, style="-", factor=1.0) -> None:
  """The mean over seeds of ``key`` per step, with a min-max band."""
  steps, mean, low, high = report.band(runs, key, factor)
  line, = ax.plot(steps, mean, style, label=label)
  if len(runs) > 1:
    ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2,
                    linewidth=0)


def _seeds_note(series) -> str:
  counts = sorted({len(runs) for _, runs in series if runs})
  if not counts or counts[-1] == 1:
    return "one seed"
  text = (str(counts[0]) if counts[0] == counts[-1] else
          f"{counts[0]}-{counts[-1]}")
  return f"mean of {text} seeds, band: min-max"


def _save(fig, paths, name, scale, figures, meta, plt) -> None:
  paths[name] = os.path.join(figures, f"{name}_{scale}.png")
  fig.savefig(paths[name], dpi=110, metadata=meta, bbox_inches="tight")
  plt.close(fig)


def _plots(scale, root, figures, seeds):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  meta = {"Software": None}
  os.makedirs(figures, exist_ok=True)
  paths = {}

  fig, ax = plt.subplots(figsize=(6, 4))
  series = report.figure_series(scale, root, "figure1a", seeds)
  for row, runs in series:
    if runs:
      _curve(ax, runs, "train_loss_running",
             CURVE_NAMES[row["randomization"]])
  ax.set(xlabel="training steps", ylabel="average training loss",
         title=f"Figure 1a, small Inception ({scale} scale"
               + (f", n = {suite.FIGURE1_INCEPTION_EXAMPLES}" if scale == "cpu"
                  else "") + f", {_seeds_note(series)})")
  _legend(ax)
  fig.tight_layout()
  _save(fig, paths, "figure1a", scale, figures, meta, plt)
  return paths, plt, meta


def _p_plots(scale, rows, figures, plt, meta, paths):
  for name, key, ylabel in (("figure1b", "relative_time",
                             "relative convergence time"),
                            ("figure1c", "test_error", "test error (%)")):
    fig, ax = plt.subplots(figsize=(5, 4))
    for model in suite.FIGURE1_MODELS:
      points = [(r["p"], r["measured"][key],
                 (r.get("spread") or {}).get(key) or 0.0) for r in rows[name]
                if r["model"] == model and r["measured"] is not None
                and r["measured"][key] is not None]
      if points:
        # Error bars: the standard deviation over seeds (none for one seed).
        x, y, err = zip(*points)
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3,
                    label=MODEL_NAMES[model])
    ax.set(xlabel="label corruption p", ylabel=ylabel,
           title=f"{name[:6].title()} {name[6:]} ({scale} scale)")
    _legend(ax)
    fig.tight_layout()
    _save(fig, paths, name, scale, figures, meta, plt)


def _accuracy_panels(fig, axes, series, curves, titles, title) -> None:
  """One panel per curve of ``series``; one legend below them all."""
  for ax, (_, runs), panel in zip(axes, series, titles):
    for key, label, style in curves:
      if runs:
        _curve(ax, runs, key, label, style, factor=100.0)
    if not runs:
      _no_run(ax)
    ax.set(xlabel="training steps", title=panel)
  axes[0].set_ylabel("accuracy (%)")
  handles, labels = next(((ax.get_legend_handles_labels()) for ax in axes
                          if ax.get_lines()), ([], []))
  if handles:
    fig.legend(handles, labels, loc="lower center", ncol=len(handles),
               bbox_to_anchor=(0.5, -0.02))
  fig.suptitle(title)
  fig.tight_layout(rect=(0, 0.08, 1, 0.95))


def _figure2b_plot(scale, root, figures, plt, meta, paths, seeds):
  series = report.figure_series(scale, root, "figure2b", seeds)
  fig, axes = plt.subplots(1, 2, figsize=(9, 4.3), sharey=True)
  _accuracy_panels(fig, axes, series, (
      ("train_accuracy", "train", "-"), ("test_accuracy", "test", "-"),
      ("cumulative_best_test_accuracy", "best test so far", "--")),
                   [MODEL_NAMES[row["model"]] for row, _ in series],
                   f"Figure 2b ({scale} scale, {_seeds_note(series)})")
  _save(fig, paths, "figure2b", scale, figures, meta, plt)


def _figure2a_plot(scale, root, figures, plt, meta, paths, seeds):
  series = report.figure_series(scale, root, "figure2a", seeds)
  fig, axes = plt.subplots(1, len(series), figsize=(3.2 * len(series), 4.0),
                           sharey=True, squeeze=False)
  _accuracy_panels(fig, axes[0], series, (
      ("train_accuracy", "train top-1", "-"),
      ("test_accuracy", "test top-1", "-"),
      ("test_top5_accuracy", "test top-5", "-"),
      ("cumulative_best_test_accuracy", "best test top-1", "--")),
                   [_switches(row) for row, _ in series],
                   f"Figure 2a, Inception V3 ({scale} scale, "
                   f"{_seeds_note(series)})")
  _save(fig, paths, "figure2a", scale, figures, meta, plt)


def _scale_text(scale) -> list[str]:
  stop = (f"each run stops at its first epoch with "
          f"{100 * suite.FIT_THRESHOLD:g}% training accuracy (the time to "
          "overfit of Figure 1b), its epochs being a cap")
  if scale == "paper":
    return ["Scale `paper`: the full CIFAR-10 splits, the Section 3 "
            f"protocol; {stop}: "
            f"{suite.PAPER_SCHEDULE.num_epochs} epochs at "
            f"x{suite.PAPER_SCHEDULE.lr_decay_per_epoch:g} per epoch, the "
            "MLPs " + ", ".join(
                f"{s.num_epochs} at x{s.lr_decay_per_epoch:g}"
                for s in sorted(set(suite.FULL_DATA_SCHEDULES.values()),
                                key=str)) +
            " (`rethink_jax/experiments/suite.py`)."]
  lines = ["Scale `cpu`: the Section 3 protocol. The MLPs train on the full "
           "training set and are tested on the full test set, the paper's "
           "scale, with the learning rate x"
           f"{suite.schedule('mlp_1x512').lr_decay_per_epoch:g} per epoch; "
           "the convolutional models on fixed random subsets, randomized "
           "exactly as in the full data set, with the rate x0.95 per pass "
           "over the subset and BatchNorm's running averages at momentum "
           f"{suite.CPU_BN_MOMENTUM} (an epoch is only a few steps), except "
           "the Inception without BatchNorm, which trains with "
           f"{suite.NO_BN_SETTING} (kernel init, lr, x0.95 per 390 steps, "
           "the paper's epoch) at both scales (the probe below); "
           f"{stop}. Why: `rethink_jax/experiments/suite.py`, "
           "`results/cpu_scale_probe/`, docs/ambiguities.md.", "",
           "| model | train examples | test examples | epochs (cap) |",
           "|---|---|---|---|"]
  for model, size in suite.CPU_SCALE.items():
    full = " (all)" if size.train_examples == 0 else ""
    figure1a = (f" (Figures 1a-1c: {suite.FIGURE1_INCEPTION_EXAMPLES}, the "
                "probe below)" if model == "inception" else "")
    lines.append(f"| {MODEL_NAMES[model]} | "
                 f"{size.train_examples or suite.CIFAR10_TRAIN}{full}"
                 f"{figure1a} | "
                 f"{size.test_examples or suite.CIFAR10_TEST}{full} | "
                 f"{size.num_epochs} |")
  size = suite.CPU_IMAGENET_SCALE
  lines.append(f"| Inception V3 ({suite.CPU_IMAGENET_DATASET}, "
               f"{suite.CPU_IMAGENET_SIZE}x{suite.CPU_IMAGENET_SIZE}) | "
               f"{size.train_examples} | {size.test_examples} | "
               f"{size.num_epochs} |")
  return lines


def _readme_block(scale, rows) -> None:
  """README's "Reproduce the paper" table (cpu scale): times from results."""
  if scale != "cpu":
    return
  lines = ["| artifact | runs done | CPU minutes measured here (2 cores) | "
           "command (cpu scale) | on GPU/TPU (paper scale) |",
           "|---|---|---|---|---|"]
  names = {"table1": "Table 1", "figure1a": "Figure 1a",
           "figure1b": "Figures 1b, 1c", "figure2b": "Figure 2b",
           "table4": "Table 4", "table2": "Table 2", "figure2a": "Figure 2a"}
  for key, title in names.items():
    done = sum(r["status"] == "done" for r in rows[key])
    # Rows hold the mean over their seeds; the artifact costs every seed.
    minutes = sum(r["seconds"] * len(r["seeds"]) for r in rows[key]
                  if r["seconds"] is not None) / 60
    experiment = "figure1bc" if key == "figure1b" else key
    lines.append(f"| {title} | {done}/{len(rows[key])} | {minutes:.0f} | "
                 f"`python experiments/paper.py --experiments={experiment}` "
                 f"| `python experiments/paper.py --scale=paper "
                 f"--experiments={experiment}` |")
  block = "\n".join(lines) + "\n"
  readme = os.path.join(REPO, "README.md")
  with open(readme) as f:
    text = f.read()
  begin, end = "<!-- reproduce:begin -->", "<!-- reproduce:end -->"
  if begin in text and end in text:
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(readme, "w") as f:
      f.write(head + begin + "\n" + block + end + tail)


def _probe_lines(root, probes, figures, plt, meta, paths) -> list[str]:
  """The probes' section: what each measured, a table and a plot."""
  lines = ["## Probes: how the cpu scale was chosen", "",
           "Runs beside the suite's (same runner, same results folder) that "
           "measure what the cpu scale's choices rest on; a probed setting "
           "the suite adopts is the same run. Rows still training show the "
           "epochs so far.", ""]
  scale_rows = probes["probe_figure1a_scale"]
  names = ("true_labels", *[n for n in suite.FIGURE1A_RANDOMIZATIONS if n
                            not in ("true_labels", "random_labels")],
           "random_labels")
  lines += ["### Figure 1a's order against the training set size", "",
            "`python experiments/paper.py --experiments=probe_figure1a_scale`"
            ": the small Inception's steps to fit (99.9%) each of Figure "
            "1a's randomizations on n training examples, the rest of the cpu "
            "scale unchanged.", "",
            "| n | steps per epoch | " + " | ".join(
                n.replace("_", " ") for n in names)
            + " | random / true | random - true (epochs) | noise (epochs) "
            "| order | seeds |", "|---" * (len(names) + 7) + "|"]
  sizes = report.figure1a_scale(scale_rows)
  for r in sizes:
    cells = []
    for name in names:
      m = r.get(name)
      cells.append("" if m is None else "not fitted" if math.isinf(
          m["mean"]) else f"{m['mean']:.0f}" + (f" ± {m['sd']:.0f}"
                                                 if m["sd"] else ""))
    counts = sorted(r[name]["seeds"] for name in names if name in r)
    seeds = (f"{counts[0]}" if counts[0] == counts[-1]
             else f"{counts[0]}-{counts[-1]}")
    order = {None: "not all run", True: "yes", False: "no"}[r["order"]]
    rand = r.get("random_labels")
    ratio = ("" if rand is None else
             f"{rand['mean'] / r['true_labels']['mean']:.2f}")
    margin = "" if r["margin"] is None else f"{r['margin']:+.1f}"
    lines.append(f"| {r['n']} | {r['steps_per_epoch']} | "
                 + " | ".join(cells) + f" | {ratio} | {margin} | "
                 f"{r['noise']:.1f} | {order} | {seeds} |")
  running = sorted({f"n = {r['n']} {r['randomization'].replace('_', ' ')} "
                    f"(seed {r['seed']}, {r['epochs']}/{r['num_epochs']} "
                    "epochs)" for r in scale_rows if r["status"] == "partial"})
  if running:
    lines += ["", "Still training: " + ", ".join(running) + "."]
  lines += ["", "Steps to fit: mean ± standard deviation over the seeds. "
            "Noise: the larger of one epoch (steps to fit are measured once "
            "an epoch) and twice the largest standard deviation over seeds. "
            "Order: whether true labels are fitted fastest and random labels "
            "slowest of all five, each by more than the noise (Figure 1a); "
            "one finished run faster than true labels beyond the noise "
            "already breaks it.",
            "", _probe_verdict_figure1a(sizes)]
  no_bn = probes["probe_no_bn_schedule"]
  lines += ["", "### The BatchNorm-free Inception's schedule", "",
            "`python experiments/paper.py --experiments=probe_no_bn_schedule`"
            ": the small Inception without BatchNorm on 1,024 true-labelled "
            "examples under each reading of Section 3's schedule (0.1 or "
            "0.01; x0.95 per pass over the subset or per 390 steps, the "
            "paper's epoch; the initialization is not stated), and "
            f"{suite.NO_BN_LONG[0]} on true and random labels until it fits "
            f"(at most {suite.NO_BN_LONG[1]} epochs).", "",
            "| schedule | labels | seed | epochs run (cap) | train (%) | best "
            "train (%) | test (%) | steps to fit | min | status |",
            "|---" * 10 + "|"]
  fig, ax = plt.subplots(figsize=(6, 4))
  for r in no_bn:
    labels = r["randomization"].split("_")[0]
    lines.append(f"| {r['schedule']} | {labels} | {r['seed']} | {r['epochs']} "
                 f"({r['num_epochs']}) | {_fmt(r['train'])} | "
                 f"{_fmt(r['best_train'])} | {_fmt(r['test'])} | "
                 f"{_fmt(r['steps_to_fit'])} | {_fmt(r['minutes'])} | "
                 f"{r['status']} |")
    records = [x for x in report.load_run(root, _probe_config(r))["records"]
               if x.get("train_accuracy") is not None]
    if records:
      ax.plot([x["step"] for x in records],
              [100 * x["train_accuracy"] for x in records],
              label=f"{r['schedule']}, {labels} labels, seed {r['seed']}",
              linestyle="--" if labels == "random" else "-")
  ax.set(xlabel="training steps", ylabel="training accuracy (%)",
         title="Inception w/o BatchNorm, n = 1024")
  fig.tight_layout()  # before the legend, which the saved image widens for
  _legend(ax, outside=True)
  _save(fig, paths, "probe_no_bn_schedule", "cpu", figures, meta, plt)
  lines += ["", f"![BatchNorm-free schedules](figures/"
            f"{os.path.basename(paths['probe_no_bn_schedule'])})", "",
            _probe_verdict_no_bn(no_bn), ""]
  return lines


def _probe_verdict_figure1a(sizes) -> str:
  """Whether the probed sizes show Figure 1a's order beyond the noise."""
  command = ("`python experiments/paper.py --scale=paper "
             "--experiments=figure1a`")
  done = [r["n"] for r in sizes]
  shown = [r["n"] for r in sizes if r["shown"]]
  whole = [r["n"] for r in sizes if r["order"]]
  unknown = [r["n"] for r in sizes if r["order"] is None]
  parts = [f"Sizes with true labels finished: {done}."]
  parts.append(f"Random labels take longer than true labels beyond the noise "
               f"from n = {shown[0]} on." if shown else
               "At none of them do random labels take longer than true "
               "labels beyond the noise.")
  decided = [r["n"] for r in sizes if r["order"] is not None]
  if whole:
    parts.append(f"The whole order (true labels fastest, random labels "
                 f"slowest) holds from n = {whole[0]} on.")
  else:
    faster = "; ".join(
        f"at n = {r['n']}, " + ", ".join(
            f"{k.replace('_', ' ')} ({r[k]['mean']:.0f})"
            for k in r["faster_than_true"])
        + f" against true labels' {r['true_labels']['mean']:.0f}"
        for r in sizes if r["faster_than_true"])
    parts.append("The whole order (true labels fastest, random labels "
                 "slowest) holds at none of "
                 + (f"the sizes where it is decided, {decided}" if decided
                    else "them: not all five randomizations are run")
                 + (f" (steps to fit faster than true labels beyond the "
                    f"noise: {faster})" if faster else "")
                 + (f"; n = {unknown} still to decide" if unknown and decided
                    else "")
                 + f". It is for the paper scale to show: {command}.")
  parts.append(f"Figure 1a's rows and Figures 1b-1c's Inception points here "
               f"are at n = {suite.FIGURE1_INCEPTION_EXAMPLES}.")
  return " ".join(parts)


def _probe_verdict_no_bn(rows) -> str:
  """Whether the probed settings fit, and what a run costs here."""
  command = ("`python experiments/paper.py --scale=paper "
             "--experiments=table1,figure2b --models=inception_no_bn`")
  done = [r for r in rows if r["status"] == "done"]
  if not done:
    return ""
  parts = []
  for labels in ("true_labels", "random_labels"):
    runs = [r for r in done if r["randomization"] == labels]
    fitted = [r for r in runs if r["steps_to_fit"] is not None]
    name = labels.replace("_", " ")
    if fitted:
      parts.append(f"On {name}: fitted by " + ", ".join(
          f"{r['schedule']} (seed {r['seed']}) at step {r['steps_to_fit']} "
          f"(epoch "
          f"{r['steps_to_fit'] // r['steps_per_epoch']}, "
          f"{_fmt(r['minutes'])} minutes)" for r in fitted) + ".")
    elif runs:
      best = max(runs, key=lambda r: r["best_train"] or 0.0)
      steps = max(r["epochs"] * r["steps_per_epoch"] for r in runs)
      parts.append(f"On {name}: no setting fits within {steps} steps; the "
                   f"best, {best['schedule']}, reaches "
                   f"{_fmt(best['best_train'])}% at its best epoch.")
  fits_both = {r["schedule"] for r in done if r["randomization"] ==
               "true_labels" and r["steps_to_fit"] is not None} & {
                   r["schedule"] for r in done if r["randomization"] ==
                   "random_labels" and r["steps_to_fit"] is not None}
  if suite.NO_BN_SETTING in fits_both:
    parts.append(f"Table 1's BatchNorm-free rows and Figure 2b train with "
                 f"{suite.NO_BN_SETTING} (`suite.NO_BN_SETTING`), at most "
                 f"{suite.CPU_SCALE['inception_no_bn'].num_epochs} epochs "
                 f"here, and with the same setting at the paper scale: "
                 f"{command}.")
  else:
    parts.append("Table 1's BatchNorm-free rows stay unfitted here; the "
                 f"phenomenon is for the paper scale to show: {command}.")
  return " ".join(parts)


def _probe_config(row):
  (entry,) = [e for e in suite.PROBES["probe_no_bn_schedule"](
                  "cpu", row["seed"] + 1)
              if e.row == {k: row[k] for k in e.row}]
  return entry.config


def _seed_lines(coverage, scale: str) -> list[str]:
  """How many of the suite's seeded runs are done, and what the rest cost."""
  seeds = coverage[0]["seeds"]
  done = sum(c["done"] for c in coverage)
  to_go = sum(c["to_go"] for c in coverage)
  lines = [f"Every row is declared with seeds 0-{seeds - 1}. Of its "
           f"{done + to_go} runs, {done} are done; the tables and figures "
           "use the seeds each row has. `python experiments/paper.py "
           f"--scale={scale} --seeds={seeds} --runs_per_program={seeds}` "
           "trains the rest (a stopped sweep continues where it stopped; "
           "`--models=` picks models). The time to go is priced from each "
           "row's finished seeds on the machine that ran them.", "",
           "| model | runs done | runs to go | minutes to go |",
           "|---|---|---|---|"]
  def cost(c: dict) -> str:
    if c["unpriced"] and c["unpriced"] == c["to_go"]:
      return "not priced: no finished seed yet"
    minutes = c["minutes_to_go"]
    text = f"{minutes:.0f}" + (f" ({minutes / 60:.1f} h)" if minutes >= 60
                               else "")
    return text + (f" + {c['unpriced']} runs not priced" if c["unpriced"]
                   else "")

  for c in coverage:
    lines.append(f"| {MODEL_NAMES[c['model']]} | {c['done']} | {c['to_go']} "
                 f"| {cost(c)} |")
  total = {k: sum(c[k] for c in coverage)
           for k in ("to_go", "minutes_to_go", "unpriced")}
  lines.append(f"| all | {done} | {to_go} | {cost(total)} |")
  return lines


def _claims_table(found) -> list[str]:
  lines = ["| claim | the paper | here | measured |", "|---|---|---|---|"]
  for c in found:
    lines.append(f"| `{c.key}` | {c.paper} | **{c.verdict}** | "
                 f"{c.evidence} |")
  return lines


def _here(found, *keys) -> str:
  """The verdicts of the claims a section shows, as one line."""
  by_key = {c.key: c for c in found}
  return "Here: " + " ".join(
      f"{by_key[k].paper.split(' (')[0]}: **{by_key[k].verdict}** "
      f"({by_key[k].evidence})." for k in keys)


def _noise_text(rows) -> str:
  sizes = sorted({r["test_examples"] for name in ("table1", "table2")
                  for r in rows[name] if r.get("test_examples")})
  errors = ", ".join(f"{claims.standard_error(50.0, n):.1f} points on {n:,}"
                     for n in sizes)
  return ("Test accuracies are measured on finite test sets: at 50% "
          "accuracy the standard error is " + errors + " images (sqrt(a (1 - "
          "a) / n)); the claims below count a regularizer's effect as noise "
          "when it is within the larger of two standard errors and twice "
          "the seeds' standard deviation of either row.")


def _best_is_final_text(rows) -> str:
  done = [r for r in rows["figure2b"] if r["measured"] is not None]
  if done and all(r["measured"]["best_test_accuracy"] ==
                  r["measured"]["final_test_accuracy"] for r in done):
    return ("Best and final test accuracy coincide here because every run "
            "stops at its first fitted epoch, while its test accuracy is "
            "still rising; the paper's curves go on after the fit.")
  return ""


def page_path(scale: str) -> str:
  """The scale's page: the cpu scale's is docs/reproduction.md, a paper-scale
  report never overwrites it."""
  return os.path.join("docs", "reproduction.md" if scale == "cpu" else
                      f"reproduction_{scale}.md")


FLAGS = flags.FLAGS
flags.DEFINE_enum("scale", "cpu", list(suite.SCALES), "which runs to report")
flags.DEFINE_integer("seeds", 3, "look for seeds 0..k-1 of each row; rows show "
                     "the finished ones (mean +- standard deviation)")


def main(argv: list[str]) -> None:
  del argv
  args = FLAGS
  root = os.path.join(REPO, "results", "runs", args.scale)
  rows = report.collect(args.scale, root, REPO, args.seeds)
  probes = (report.collect_probes(root, REPO, args.seeds)
            if args.scale == "cpu" else {})
  found = claims.check(rows, args.scale, probes)
  coverage = report.seed_coverage(args.scale, root, args.seeds)
  figures = os.path.join(REPO, "docs", "figures")
  paths, plt, meta = _plots(args.scale, root, figures, args.seeds)
  _p_plots(args.scale, rows, figures, plt, meta, paths)
  _figure2b_plot(args.scale, root, figures, plt, meta, paths, args.seeds)
  _figure2a_plot(args.scale, root, figures, plt, meta, paths, args.seeds)

  # One list of rows per experiment; each row names its scale, so the rows
  # of the other scale are kept as they were.
  out = os.path.join(REPO, "results", "reproduction.json")
  merged = {}
  if os.path.isfile(out):
    with open(out) as f:
      merged = json.load(f)
  probe_rows = [dict(r, probe=name, scale=args.scale)
                for name, rs in probes.items() for r in rs]
  for name, new_rows in {
      **rows, "claims": [dict(c.to_dict(), scale=args.scale) for c in found],
      "probes": probe_rows, "seed_coverage": coverage}.items():
    kept = [r for r in merged.get(name, []) if r.get("scale") != args.scale]
    merged[name] = kept + new_rows
  # No provenance block: the file must come out identical on every run.
  results.write(out, merged)

  command = f"python experiments/paper.py --scale={args.scale}"
  rel = lambda p: os.path.relpath(p, os.path.join(REPO, "docs"))  # noqa: E731
  lines = [
      "# Reproduction of the paper's experiments",
      "",
      f"Written by `python experiments/report.py --scale={args.scale}` from "
      f"the runs in `results/runs/{args.scale}/` (each run's `summary.json` "
      f"and `metrics.jsonl`), trained by `{command}`; the rows are also in "
      f"`results/reproduction.json`. Paper numbers: "
      "`rethink_jax.paper` (Zhang et al., arXiv 1611.03530). Accuracies are "
      "the last epoch's, on the training labels as trained and on the clean "
      "test set. \"min\": training minutes of the run on the machine that "
      "ran it (`devices` in its summary.json; for runs trained together in "
      "one program, the program's time over its runs). Where a row has "
      "several seeds (`seeds` in results/reproduction.json; seeds 1.. "
      "trained with `--seeds=k --runs_per_program=K`), its value is the "
      "mean ± the standard deviation over them (its seeds that stopped at "
      "their epoch cap without fitting are in `unfitted`, with their last "
      "and best training accuracy, and the claims below name them), and "
      "Figures 1b/1c carry "
      "the standard deviation as error bars; the curve figures (1a, 2a, "
      "2b) plot the mean over the seeds that reached each step, with their "
      "min-max as a band.",
      "", *_scale_text(args.scale), "",
      "## Seeds", "", *_seed_lines(coverage, args.scale), "",
      "## The paper's claims at this scale", "",
      "Each of the paper's qualitative claims, checked against the rows "
      "below by `rethink_jax.experiments.claims` (fitted: at least "
      f"{claims.fit_pct():g}% training accuracy; at chance: within three "
      "standard errors of 1 / classes). " + _noise_text(rows), "",
      *_claims_table(found), "",
      "## Table 1", "", *_table1(rows["table1"]), "",
      _here(found, "random_labels_fitted", "batch_norm_free_fits"), "",
      "## Figure 1a: training loss under each randomization", "",
      f"![Figure 1a]({rel(paths['figure1a'])})", "",
      f"Paper: {report.FIGURE_READINGS['figure1a']}", "",
      _here(found, "figure1a_order"), "",
      *_figure_rows(rows["figure1a"], [
          ("randomization", "randomization"),
          ("steps_to_fit", "steps to fit"), ("epochs", "epochs (cap)"),
          ("final_loss", "final training loss")]), "",
      "## Figure 1b: convergence time against label corruption", "",
      f"![Figure 1b]({rel(paths['figure1b'])})", "",
      f"Paper: {report.FIGURE_READINGS['figure1b']}", "",
      _here(found, "figure1b_factor"), "",
      *_figure_rows(rows["figure1b"], [
          ("model", "model"), ("p", "p"),
          ("steps_to_fit", "steps to fit"),
          ("relative_time", "relative to p = 0"),
          ("epochs", "epochs (cap)")]), "",
      "## Figure 1c: test error after convergence", "",
      f"![Figure 1c]({rel(paths['figure1c'])})", "",
      f"Paper: {report.FIGURE_READINGS['figure1c']}", "",
      _here(found, "figure1c_monotone"), "",
      *_figure_rows(rows["figure1c"], [
          ("model", "model"), ("p", "p"), ("test_error", "test error (%)"),
          ("train", "train accuracy (%)"), ("epochs", "epochs (cap)")]), "",
      "## Figure 2b: the small Inception with and without BatchNorm", "",
      f"![Figure 2b]({rel(paths['figure2b'])})", "",
      f"Paper: {report.FIGURE_READINGS['figure2b']}", "",
      _here(found, "batch_norm_helps"), _best_is_final_text(rows), "",
      *_figure_rows(rows["figure2b"], [
          ("model", "model"), ("final_test_accuracy", "final test (%)"),
          ("best_test_accuracy", "best test (%)"),
          ("epochs", "epochs (cap)")]), "",
      "## Table 4: random labels with an explicit regularizer", "",
      *_table4(rows["table4"]), "",
      _here(found, "regularizers_do_not_prevent_fitting"), "",
      "## Table 2: Inception V3, true and random labels, with and without "
      "regularizers", "",
      ("Paper: ImageNet (ILSVRC 2012), 299x299. Here at the cpu scale: "
       "Imagenette (10 ImageNet classes; ImageNet is not available), "
       f"{suite.CPU_IMAGENET_SIZE}x{suite.CPU_IMAGENET_SIZE}, a "
       f"{suite.CPU_IMAGENET_SCALE.train_examples}-image subset, the "
       "Inception V3 reference protocol (`docs/imagenet.md`): the numbers "
       "are not comparable with the paper's in level, only in pattern."
       if args.scale == "cpu" else
       "ImageNet (ILSVRC 2012), 299x299, the Inception V3 reference "
       "protocol (`docs/imagenet.md`)."), "",
      *_table2(rows["table2"]), "",
      _here(found, "imagenet_random_labels"), "",
      "## Figure 2a: Inception V3's accuracy with and without regularizers",
      "",
      f"![Figure 2a]({rel(paths['figure2a'])})", "",
      f"Paper: {report.FIGURE_READINGS['figure2a']}", "",
      _here(found, "imagenet_regularizers_help"), "",
      *_figure_rows(rows["figure2a"], [
          ("regularizers", "regularizers"),
          ("final_test_accuracy", "final test top-1 (%)"),
          ("best_test_accuracy", "best test top-1 (%)"),
          ("epochs", "epochs (cap)")]), "",
  ]
  if probes:
    lines += _probe_lines(root, probes, figures, plt, meta, paths)
  with open(os.path.join(REPO, page_path(args.scale)), "w") as f:
    f.write("\n".join(lines))
  _readme_block(args.scale, rows)
  print(f"wrote {page_path(args.scale)}, {out} and {len(paths)} figures")


if __name__ == "__main__":
  cli.run_script(main)

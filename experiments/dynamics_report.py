r"""Writes docs/dynamics.md, its figures and the dynamics key of
results/reproduction.json: which training examples are fitted when.

  python experiments/paper.py --experiments=dynamics   # the runs
  python experiments/dynamics_report.py                # this report

Everything comes from the runs' examples.npz and metrics.jsonl under
results/runs/cpu/ (rethink_jax.training.example_log, rethink_jax.dynamics).
Running it twice gives identical files.
"""

import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from rethink_jax import cli  # noqa: E402
from rethink_jax import dynamics  # noqa: E402
from rethink_jax import results  # noqa: E402
from rethink_jax.experiments import claims  # noqa: E402
from rethink_jax.experiments import report  # noqa: E402
from rethink_jax.experiments import suite  # noqa: E402
from rethink_jax.training import example_log  # noqa: E402

SCALE = "cpu"


def load(root: str) -> list[dict]:
  """One row per dynamics run: its keys, status, records and summary."""
  rows = []
  for entry in suite.dynamics(SCALE):
    run = report.load_run(root, entry.config)
    path = os.path.join(run["workdir"], example_log.NAME)
    row = dict(entry.row, status=run["status"],
               run=os.path.relpath(run["workdir"], REPO),
               epochs=len(run["records"]),
               every=entry.config.per_example_every_epochs)
    if run["summary"] is not None and os.path.isfile(path):
      records = example_log.read(path)
      test = {r["epoch"]: r["test_accuracy"] for r in run["records"]}
      row.update(records=records, test=test,
                 summary=dynamics.summary(records, test))
    rows.append(row)
  return rows


def _fmt(value, digits=1) -> str:
  if value is None:
    return "–"
  return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _onset(s) -> str:
  """The fitting onset; "<= e" when it is the first record (it may be
  earlier)."""
  onset = s["corrupted_fitting_onset"]
  if onset == dynamics.NEVER:
    return "never"
  return f"<= {onset}" if onset == s["recorded_epochs"][0] else str(onset)


def _table(rows) -> list[str]:
  lines = ["| model | p | corrupted | median first-learned epoch: clean / "
           "corrupted (gap) | learned for good: clean / corrupted | never "
           "learned (%): clean / corrupted | forgetting events per example: "
           "clean / corrupted | corrupted fitting onset (20%) | test peak "
           "epoch (accuracy %) | final test (%) | epochs |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    name = claims.MODEL_NAMES[r["model"]]
    if "summary" not in r:
      lines.append(f"| {name} | {r['p']:g} | _{r['status']}_ |" + " – |" * 8)
      continue
    s = r["summary"]
    c, k = s["groups"]["clean"], s["groups"]["corrupted"]
    lines.append(
        f"| {name} | {r['p']:g} | {s['corrupted']:,} of {s['examples']:,} | "
        f"{_fmt(c['median_first_learned_epoch'])} / "
        f"{_fmt(k['median_first_learned_epoch'])} "
        f"({_fmt(s['first_learned_gap'])}) | "
        f"{_fmt(c['median_learned_for_good_epoch'])} / "
        f"{_fmt(k['median_learned_for_good_epoch'])} | "
        f"{100 * c['never_learned']:.1f} / {100 * k['never_learned']:.1f} | "
        f"{c['mean_forgetting_events']:.2f} / "
        f"{k['mean_forgetting_events']:.2f} | "
        f"{_onset(s)} | {s['test_peak_epoch']} "
        f"({100 * s['test_accuracy_at_peak']:.2f}) | "
        f"{100 * s['test_accuracy_final']:.2f} | {r['epochs']} |")
  return lines


def _findings(rows) -> list[str]:
  done = [r for r in rows if "summary" in r]
  if not done:
    return ["No run has finished yet."]
  lines = []
  gaps = [r["summary"]["first_learned_gap"] for r in done
          if r["summary"].get("first_learned_gap") is not None]
  later = sum(g > 0 for g in gaps)
  lines.append(
      f"- Clean examples are learned before corrupted ones in {later} of "
      f"{len(gaps)} runs: the corrupted examples' median first-learned "
      f"epoch comes {min(gaps):g} to {max(gaps):g} epochs after the clean "
      "ones' (recorded every "
      + ", ".join(sorted({f"{r['every']} ({claims.MODEL_NAMES[r['model']]})"
                          for r in done})) + " epochs).")
  early = [r for r in done if r["summary"]["corrupted_fitting_onset"] ==
           r["summary"]["recorded_epochs"][0]]
  before = [r for r in done if r not in early and
            r["summary"]["corrupted_fitting_onset"] != dynamics.NEVER and
            r["summary"]["test_peak_epoch"] <=
            r["summary"]["corrupted_fitting_onset"]]
  drops = [100 * (r["summary"]["test_accuracy_at_peak"] -
                  r["summary"]["test_accuracy_final"]) for r in done]
  resolved = len(done) - len(early)
  text = (f"- Test accuracy peaks early and falls by {min(drops):.1f} to "
          f"{max(drops):.1f} points by the end, while the corrupted labels "
          "are memorized.")
  if resolved:
    text += (f" The test peak comes no later than the corrupted examples "
             f"start being fitted (20% of them, twice chance) in {len(before)} of "
             f"{resolved} runs where that onset is resolved.")
  if early:
    text += (f" In {len(early)} run(s) 20% of the corrupted examples are "
             "already fitted at the first record, too sparse to order the "
             "two: " + ", ".join(
                 f"{claims.MODEL_NAMES[r['model']]} p = {r['p']:g}"
                 for r in early) + ".")
  median = [r for r in done if r["summary"]["test_peak_epoch"] <
            (r["summary"]["groups"]["corrupted"]
             ["median_first_learned_epoch"] or float("inf"))]
  text += (f" The test peak comes before the corrupted examples' median "
           f"first-learned epoch in {len(median)} of {len(done)} runs.")
  lines.append(text)
  forgetting = [(r["summary"]["groups"]["clean"]["mean_forgetting_events"],
                 r["summary"]["groups"]["corrupted"]["mean_forgetting_events"])
                for r in done]
  more = sum(b > a for a, b in forgetting)
  lines.append(f"- Corrupted examples are forgotten more often than clean "
               f"ones in {more} of {len(done)} runs.")
  return lines


def _plots(rows, figures) -> list[str]:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  meta = {"Software": None}
  os.makedirs(figures, exist_ok=True)
  lines = []
  for model in suite.DYNAMICS_MODELS:
    mine = [r for r in rows if r["model"] == model]
    done = [r for r in mine if "summary" in r]
    if not done:
      continue
    name = claims.MODEL_NAMES[model]
    fig, axes = plt.subplots(2, len(mine), figsize=(3.3 * len(mine), 6.4),
                             squeeze=False)
    for i, r in enumerate(mine):
      top, bottom = axes[0][i], axes[1][i]
      top.set_title(f"p = {r['p']:g}")
      if "summary" not in r:
        top.text(0.5, 0.5, "not run yet", ha="center",
                 transform=top.transAxes)
        continue
      rec = r["records"]
      by_group = dynamics.accuracy_by_group(rec["correct"], rec["corrupted"])
      top.plot(rec["epochs"], 100 * by_group["clean"], label="clean (train)")
      top.plot(rec["epochs"], 100 * by_group["corrupted"],
               label="corrupted (train, as labelled)")
      epochs = sorted(r["test"])
      top.plot(epochs, [100 * r["test"][e] for e in epochs], "--",
               label="test")
      top.set(xlabel="epoch", ylim=(-2, 102))
      first = dynamics.first_learned_epoch(rec["correct"], rec["epochs"])
      bins = np.append(rec["epochs"], rec["epochs"][-1] + r["every"]) - 0.5
      for label, mask in (("clean", ~rec["corrupted"]),
                          ("corrupted", rec["corrupted"])):
        values = first[mask]
        values = values[values != dynamics.NEVER]
        # Each bin: the fraction of the group first learned at that record.
        bottom.hist(values, bins=bins, alpha=0.6, label=label,
                    weights=np.full(values.shape, 1.0 / max(1, mask.sum())))
      bottom.set(xlabel="first epoch learned")
    axes[0][0].set_ylabel("accuracy (%)")
    axes[1][0].set_ylabel("fraction of examples")
    axes[0][0].legend(fontsize=7)
    axes[1][0].legend(fontsize=7)
    fig.suptitle(f"{name}: clean vs corrupted examples (cpu scale)")
    fig.tight_layout()
    path = os.path.join(figures, f"dynamics_{model}.png")
    fig.savefig(path, dpi=100, metadata=meta)
    plt.close(fig)
    lines += [f"![{name}](figures/{os.path.basename(path)})", ""]
  done = [r for r in rows if "summary" in r]
  if done:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for model in suite.DYNAMICS_MODELS:
      for group, style in (("clean", "-o"), ("corrupted", "--s")):
        points = [(r["p"], r["summary"]["groups"][group]
                   ["mean_forgetting_events"]) for r in done
                  if r["model"] == model and group in r["summary"]["groups"]]
        if points:
          ax.plot(*zip(*points), style,
                  label=f"{claims.MODEL_NAMES[model]}, {group}")
    ax.set(xlabel="label corruption p",
           ylabel="forgetting events per example",
           title="Forgetting events (Toneva et al. 2019)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(figures, "dynamics_forgetting.png")
    fig.savefig(path, dpi=100, metadata=meta)
    plt.close(fig)
    lines += ["![Forgetting events](figures/dynamics_forgetting.png)", ""]
  return lines


def main(argv: list[str]) -> None:
  del argv
  root = os.path.join(REPO, "results", "runs", SCALE)
  rows = load(root)
  figures = os.path.join(REPO, "docs", "figures")
  lines = [
      "# Per-example learning dynamics: clean vs corrupted examples", "",
      "Written by `python experiments/dynamics_report.py` from the runs' "
      "`examples.npz` and `metrics.jsonl` (trained by `python "
      "experiments/paper.py --experiments=dynamics`: the seed-0 Figure "
      "1b/1c runs of MLP 1x512 on all of CIFAR-10 and AlexNet on its "
      "4,096-example subset, label corruption p = "
      + ", ".join(f"{p:g}" for p in suite.DYNAMICS_LEVELS) + ", each "
      "stopping at its first epoch with "
      f"{100 * suite.FIT_THRESHOLD:g}% training accuracy). Beyond the paper: "
      "what Arpit et al. (2017) and Toneva et al. (2019) measure, on the "
      "paper's randomization tests (arXiv 1611.03530, Section 2.1). Each "
      "training example's prediction is recorded in inference mode on the "
      "un-augmented training set under the labels as trained "
      "(`config.per_example_every_epochs`); corrupted = the randomization "
      "changed its label; measures: `rethink_jax.dynamics` (first-learned "
      "epoch, learned for good = correct from then to the end, forgetting "
      "events = correct at one record and wrong at the next).", "",
      "## Findings", "", *_findings(rows), "",
      "## Per run", "", *_table(rows), "",
      "## Clean and corrupted training accuracy, test accuracy, and when "
      "examples are first learned", "", *_plots(rows, figures)]
  with open(os.path.join(REPO, "docs", "dynamics.md"), "w") as f:
    f.write("\n".join(lines))
  out = os.path.join(REPO, "results", "reproduction.json")
  merged = {}
  if os.path.isfile(out):
    with open(out) as f:
      merged = json.load(f)
  merged["dynamics"] = [
      {k: v for k, v in r.items() if k not in ("records", "test")}
      for r in rows]
  results.write(out, merged)
  print(f"wrote docs/dynamics.md and the dynamics key of {out}")


if __name__ == "__main__":
  cli.run_script(main)

"""The paper's tables and figures, measured, from the runs' results files.

:func:`collect` reads the ``summary.json`` and ``metrics.jsonl`` of every
run the suite declares (:mod:`rethink_jax.experiments.suite`) and returns
the rows of ``results/reproduction.json``: per experiment, each row's
identifying keys, the paper's numbers, the measured ones (the mean over
seeds, with the spread when there are several), the scale, the training
examples, the seeds and the runs' workdirs. Rows whose runs are not finished
say so (``status``) and carry no measurement. Nothing here trains.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from typing import Any

import ml_collections

from rethink_jax import paper
from rethink_jax.training import config as config_lib
from rethink_jax.experiments import suite
from rethink_jax.experiments import sweep

# The paper's readings of its figures (Section 3 and the captions), shown
# beside the measured figures.


def _figure2a_reading() -> str:
  """Figure 2a's reading, its numbers from Table 2 (``paper.TABLE2``)."""
  true_rows = {k: v for k, v in paper.TABLE2.items() if not k[-1]}
  without = true_rows[(False, False, False, False)][2]
  with_any = [v[2] for k, v in true_rows.items() if any(k)]
  return ("On ImageNet, the regularizers (data augmentation, weight decay, "
          "dropout) raise test accuracy, but without any of them Inception "
          f"V3 still generalizes far above chance ({without:.2f}% top-1 "
          f"without, {min(with_any):.2f}-{max(with_any):.2f}% with one or "
          "more).")


FIGURE_READINGS = {
    "figure1a": "Every curve reaches about zero loss. True labels converge "
                "fastest, shuffled pixels close behind; random pixels and "
                "Gaussian before random labels, which are slowest (a longer "
                "initial plateau, then fast convergence).",
    "figure1b": "Convergence slows by a small constant factor as the label "
                "corruption p grows (y-axis: time to overfit, relative; "
                "values and normalization unconfirmed, about 1x to 4x from "
                "p = 0 to p = 1 by one reading).",
    "figure1c": "Test error after convergence rises steadily with p, from "
                "each model's clean error (Inception about 14%, AlexNet "
                "about 24%, MLP 1x512 about 50%) to about 90% (chance) at "
                "p = 1; the training error is 0 throughout.",
    "figure2a": _figure2a_reading(),
    "figure2b": "BatchNorm helps test accuracy (the cumulative best test "
                "accuracy curves), but the network without BatchNorm also "
                "generalizes well above chance: implicit regularizers help "
                "but are not the main cause of generalization.",
}


def _pct(x: float | None) -> float | None:
  return None if x is None else round(100.0 * x, 2)


def load_run(root: str, config) -> dict[str, Any]:
  """A run's summary, per-epoch records and status under ``root``."""
  path = sweep.workdir(root, config)
  summary = sweep.read_summary(path)
  records = []
  try:
    with open(os.path.join(path, "metrics.jsonl")) as f:
      records = [json.loads(line) for line in f if line.strip()]
  except (OSError, ValueError):
    pass
  done = summary is not None and config_lib.complete(
      summary.get("config") or {}) == config.to_dict()
  return dict(workdir=path, summary=summary if done else None,
              records=records, status=sweep.status(root, config),
              epochs=len(records), num_epochs=config.num_epochs)


def _mean(values: list[float | None]) -> float | None:
  present = [v for v in values if v is not None]
  return round(statistics.fmean(present), 4) if present else None


def _spread(values: list[float | None]) -> float | None:
  present = [v for v in values if v is not None]
  return round(statistics.stdev(present), 4) if len(present) > 1 else None


def _run_seconds(summary: dict[str, Any]) -> float:
  """A run's share of the machine time: a program's time over its runs."""
  program = summary.get("program") or {}
  return summary["total_time_s"] / program.get("trained_together", 1)


def _measure(experiment: str, run: dict[str, Any]) -> dict[str, Any]:
  """The measured quantities of one finished run, for its experiment."""
  s = run["summary"]
  final = s["final"]
  return dict(_measure_experiment(experiment, s, final),
              epochs=s["epochs_completed"])


def _measure_experiment(experiment: str, s: dict[str, Any],
                        final: dict[str, Any]) -> dict[str, Any]:
  if experiment in ("table1", "table4"):
    return dict(train=_pct(final["train_accuracy"]),
                test=_pct(final["test_accuracy"]))
  if experiment == "figure1a":
    return dict(steps_to_fit=s["steps_to_fit"],
                final_loss=final["train_loss_running"])
  if experiment == "figure1bc":
    return dict(steps_to_fit=s["steps_to_fit"],
                test_error=round(100.0 - 100.0 * final["test_accuracy"], 2),
                train=_pct(final["train_accuracy"]))
  if experiment in ("figure2b", "figure2a"):
    return dict(final_test_accuracy=_pct(final["test_accuracy"]),
                best_test_accuracy=_pct(s["best_test_accuracy"]))
  if experiment == "table2":
    return dict(train_top1=_pct(final["train_accuracy"]),
                train_top5=_pct(final["train_top5_accuracy"]),
                test_top1=_pct(final["test_accuracy"]),
                test_top5=_pct(final["test_top5_accuracy"]),
                best_test_top1=_pct(s["best_test_accuracy"]))
  raise ValueError(experiment)


def _peak_train(records: list[dict[str, Any]]) -> dict[str, Any] | None:
  """The epoch record with the highest training accuracy, if any has one."""
  return max((r for r in records if r.get("train_accuracy") is not None),
             key=lambda r: r["train_accuracy"], default=None)


def _unfitted(run: dict[str, Any], seed: int) -> dict[str, Any] | None:
  """A finished run that stopped at its epoch cap without fitting: its seed,
  epochs, last and best training accuracy (%) and the best's epoch, so a
  row's mean can be read (a run that fitted and then diverged shows a high
  best and a low last accuracy)."""
  s = run["summary"]
  if s.get("steps_to_fit") is not None:
    return None
  peak = _peak_train(run["records"])
  return dict(seed=seed, epochs=s["epochs_completed"],
              train=_pct(s["final"]["train_accuracy"]),
              peak_train=_pct(peak["train_accuracy"]) if peak else None,
              peak_epoch=peak["epoch"] if peak else None)


def _paper(entry: suite.Entry) -> Any:
  row = entry.row
  if entry.experiment == "table1":
    r = paper.table1_row(row["model"], random_crop=row["random_crop"],
                         weight_decay=row["weight_decay"],
                         random_labels=row["random_labels"])
    assert r is not None, row  # Table 1 has every row the suite declares.
    return dict(train=r.train_accuracy, test=r.test_accuracy)
  if entry.experiment == "table4":
    value = paper.TABLE4[(row["model"], row["regularizer"])]
    return dict(train=value, note=None if value is not None else
                "failed to converge")
  if entry.experiment == "table2":
    key = tuple(row[name] for name in suite.TABLE2_SWITCHES)
    train1, train5, test1, test5 = paper.TABLE2[key]
    return dict(train_top1=train1, train_top5=train5, test_top1=test1,
                test_top5=test5,
                best_test_top1=paper.TABLE2_EARLY_STOPPING_TOP1.get(key))
  return None


def collect(scale: str, root: str, repo: str, seeds: int = 1
            ) -> dict[str, list[dict[str, Any]]]:
  """Every experiment's rows for ``scale``, from the runs under ``root``.

  Args:
    scale: ``"cpu"`` or ``"paper"``.
    root: the folder of this scale's workdirs (``results/runs/<scale>``).
    repo: the repository root; workdirs are given relative to it.
    seeds: seeds 0..seeds-1 are looked for in each row; a row shows its
      finished ones (mean and standard deviation) and lists them in
      ``seeds``, and is done when every seed that was started is; its
      finished seeds that never fitted are listed in ``unfitted``.

  Returns:
    ``{"table1": [...], "figure1a": [...], "figure1b": [...],
    "figure1c": [...], "figure2b": [...], "table4": [...], "table2": [...],
    "figure2a": [...]}``.
  """
  groups: dict[tuple[str, tuple], list[suite.Entry]] = {}
  for entry in suite.entries([], scale, seeds):
    key = tuple((k, v) for k, v in entry.row.items() if k != "seed")
    groups.setdefault((entry.experiment, key), []).append(entry)
  out: dict[str, list[dict[str, Any]]] = {
      name: [] for name in ("table1", "figure1a", "figure1b", "figure1c",
                            "figure2b", "table4", "table2", "figure2a")}
  for (experiment, key), members in groups.items():
    runs = [load_run(root, e.config) for e in members]
    finished = [r for r in runs if r["summary"] is not None]
    # Seeds beyond the first that were never started do not hold a row up.
    started = [r for i, r in enumerate(runs)
               if i == 0 or r["status"] != "missing"]
    measured = [_measure(experiment, r) for r in finished]
    base = dict(key)
    config = members[0].config
    row = dict(
        base, paper=_paper(members[0]), scale=scale,
        train_examples=config.train_examples or (
            suite.CIFAR10_TRAIN if config.dataset == "cifar10" else None),
        test_examples=config.test_examples or (
            suite.CIFAR10_TEST if config.dataset == "cifar10" else None),
        num_epochs=config.num_epochs,
        seeds=[e.config.seed for e, r in zip(members, runs)
               if r["summary"] is not None],
        runs=[os.path.relpath(r["workdir"], repo) for r in runs
              if r["summary"] is not None],
        status=("done" if finished and len(started) == len(finished) else
                ", ".join("not run" if r["status"] == "missing" else
                          f"{r['epochs']}/{r['num_epochs']} epochs"
                          for r in (started or runs)
                          if r["summary"] is None)),
        seconds=_mean([_run_seconds(r["summary"]) for r in finished]),
        unfitted=[u for u in (_unfitted(r, e.config.seed)
                              for e, r in zip(members, runs)
                              if r["summary"] is not None) if u])
    if measured:
      row["measured"] = {k: _mean([m[k] for m in measured])
                         for k in measured[0]}
      spread = {k: _spread([m[k] for m in measured]) for k in measured[0]}
      if any(v is not None for v in spread.values()):
        row["spread"] = spread
    else:
      row["measured"] = None
    if experiment == "figure1bc":
      for name, keys in (("figure1b", ("steps_to_fit", "epochs")),
                         ("figure1c", ("test_error", "train", "epochs"))):
        out[name].append(_select(row, keys))
    else:
      out[experiment].append(row)
  _relative_times(out["figure1b"])
  return out


def _select(row: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
  """A copy of ``row`` whose measurements are only ``keys``."""
  out = dict(row)
  for field in ("measured", "spread"):
    if out.get(field) is not None:
      out[field] = {k: out[field][k] for k in keys}
  return out


def _relative_times(rows: list[dict[str, Any]]) -> None:
  """Figure 1b: steps to fit at p over steps at p = 0, per model."""
  at_zero = {r["model"]: r for r in rows if r["p"] == 0.0}
  for row in rows:
    if row["measured"] is None:
      continue
    zero = at_zero[row["model"]]["measured"]
    steps, base = row["measured"]["steps_to_fit"], (
        zero["steps_to_fit"] if zero else None)
    row["measured"] = dict(row["measured"], relative_time=(
        round(steps / base, 3) if steps and base else None))
    spread = (row.get("spread") or {}).get("steps_to_fit")
    if spread is not None and base:
      # The seeds' spread of the steps, on the scale of the mean at p = 0.
      row["spread"] = dict(row["spread"], relative_time=round(spread / base,
                                                              3))


def seed_coverage(scale: str, root: str, seeds: int
                  ) -> list[dict[str, Any]]:
  """Per model: the suite's runs of seeds 0..seeds-1 done and still to run.

  A run to go is priced at the mean training time of its row's finished
  seeds on the machine that ran them (``minutes_to_go``; runs of rows with
  no finished seed are counted in ``unpriced``). Runs that several
  experiments share count once.
  """
  rows: dict[tuple, list[ml_collections.ConfigDict]] = {}
  for entry in suite.entries([], scale, seeds):
    key = (entry.experiment, tuple((k, str(v)) for k, v in entry.row.items()
                                   if k != "seed"))
    rows.setdefault(key, []).append(entry.config)
  runs: dict[str, dict[str, Any]] = {}
  for configs in rows.values():
    loaded = [load_run(root, c) for c in configs]
    times = [_run_seconds(r["summary"]) for r in loaded if r["summary"]]
    price = statistics.fmean(times) if times else None
    for c, r in zip(configs, loaded):
      known = runs.setdefault(sweep.run_name(c), dict(
          model=c.model, done=r["summary"] is not None, seconds=None))
      if not known["done"] and known["seconds"] is None:
        known["seconds"] = price
  out = []
  for model in sorted({r["model"] for r in runs.values()}):
    mine = [r for r in runs.values() if r["model"] == model]
    to_go = [r for r in mine if not r["done"]]
    out.append(dict(
        model=model, scale=scale, seeds=seeds,
        done=len(mine) - len(to_go), to_go=len(to_go),
        minutes_to_go=round(sum(r["seconds"] or 0.0 for r in to_go) / 60, 1),
        unpriced=sum(r["seconds"] is None for r in to_go)))
  return out


def collect_probes(root: str, repo: str, seeds: int = 1
                   ) -> dict[str, list[dict[str, Any]]]:
  """The cpu-scale probes' rows (``suite.PROBES``), finished or not.

  Each row: the probe's keys, the run's status, epochs run, the last
  evaluated training and test accuracy, the best training accuracy and the
  steps to fit (None if it has not fitted), from its metrics.jsonl. Seeds
  1..seeds-1 appear once started.
  """
  out: dict[str, list[dict[str, Any]]] = {}
  for name, declare in suite.PROBES.items():
    rows = []
    for entry in declare("cpu", seeds):
      run = load_run(root, entry.config)
      if entry.row["seed"] > 0 and run["status"] == "missing":
        continue
      records = run["records"]
      evaluated = [r for r in records if r.get("train_accuracy") is not None]
      last = evaluated[-1] if evaluated else {}
      fitted = [r["step"] for r in evaluated
                if r["train_accuracy"] >= entry.config.fit_threshold]
      rows.append(dict(
          entry.row, status=run["status"], epochs=len(records),
          num_epochs=entry.config.num_epochs,
          train_examples=entry.config.train_examples,
          steps_per_epoch=entry.config.train_examples
          // entry.config.batch_size,
          train=_pct(last.get("train_accuracy")),
          test=_pct(last.get("test_accuracy")),
          best_train=_pct((_peak_train(records) or {}).get(
              "train_accuracy")),
          steps_to_fit=fitted[0] if fitted else None,
          minutes=(round(_run_seconds(run["summary"]) / 60, 1)
                   if run["summary"] is not None else None),
          run=os.path.relpath(run["workdir"], repo)))
    out[name] = rows
  return out


def figure1a_scale(probe_rows: list[dict[str, Any]]
                   ) -> list[dict[str, Any]]:
  """Figure 1a's order per probed training-set size, over the seeds run.

  Per n with a finished true-label run: the mean and standard deviation of
  each finished randomization's steps to fit (``inf`` if a seed never
  fitted) and the noise, the larger of one epoch (steps to fit are measured
  once an epoch) and twice the largest standard deviation. With random
  labels finished too: their mean minus the true labels' in epochs
  (``margin``) and ``shown``, whether random labels take longer than true
  labels beyond the noise (else both None). ``faster_than_true``: the
  randomizations fitted faster than true labels beyond the noise. ``order``: Figure 1a's whole
  order beyond the noise, true labels fastest and random labels slowest of
  all :data:`suite.FIGURE1A_RANDOMIZATIONS`; False as soon as a finished run
  breaks it (one faster than true labels, or slower than random labels,
  beyond the noise), None while unfinished runs could still decide it.
  """
  by_n: dict[int, dict[str, list[dict[str, Any]]]] = {}
  for r in probe_rows:
    if r["status"] == "done":
      by_n.setdefault(r["n"], {}).setdefault(r["randomization"], []).append(r)
  out = []
  for n, runs in sorted(by_n.items()):
    if "true_labels" not in runs:
      continue
    per_epoch = runs["true_labels"][0]["steps_per_epoch"]
    row: dict[str, Any] = dict(n=n, steps_per_epoch=per_epoch)
    for name, rs in runs.items():
      steps = [float(r["steps_to_fit"]) if r["steps_to_fit"] is not None
               else math.inf for r in rs]
      row[name] = dict(mean=statistics.fmean(steps), seeds=len(steps),
                       sd=statistics.stdev(steps) if len(steps) > 1 and
                       all(map(math.isfinite, steps)) else None)
    means = {name: row[name]["mean"] for name in runs}
    true, rand = means["true_labels"], means.get("random_labels")
    row["noise"] = max(1.0, 2 * max(row[name]["sd"] or 0.0 for name in runs)
                       / per_epoch)
    noise = row["noise"] * per_epoch
    row["margin"] = None if rand is None else (rand - true) / per_epoch
    row["shown"] = None if rand is None else row["margin"] > row["noise"]
    row["faster_than_true"] = [k for k, m in means.items()
                               if true - m > noise]
    broken = bool(row["faster_than_true"]) or (
        rand is not None and any(m - rand > noise for m in means.values()))
    if broken:
      row["order"] = False
    elif set(suite.FIGURE1A_RANDOMIZATIONS) <= set(runs):
      row["order"] = (all(m - true > noise for k, m in means.items()
                          if k != "true_labels") and
                      all(rand - m > noise for k, m in means.items()
                          if k != "random_labels"))
    else:
      row["order"] = None
    out.append(row)
  return out


def figure_series(scale: str, root: str, experiment: str, seeds: int = 1
                  ) -> list[tuple[dict[str, Any], list[list[dict[str, Any]]]]]:
  """``(curve keys, [per-epoch records of each seed's run])`` per curve.

  Seeds 0..seeds-1 are looked for; runs with no record yet are left out.
  """
  groups: dict[tuple, list[list[dict[str, Any]]]] = {}
  for entry in suite.EXPERIMENTS[experiment](scale, seeds):
    key = tuple((k, v) for k, v in entry.row.items() if k != "seed")
    groups.setdefault(key, [])
    records = load_run(root, entry.config)["records"]
    if records:
      groups[key].append(records)
  return [(dict(key), runs) for key, runs in groups.items()]


def band(runs: list[list[dict[str, Any]]], key: str, factor: float = 1.0
         ) -> tuple[list[int], list[float], list[float], list[float]]:
  """A curve over seeds: per step, the mean, min and max of ``key``.

  Runs that stop early (``stop_when_fitted``) have no records after their
  last epoch; each step averages the runs that reached it.
  """
  by_step: dict[int, list[float]] = {}
  for records in runs:
    for r in records:
      by_step.setdefault(r["step"], []).append(factor * r[key])
  steps = sorted(by_step)
  return (steps, [statistics.fmean(by_step[s]) for s in steps],
          [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps])

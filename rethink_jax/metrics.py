"""Per-epoch metrics: computing them, the JSON-lines log and the progress bar.

Each epoch appends one line to ``workdir/metrics.jsonl`` with the quantities
of Figure 1 (training loss, convergence), Figure 2 (train and test accuracy,
cumulative best test accuracy) and Table 1 (final accuracies), plus the
accuracy on the corrupted and on the clean training examples separately.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

import numpy as np
import tqdm


def _ratio(numerator: float, denominator: float) -> float | None:
  return None if denominator == 0 else float(numerator) / float(denominator)


def from_eval_sums(sums: dict[str, Any], prefix: str) -> dict[str, Any]:
  """Turns evaluation sums into loss and accuracies.

  Args:
    sums: host copy of the sums of :func:`rethink_jax.steps.eval_batch`.
    prefix: ``"train"`` or ``"test"``.

  Returns:
    ``{prefix}_examples`` (examples evaluated), ``{prefix}_loss``,
    ``{prefix}_accuracy`` (w.r.t. the labels as trained)
    and ``{prefix}_top5_accuracy``; for ``"train"`` also
    ``train_true_label_accuracy``, ``corrupted_accuracy`` and
    ``clean_accuracy`` (accuracy w.r.t. the labels as trained on the examples
    whose label was / was not changed; None when that subset is empty).
  """
  n = int(sums["examples"])
  out = {
      f"{prefix}_examples": n,
      f"{prefix}_loss": _ratio(float(sums["loss"]), n),
      f"{prefix}_accuracy": _ratio(int(sums["correct"]), n),
      f"{prefix}_top5_accuracy": _ratio(int(sums["top5_correct"]), n),
  }
  if prefix == "train":
    corrupted = int(sums["corrupted"])
    corrupted_correct = int(sums["corrupted_correct"])
    out.update(
        train_true_label_accuracy=_ratio(int(sums["true_correct"]), n),
        corrupted_accuracy=_ratio(corrupted_correct, corrupted),
        clean_accuracy=_ratio(int(sums["correct"]) - corrupted_correct,
                              n - corrupted),
        corrupted_examples=corrupted)
  return out


def from_running_sums(sums: dict[str, Any]) -> dict[str, Any]:
  """Mean loss, accuracy and gradient norm of the epoch's training steps."""
  steps = int(sums["steps"])
  return dict(
      train_loss_running=_ratio(float(sums["loss"]), steps),
      train_accuracy_running=_ratio(int(sums["correct"]),
                                    int(sums["examples"])),
      grad_norm=_ratio(float(sums["grad_norm"]), steps))


def json_safe(value: Any) -> Any:
  """A JSON-ready copy: NaN/inf become None, numpy scalars Python numbers."""
  if isinstance(value, dict):
    return {k: json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def write_json(path: str, record: dict[str, Any]) -> None:
  """Writes a JSON file atomically (write, then rename)."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(json_safe(record), f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(tmp, path)


class MetricsLog:
  """``workdir/metrics.jsonl``: one JSON object per completed epoch."""

  def __init__(self, workdir: str, *, completed_epochs: int, writer: bool):
    """Opens the log of a run that has ``completed_epochs`` checkpointed.

    Lines of later epochs (written after the last checkpoint of a run that
    was then stopped) are dropped, so a resumed run never duplicates an
    epoch.

    Args:
      workdir: the run's working directory.
      completed_epochs: epochs done by the restored state (0 if fresh).
      writer: whether this process writes (process 0 of a multi-host run).
    """
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.writer = writer
    self.records: list[dict[str, Any]] = []
    if os.path.exists(self.path):
      with open(self.path) as f:
        for line in f:
          if line.strip():
            record = json.loads(line)
            if record["epoch"] <= completed_epochs:
              self.records.append(record)
    if writer:
      with open(self.path, "w") as f:
        for record in self.records:
          f.write(json.dumps(record, sort_keys=True) + "\n")

  def write(self, record: dict[str, Any]) -> None:
    """Appends one epoch's record."""
    record = json_safe(record)
    self.records.append(record)
    if self.writer:
      with open(self.path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def show_progress(setting: str) -> bool:
  """Whether to draw a progress bar: ``"on"``, ``"off"`` or ``"auto"``.

  ``"auto"`` draws it on an interactive terminal only, never under CI (the
  ``CI`` environment variable) or when stderr is a file or pipe.
  """
  if setting == "auto":
    return sys.stderr.isatty() and not os.environ.get("CI")
  return setting == "on"


def progress_bar(setting: str, *, total: int, initial: int) -> tqdm.tqdm:
  """A tqdm bar over training steps with an ETA (disabled when quiet)."""
  return tqdm.tqdm(total=total, initial=initial, unit="step",
                   disable=not show_progress(setting), dynamic_ncols=True,
                   file=sys.stderr)

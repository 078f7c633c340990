"""Per-epoch metrics: computing them, their log, log line and progress bar.

Each epoch appends one line to ``workdir/metrics.jsonl`` with the quantities
of Figure 1 (training loss, convergence), Figure 2 (train and test accuracy,
cumulative best test accuracy) and Table 1 (final accuracies), plus the
accuracy on the corrupted and on the clean training examples separately.
The same numbers go to a TensorBoard event file beside it
(:mod:`rethink_jax.event_file`) and, in brief, to one absl INFO line.
"""

from __future__ import annotations

import errno
import json
import math
import os
import sys
from typing import Any

import numpy as np
import tqdm

from rethink_jax.training import event_file
from rethink_jax.training import workdir

LOG_NAME = "metrics.jsonl"


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
  """Writes a JSON file atomically (see :func:`rethink_jax.workdir.write_json`)."""
  workdir.write_json(path, json_safe(record))


class MetricsLog:
  """``workdir/metrics.jsonl``: one JSON object per completed epoch.

  The records of the epochs a checkpoint covers are also stored in that
  checkpoint (:mod:`rethink_jax.checkpoint`), so the log can always be
  rebuilt from it: at start-up the file is rewritten atomically from the
  restored records, which drops the lines of epochs after the checkpoint and
  repairs a line torn by a kill or a full disk. Each new line is appended in
  one write and flushed to disk before the epoch's checkpoint is saved. The
  TensorBoard event file beside it is rebuilt and appended the same way.
  """

  def __init__(self, path: str, records: list[dict[str, Any]], *,
               writer: bool, events: bool = True):
    """Starts the log from the records of the restored checkpoint.

    Args:
      path: the log file (``workdir/metrics.jsonl``).
      records: the per-epoch records of the restored run ([] if fresh).
      writer: whether this process writes (process 0 of a multi-host run).
      events: also write a TensorBoard event file beside the log.
    """
    self.path = path
    self.writer = writer
    self.records = [json_safe(r) for r in records]
    self.events = None
    if writer:
      workdir.write_lines(path, (json.dumps(r, sort_keys=True)
                                 for r in self.records))
      if events:
        try:
          self.events = event_file.EventFile(os.path.dirname(path) or ".",
                                             self.records)
        except OSError as e:
          raise workdir.os_error(e, os.path.dirname(path),
                                 "write the TensorBoard event file in",
                                 "Free disk space and run again.") from e

  def write(self, record: dict[str, Any]) -> None:
    """Appends one epoch's record.

    Raises:
      workdir.WorkdirError: the line could not be written (e.g. a full
        disk); the run can be resumed from its last checkpoint.
    """
    record = json_safe(record)
    self.records.append(record)
    if not self.writer:
      return
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    try:
      fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
      try:
        written = os.write(fd, line)
        os.fsync(fd)
      finally:
        os.close(fd)
      if written != len(line):
        raise OSError(errno.ENOSPC, "short write")
      if self.events is not None:
        self.events.write(record)
    except OSError as e:
      raise workdir.os_error(
          e, self.path, f"append epoch {record.get('epoch')} to",
          "Free disk space and run the same command again: it resumes from "
          "the last checkpoint and repairs the log.") from e


def duration(seconds: float) -> str:
  """``"42s"``, ``"6m31s"`` or ``"2h05m"``."""
  seconds = int(round(seconds))
  if seconds >= 3600:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
  if seconds >= 60:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds}s"


def _percent(value: float | None) -> str:
  return "n/a" if value is None else f"{100 * value:.2f}%"


def epoch_line(record: dict[str, Any], num_epochs: int,
               eta_s: float | None) -> str:
  """The one log line of an epoch, e.g.

  ``epoch 3/50  step 240  loss 1.8342  train 41.20%  test 38.75%
  lr 0.0902  1,240 img/s  ETA 6m31s``

  ``loss`` is the training loss of the evaluation pass (labels as trained),
  ``train`` / ``test`` the accuracies; the ETA assumes every remaining
  epoch runs (a run that stops when it fits ends sooner).
  """
  loss = record.get("train_loss")
  parts = [f"epoch {record['epoch']}/{num_epochs}",
           f"step {record['step']}",
           f"loss {'n/a' if loss is None else f'{loss:.4f}'}",
           f"train {_percent(record.get('train_accuracy'))}",
           f"test {_percent(record.get('test_accuracy'))}",
           f"lr {record['learning_rate']:.4g}",
           f"{record.get('images_per_second') or 0:,.0f} img/s"]
  if eta_s is not None:
    parts.append(f"ETA {duration(eta_s)}")
  return "  ".join(parts)


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

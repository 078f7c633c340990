"""Per-example learning dynamics: which training examples are fitted when.

With ``config.per_example_every_epochs = k`` the trainer evaluates the
un-augmented training set in inference mode every k-th epoch (and at the
epoch a run ends on) and records, for every example under the labels as
trained, whether it is predicted as labelled and its margin (the label's
logit minus the largest other logit). The records live beside metrics.jsonl
in ``examples.npz``:

* ``epochs``: int32 [E], the recorded epochs;
* ``correct``: uint8 [E, ceil(n / 8)], ``np.packbits`` of each epoch's
  correctness (:func:`read` unpacks it);
* ``margin``: int8 [E, n], the margin in steps of :data:`MARGIN_STEP`,
  clipped to +-127 steps;
* ``corrupted``: uint8 [ceil(n / 8)], packed, whether the example's label
  was changed by the randomization (Section 2.1);
* ``example_ids``: int64 [n], each example's index in the full split.

50,000 examples over 100 recorded epochs take about 5 MB. The file is
rewritten whole and atomically at each recorded epoch; on resume the epochs
after the restored checkpoint (and a previous end off the cadence) are
dropped and recomputed, so an interrupted or extended run's file ends
bit-identical to an uninterrupted one's. Measures derived
from it: :mod:`rethink_jax.dynamics`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

NAME = "examples.npz"
MARGIN_STEP = 0.125


def quantize(margin: np.ndarray) -> np.ndarray:
  """Margins as int8 steps of :data:`MARGIN_STEP`, clipped to +-127."""
  steps = np.round(np.asarray(margin, np.float32) / MARGIN_STEP)
  return np.clip(steps, -127, 127).astype(np.int8)


def read(path: str) -> dict[str, np.ndarray]:
  """A run's records, unpacked: ``epochs`` [E], ``correct`` bool [E, n],
  ``margin`` float32 [E, n], ``corrupted`` bool [n], ``example_ids`` [n].

  Args:
    path: the run's workdir or its examples.npz.
  """
  if os.path.isdir(path):
    path = os.path.join(path, NAME)
  with np.load(path) as f:
    n = f["example_ids"].shape[0]
    return dict(
        epochs=f["epochs"].astype(np.int32),
        correct=np.unpackbits(f["correct"], axis=-1, count=n).astype(bool),
        margin=f["margin"].astype(np.float32) * MARGIN_STEP,
        corrupted=np.unpackbits(f["corrupted"], count=n).astype(bool),
        example_ids=f["example_ids"].astype(np.int64))


class ExampleLog:
  """The examples.npz of one run: loaded on resume, appended per epoch."""

  def __init__(self, workdir: str, *, example_ids: np.ndarray,
               corrupted: np.ndarray, every: int, resume_epoch: int,
               writer: bool = True):
    self.path = os.path.join(workdir, NAME)
    self.writer = writer
    self.example_ids = np.asarray(example_ids, np.int64)
    self.corrupted = np.packbits(np.asarray(corrupted, bool))
    self.epochs: list[int] = []
    self.correct: list[np.ndarray] = []
    self.margin: list[np.ndarray] = []
    if os.path.isfile(self.path):
      with np.load(self.path) as f:
        if not np.array_equal(f["example_ids"], self.example_ids):
          raise ValueError(
              f"{self.path} records other examples than this run trains on; "
              "it belongs to another run (delete it or use another workdir).")
        # Epochs after the checkpoint are recomputed; a run's last epoch
        # off the cadence was recorded as its end, which it no longer is.
        keep = (f["epochs"] <= resume_epoch) & (f["epochs"] % every == 0)
        self.epochs = [int(e) for e in f["epochs"][keep]]
        self.correct = list(f["correct"][keep])
        self.margin = list(f["margin"][keep])

  def record(self, epoch: int, correct: np.ndarray, margin: np.ndarray
             ) -> None:
    """Adds an epoch's outcomes and rewrites the file atomically."""
    if self.epochs and epoch <= self.epochs[-1]:
      raise ValueError(f"epoch {epoch} is already recorded in {self.path}.")
    self.epochs.append(int(epoch))
    self.correct.append(np.packbits(np.asarray(correct, bool)))
    self.margin.append(quantize(margin))
    if not self.writer:
      return
    n = self.example_ids.shape[0]
    arrays: dict[str, Any] = dict(
        epochs=np.asarray(self.epochs, np.int32),
        correct=np.stack(self.correct).reshape(len(self.epochs), -1),
        margin=np.stack(self.margin).reshape(len(self.epochs), n),
        corrupted=self.corrupted, example_ids=self.example_ids)
    tmp = f"{self.path}.tmp"
    with open(tmp, "wb") as f:
      np.savez_compressed(f, **arrays)
    os.replace(tmp, self.path)


def due(config: Any, epoch: int, stopping: bool) -> bool:
  """Whether epoch ``epoch`` (1-based) is recorded: every
  ``per_example_every_epochs``-th epoch and the epoch a run ends on."""
  every = config.per_example_every_epochs
  return bool(every) and (epoch % every == 0 or stopping)

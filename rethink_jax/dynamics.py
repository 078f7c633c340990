"""Measures of per-example learning dynamics (beyond the paper, Section 2).

Under partial label corruption a network fits the clean examples first and
memorizes the corrupted ones later, while its test accuracy peaks early
(Arpit et al. 2017, "A closer look at memorization in deep networks");
examples are also forgotten and relearned (Toneva et al. 2019). These are
pure functions of a run's per-example records
(:func:`rethink_jax.training.example_log.read`): ``correct`` bool [E, n]
(example i predicted as labelled at the e-th recorded epoch, labels as
trained), ``epochs`` int [E] (the recorded epochs, increasing) and
``corrupted`` bool [n] (the randomization changed its label).

Example::

  from rethink_jax import dynamics
  from rethink_jax.training import example_log
  r = example_log.read("/tmp/run")
  first = dynamics.first_learned_epoch(r["correct"], r["epochs"])
  dynamics.summary(r, test_accuracy={1: 0.31, 2: 0.35, ...})
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

NEVER = -1


def first_learned_epoch(correct: np.ndarray, epochs: np.ndarray
                        ) -> np.ndarray:
  """The first recorded epoch at which each example is correct, or
  :data:`NEVER`."""
  correct = np.asarray(correct, bool)
  seen = correct.any(axis=0)
  return np.where(seen, np.asarray(epochs)[np.argmax(correct, axis=0)],
                  NEVER)


def learned_for_good_epoch(correct: np.ndarray, epochs: np.ndarray
                           ) -> np.ndarray:
  """The recorded epoch from which each example stays correct to the last
  record ("learned and never forgotten"), or :data:`NEVER` if it is wrong
  at the last one."""
  correct = np.asarray(correct, bool)
  # Index of the last wrong record; the example is learned for good one
  # record later.
  wrong = ~correct
  last_wrong = np.where(wrong.any(axis=0),
                        correct.shape[0] - 1 - np.argmax(wrong[::-1], axis=0),
                        -1)
  start = last_wrong + 1
  return np.where(start < correct.shape[0],
                  np.asarray(epochs)[np.minimum(start, correct.shape[0] - 1)],
                  NEVER)


def forgetting_events(correct: np.ndarray) -> np.ndarray:
  """Toneva et al.'s forgetting events per example: the number of times it
  is correct at one record and wrong at the next."""
  correct = np.asarray(correct, bool)
  return np.sum(correct[:-1] & ~correct[1:], axis=0).astype(np.int32)


def accuracy_by_group(correct: np.ndarray, corrupted: np.ndarray
                      ) -> dict[str, np.ndarray]:
  """Per record, the fraction of clean and of corrupted examples predicted
  as labelled (NaN for an empty group)."""
  correct = np.asarray(correct, bool)
  corrupted = np.asarray(corrupted, bool)
  out = {}
  for name, mask in (("clean", ~corrupted), ("corrupted", corrupted)):
    out[name] = (correct[:, mask].mean(axis=1) if mask.any() else
                 np.full(correct.shape[0], np.nan))
  return out


def fitting_onset(correct: np.ndarray, epochs: np.ndarray,
                  corrupted: np.ndarray, fraction: float = 0.2) -> int:
  """The first recorded epoch at which at least ``fraction`` of the
  corrupted examples are predicted as (mis)labelled, or :data:`NEVER`.

  A network that predicts the true class gets none of them, and one that
  guesses gets about 1 / classes (10% on CIFAR-10); 20%, the default,
  twice that, marks the start of their memorization.
  """
  accuracy = accuracy_by_group(correct, corrupted)["corrupted"]
  hits = np.flatnonzero(accuracy >= fraction)
  return int(np.asarray(epochs)[hits[0]]) if hits.size else NEVER


def peak_epoch(test_accuracy: Mapping[int, float]) -> int:
  """The epoch of the highest test accuracy (the first, on ties)."""
  if not test_accuracy:
    return NEVER
  return max(sorted(test_accuracy), key=lambda e: test_accuracy[e])


def _median(values: np.ndarray) -> float | None:
  values = values[values != NEVER]
  return float(np.median(values)) if values.size else None


def summary(records: Mapping[str, np.ndarray],
            test_accuracy: Mapping[int, float] | None = None
            ) -> dict[str, Any]:
  """The measures of one run, clean against corrupted examples.

  Args:
    records: :func:`rethink_jax.training.example_log.read`'s output.
    test_accuracy: epoch -> test accuracy (from metrics.jsonl), for the
      test accuracy's peak against the corrupted examples' fitting onset.

  Returns:
    A JSON-ready dict: examples and corrupted count; per group (``clean``,
    ``corrupted``) the median first-learned and learned-for-good epochs, the
    fraction never learned, the mean forgetting events and the final
    accuracy; ``first_learned_gap`` (median corrupted minus clean, in
    epochs); ``corrupted_fitting_onset``; ``test_peak_epoch`` and the test
    accuracy at the peak and at the last epoch.
  """
  correct, epochs = records["correct"], records["epochs"]
  corrupted = np.asarray(records["corrupted"], bool)
  first = first_learned_epoch(correct, epochs)
  for_good = learned_for_good_epoch(correct, epochs)
  forgotten = forgetting_events(correct)
  groups = {}
  for name, mask in (("clean", ~corrupted), ("corrupted", corrupted)):
    if not mask.any():
      continue
    groups[name] = dict(
        examples=int(mask.sum()),
        median_first_learned_epoch=_median(first[mask]),
        median_learned_for_good_epoch=_median(for_good[mask]),
        never_learned=float(np.mean(first[mask] == NEVER)),
        mean_forgetting_events=float(forgotten[mask].mean()),
        final_accuracy=float(correct[-1, mask].mean()))
  out: dict[str, Any] = dict(examples=int(corrupted.size),
                             corrupted=int(corrupted.sum()),
                             recorded_epochs=[int(e) for e in epochs],
                             groups=groups)
  if "clean" in groups and "corrupted" in groups:
    a = groups["clean"]["median_first_learned_epoch"]
    b = groups["corrupted"]["median_first_learned_epoch"]
    out["first_learned_gap"] = None if a is None or b is None else b - a
    out["corrupted_fitting_onset"] = fitting_onset(correct, epochs,
                                                   corrupted)
  if test_accuracy:
    peak = peak_epoch(test_accuracy)
    out.update(test_peak_epoch=peak,
               test_accuracy_at_peak=float(test_accuracy[peak]),
               test_accuracy_final=float(
                   test_accuracy[max(test_accuracy)]))
  return out

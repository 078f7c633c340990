"""Empirical Rademacher complexity by fitting random signs (paper Section 2.2).

Eq. 1 of the paper:

    R_n(H) = E_sigma [ sup_{h in H} (1/n) sum_i sigma_i h(x_i) ],

sigma_i i.i.d. uniform in {-1, +1}. For classifiers ``h(x) in {-1, +1}``,
``(1/n) sum_i sigma_i h(x_i) = 2 acc - 1`` where ``acc`` is h's accuracy on
the labels sigma, so a class that fits every random labelling has
``R_n = 1``: the randomization test of Section 2.1 is exactly an estimate of
R_n, and a network that fits random labels makes the Rademacher bound
vacuous.

The supremum is not computable; it is approximated from below by *training*
a member of H on the labels ``(sigma + 1) / 2`` (a 2-class problem). For a
network, :func:`network_correlation` runs the project's trainer
(``rethink_jax.train.train_and_evaluate``); for a linear classifier on k
features, :func:`least_squares_correlation` fits ``sigma`` by least squares
and takes the sign, a lower bound on the supremum over linear classifiers
(maximizing the 0-1 correlation exactly is NP-hard).
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any

import jax
import ml_collections
import numpy as np

from rethink_jax.data.dataset import ArrayDataset, from_arrays


def rademacher_signs(key: jax.Array, num_draws: int, n: int) -> np.ndarray:
  """``(num_draws, n)`` i.i.d. uniform signs, draw t from ``fold_in(key, t)``.

  Args:
    key: JAX PRNG key.
    num_draws: number of independent sign vectors sigma.
    n: sample size.

  Returns:
    int8 array of -1 / +1.
  """
  rows = [np.asarray(jax.random.rademacher(jax.random.fold_in(key, t), (n,),
                                           dtype=np.int8))
          for t in range(num_draws)]
  return np.stack(rows) if rows else np.zeros((0, n), np.int8)


def signs_to_labels(sigma) -> np.ndarray:
  """``{-1, +1}`` to the class ids ``{0, 1}`` of a 2-class problem."""
  return ((np.asarray(sigma) + 1) // 2).astype(np.int32)


def correlation(sigma, predictions) -> float:
  """``(1/n) sum_i sigma_i h(x_i)`` for predictions ``h(x_i)`` in {-1, +1}."""
  sigma = np.asarray(sigma, np.float64)
  predictions = np.asarray(predictions, np.float64)
  if sigma.shape != predictions.shape:
    raise ValueError(f"sigma and predictions must have the same shape; got "
                     f"{sigma.shape} and {predictions.shape}.")
  return float(np.mean(sigma * predictions))


def correlation_from_accuracy(accuracy: float) -> float:
  """``2 acc - 1``: the correlation of a +-1 classifier with accuracy acc."""
  return 2.0 * float(accuracy) - 1.0


@dataclasses.dataclass(frozen=True)
class Estimate:
  """A Monte-Carlo estimate of R_n(H) over draws of sigma.

  Attributes:
    mean: average over draws of the (approximate) supremum correlation.
    std: standard deviation over draws.
    correlations: one per draw.
  """

  mean: float
  std: float
  correlations: tuple[float, ...]


def estimate(correlations) -> Estimate:
  """Mean and standard deviation of per-draw correlations."""
  values = tuple(float(c) for c in correlations)
  if not values:
    raise ValueError("need at least one draw of sigma.")
  return Estimate(mean=float(np.mean(values)), std=float(np.std(values)),
                  correlations=values)


def least_squares_correlation(features, sigma, *, bias: bool = True) -> float:
  """Correlation of ``sign(features w + b)`` with w, b the least-squares fit.

  Args:
    features: ``(n, k)`` inputs of the linear classifier.
    sigma: ``(n,)`` signs.
    bias: include an intercept.

  Returns:
    ``(1/n) sum_i sigma_i sign(f(x_i))`` (a lower bound on the supremum over
    linear classifiers on these features); 1.0 whenever the least-squares
    system is solvable exactly (k + bias >= n, general position).
  """
  features = np.asarray(features, np.float64)
  sigma = np.asarray(sigma, np.float64)
  if bias:
    features = np.concatenate([features, np.ones((features.shape[0], 1))],
                              axis=1)
  w, *_ = np.linalg.lstsq(features, sigma, rcond=None)
  predictions = np.where(features @ w >= 0, 1.0, -1.0)
  return correlation(sigma, predictions)


def sign_dataset(images, sigma, name: str = "rademacher") -> ArrayDataset:
  """The images with class ids ``(sigma + 1) / 2`` as a 2-class data set."""
  return from_arrays(images, signs_to_labels(sigma), num_classes=2,
                     name=name, split="train")


def network_correlation(config: ml_collections.ConfigDict, images, sigma,
                        test_images, *, workdir: str | None = None
                        ) -> tuple[float, dict[str, Any]]:
  """Trains ``config.model`` on the signs and returns its correlation.

  The network is trained by ``rethink_jax.train.train_and_evaluate`` on the
  2-class problem ``(sigma + 1) / 2`` (``config.dataset`` must be
  ``"arrays"``; labels are used as given, so ``config.randomization`` must be
  ``"true_labels"``); its final training accuracy ``acc`` on those labels
  gives the correlation ``2 acc - 1`` of ``h(x) = 2 argmax - 1`` with sigma.

  Args:
    config: a training config (see :mod:`rethink_jax.config`).
    images: ``(n, H, W, C)`` uint8 images.
    sigma: ``(n,)`` signs.
    test_images: a few images for the trainer's (unused here) test pass;
      their labels are set to 0.
    workdir: where the trainer writes; a temporary directory by default.

  Returns:
    ``(correlation, trainer summary)``.
  """
  from rethink_jax.training import train  # pylint: disable=g-import-not-at-top
  train_set = sign_dataset(images, sigma)
  test_set = from_arrays(test_images, np.zeros(len(test_images), np.int32),
                         num_classes=2, name="rademacher", split="test")
  if workdir is None:
    with tempfile.TemporaryDirectory() as tmp:
      summary = train.train_and_evaluate(config, tmp, train_set, test_set)
  else:
    summary = train.train_and_evaluate(config, workdir, train_set, test_set)
  accuracy = summary["final"]["train_accuracy"]
  return correlation_from_accuracy(accuracy), summary

"""Label randomizations of Section 2.1: true, partially corrupted, random.

Each training label independently, with probability p, is replaced by a
class drawn uniformly from all K classes (:func:`corrupt_labels`); random
labels are p = 1 and the true labels p = 0. The draw of example ``i`` is a
function of ``fold_in(key, i)`` only, so streamed data get the same labels.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from rethink_jax.corruption import draws
from rethink_jax.corruption import registry


def check_probability(p) -> float:
  """``p`` as a float in [0, 1]; ValueError naming the problem otherwise."""
  if isinstance(p, bool) or not isinstance(p, numbers.Real):
    raise ValueError(f"p must be a real number in [0, 1]; got {p!r}.")
  p = float(p)
  if not math.isfinite(p) or not 0.0 <= p <= 1.0:
    raise ValueError(f"p must be a corruption probability in [0, 1]; got "
                     f"{p!r}. Use p=1 for random labels and p=0 for the true "
                     f"labels.")
  return float(p)


@jax.jit
def _label_draws(key: jax.Array, indices: jax.Array, p: jax.Array,
                 num_classes: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per example: (replace?, uniform class), from fold_in(key, index)."""

  def one(index):
    k_replace, k_class = jax.random.split(jax.random.fold_in(key, index))
    replace = jax.random.uniform(k_replace, ()) < p
    new_class = jax.random.randint(k_class, (), 0, num_classes, jnp.int32)
    return replace, new_class

  return jax.vmap(one)(indices)


def corrupt_labels(key, labels, p: float, num_classes: int,
                   indices=None) -> tuple[np.ndarray, np.ndarray]:
  """Partially corrupted labels, Section 2.1 ("random labels" when p = 1).

  Each label independently, with probability ``p``, is replaced by a class
  drawn uniformly at random from **all** ``num_classes`` classes, so it may
  equal the original label: the expected fraction of changed labels is
  ``(1 - 1/K) p`` (Section 2.1; the first author's demo code does the
  same). The draw for example ``i`` uses ``jax.random.fold_in(key, i)`` only
  and does not look at the label, so the new label is independent of the
  true one (no fixed class permutation).

  For one key, the corruption levels are coupled: example ``i`` is replaced
  at level p iff its uniform draw ``u_i < p``, and the replacement class does
  not depend on p. Hence the set corrupted at p1 < p2 is a subset of the set
  corrupted at p2, and ``p = 1`` gives the random labels of the same key.

  Args:
    key: a typed key (``jax.random.key``) or a raw uint32 key.
    labels: ``(N,)`` integer labels in ``[0, num_classes)``.
    p: corruption probability in [0, 1].
    num_classes: number of classes K >= 2.
    indices: ``(N,)`` position of each label in the full data set; defaults
      to ``arange(N)``. Pass it when corrupting a shuffled subset or a batch.

  Returns:
    ``(new_labels, changed_mask)``: an int32 numpy array of the corrupted
    labels and a bool numpy array equal to ``new_labels != labels``.

  Raises:
    ValueError: p outside [0, 1] or not finite, num_classes < 2, a label
      outside [0, num_classes), or indices of the wrong length.
  """
  p = check_probability(p)
  if (isinstance(num_classes, bool) or not isinstance(num_classes,
                                                      numbers.Integral)):
    raise ValueError(f"num_classes must be an integer; got {num_classes!r}.")
  num_classes = int(num_classes)
  if num_classes < 2:
    raise ValueError(f"num_classes must be >= 2 to draw a random class; got "
                     f"{num_classes}.")
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"labels must be a 1-D array of class ids; got shape "
                     f"{labels.shape}. Convert one-hot labels with "
                     f"labels.argmax(-1).")
  if labels.size and not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be integers; got dtype {labels.dtype}.")
  if labels.size:
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
      raise ValueError(f"labels must be class ids >= 0; found {low}. Map the "
                       f"classes to 0..K-1 first.")
    if high >= num_classes:
      raise ValueError(
          f"num_classes ({num_classes}) is smaller than a label: found label "
          f"{high}, but labels must lie in [0, {num_classes}). Pass "
          f"num_classes={high + 1} or more.")
  idx = draws.as_indices(indices, labels.shape[0], "labels")
  key = draws.as_key(key)
  p32, k32 = jnp.float32(p), jnp.int32(num_classes)
  replace, new_class = draws.map_chunks(
      lambda chunk: _label_draws(key, chunk, p32, k32), idx,
      (np.empty(idx.shape[0], bool), np.empty(idx.shape[0], np.int32)),
      sizes=draws.LABEL_BUCKETS)
  labels32 = labels.astype(np.int32)
  new_labels = np.where(replace, new_class, labels32).astype(np.int32)
  return new_labels, new_labels != labels32


def _labels(seed: int, p: float, true_labels: np.ndarray, num_classes: int,
            indices: np.ndarray, role: str) -> np.ndarray:
  """The registry's label function: :func:`corrupt_labels` with the
  ``train_labels`` or ``test_labels`` key of ``seed``."""
  key = draws.randomization_key(seed, f"{role}_labels")
  labels, _ = corrupt_labels(key, true_labels, p, num_classes,
                             indices=indices)
  return labels


registry.register(registry.Randomization(
    "true_labels", "the unmodified data", p=0.0))
registry.register(registry.Randomization(
    "partially_corrupted_labels", "each training label replaced with "
    "probability p by a uniformly drawn class", labels=_labels, takes_p=True))
registry.register(registry.Randomization(
    "random_labels", "every training label replaced by a uniformly drawn "
    "class (p = 1)", labels=_labels, p=1.0))

"""The one registry of randomization tests: name -> what it changes and how.

The randomizations of Section 2.1 register themselves from the modules of
:mod:`rethink_jax.corruption` (``labels``, ``pixels``, ``gaussian``); a new
one is one module with a :func:`register` call, and its test. In-memory data
(:func:`rethink_jax.corruption.randomize`), streamed data
(:mod:`rethink_jax.streaming`), config validation and the manifests all read
this registry.

A randomization changes labels, images, or neither:

* ``labels(seed, p, true_labels, num_classes, indices, role)`` returns the
  labels as trained for the examples at ``indices`` of a split (``role`` is
  ``"train"`` or ``"test"``). It must be a pure function of (seed, index),
  which makes it usable on streamed data too.
* ``images(train, test, context)`` returns the new train and test sets and a
  dict that may hold ``stats`` (:class:`~rethink_jax.corruption.PixelStats`)
  and ``permutation`` for the manifest. Image randomizations need the data
  in memory.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from rethink_jax.data.dataset import ArrayDataset
from rethink_jax.registry import Registry

LabelFn = Callable[[int, float, np.ndarray, int, np.ndarray, str], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Context:
  """What an image randomization may use besides the data."""

  seed: int
  statistics: str | None
  train_indices: np.ndarray
  test_indices: np.ndarray


ImageFn = Callable[[ArrayDataset, ArrayDataset, Context],
                   tuple[ArrayDataset, ArrayDataset, dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class Randomization:
  """A registered randomization test.

  Attributes:
    name: the name of ``randomize(..., name)`` and ``config.randomization``.
    description: one line, for listings.
    labels: the label function (see the module doc), or None.
    images: the image function (see the module doc), or None.
    p: the corruption probability it always uses (``random_labels``: 1,
      ``true_labels``: 0), recorded in the manifest; None when it takes one
      (``takes_p``) or has none.
    takes_p: the caller gives ``p`` (``partially_corrupted_labels``).
    takes_statistics: the caller may choose the pixel statistics
      (``gaussian``).
  """

  name: str
  description: str
  labels: LabelFn | None = None
  images: ImageFn | None = None
  p: float | None = None
  takes_p: bool = False
  takes_statistics: bool = False

  @property
  def changes_labels(self) -> bool:
    return self.labels is not None

  @property
  def changes_images(self) -> bool:
    return self.images is not None

  @property
  def streamable(self) -> bool:
    """Whether streamed data (read per example) can use it."""
    return self.images is None


REGISTRY: Registry[Randomization] = Registry(
    "randomization",
    "or register your own with rethink_jax.corruption.register")


def register(randomization: Randomization) -> Randomization:
  """Adds a randomization; a name can be registered once."""
  if not isinstance(randomization, Randomization):
    raise TypeError(f"register takes a Randomization; got "
                    f"{type(randomization).__name__}.")
  return REGISTRY.register(randomization.name, randomization)


names = REGISTRY.names
spec = REGISTRY.get

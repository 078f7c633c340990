"""The manifest a randomized data set carries: what was drawn, and with what.

Every randomized split records the randomization, its p and seed, the
Gaussian statistics or the permutation's hash, hashes of the labels and
images, and the library and JAX settings that determine the draws, so a
result file says exactly which data produced it.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from rethink_jax.corruption import draws
from rethink_jax.corruption.gaussian import PixelStats
from rethink_jax.data.dataset import ArrayDataset, DataError


def environment_manifest() -> dict[str, Any]:
  """Versions and RNG settings that determine the random draws.

  Part of every manifest :func:`rethink_jax.corruption.randomize` writes and
  of a streamed data set's.

  Returns:
    ``rethink_jax_version``, ``jax_version``, ``jax_prng_impl`` (the default
    PRNG implementation) and ``jax_threefry_partitionable``.
  """
  from rethink_jax import __version__  # pylint: disable=import-outside-toplevel
  return {
      "rethink_jax_version": __version__,
      "jax_version": jax.__version__,
      "jax_prng_impl": str(jax.config.values["jax_default_prng_impl"]),
      "jax_threefry_partitionable": bool(
          jax.config.values["jax_threefry_partitionable"]),
  }


def manifest(data: ArrayDataset, role: str, *, name: str, p: float | None,
             seed: int, stats: PixelStats | None, labels_corrupted: bool,
             images_randomized: bool, permutation: np.ndarray | None
             ) -> dict[str, Any]:
  """The manifest of one randomized split (``role``: "train" or "test")."""
  changed = int(np.count_nonzero(data.labels != data.true_labels))
  return {
      "randomization": name,
      "p": p,
      "seed": seed,
      "statistics": None if stats is None else stats.statistics,
      "pixel_mean": None if stats is None else stats.mean.tolist(),
      "pixel_std": None if stats is None else stats.std.tolist(),
      "dataset": data.name,
      "split": data.split or role,
      "num_examples": len(data),
      "num_classes": data.num_classes,
      "labels_corrupted": labels_corrupted,
      "num_changed_labels": changed,
      "changed_label_fraction": changed / len(data) if len(data) else 0.0,
      "labels_sha256": draws.sha256(data.labels.astype(np.int32)),
      "images_randomized": images_randomized,
      "permutation_sha256": (None if permutation is None
                             else draws.sha256(permutation.astype(np.int32))),
      "images_sha256": draws.sha256(data.images) if images_randomized else None,
      **environment_manifest(),
  }


def check_pair(train: ArrayDataset, test: ArrayDataset) -> None:
  """Two clean, matching splits, or an error saying what differs."""
  for split, data in (("train", train), ("test", test)):
    if not isinstance(data, ArrayDataset):
      raise TypeError(f"{split} must be an ArrayDataset; got "
                      f"{type(data).__name__}. Wrap arrays with "
                      f"rethink_jax.dataset.from_arrays.")
    if data.manifest is not None:
      raise DataError(
          f"the {split} set ({data.name}/{data.split}) is already randomized "
          f"({data.manifest.get('randomization')!r}); apply randomize() to "
          f"the clean data set.")
  if train.num_classes != test.num_classes:
    raise DataError(f"train has {train.num_classes} classes but test has "
                    f"{test.num_classes}; pass num_classes explicitly to "
                    f"from_arrays so that both agree.")
  if train.image_shape != test.image_shape:
    raise DataError(f"train images are {train.image_shape} but test images "
                    f"are {test.image_shape}; both splits must have the same "
                    f"image shape.")


"""The in-memory data set type shared by data loading, corruption and training.

An :class:`ArrayDataset` is what every small data set (CIFAR-10, MNIST-likes,
or a researcher's own arrays through :func:`from_arrays`) becomes before it
is randomized (paper Section 2.1) and moved to the device.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


class DataError(ValueError):
  """Bad input data: the message names the problem and how to fix it."""


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
  """A labelled image data set held in host memory.

  Attributes:
    images: ``(N, H, W, C)`` array, ``uint8`` pixels in [0, 255], or
      ``float32`` in the same 0..255 scale (Gaussian inputs are not rounded).
    labels: ``(N,)`` int32 labels the network is trained on (possibly
      corrupted).
    num_classes: number of classes K; every label is in [0, K).
    true_labels: ``(N,)`` int32 original labels. Equal to ``labels`` unless a
      label randomization was applied.
    name: where the data came from (``"cifar10"``, ``"arrays"``, ...).
    split: the split name (``"train"``, ``"test"``, ...).
    manifest: description of the randomization applied, or None for clean
      data (see :mod:`rethink_jax.corruption`).
  """

  images: np.ndarray
  labels: np.ndarray
  num_classes: int
  true_labels: np.ndarray
  name: str = "arrays"
  split: str = ""
  manifest: dict[str, Any] | None = None

  def __len__(self) -> int:
    return int(self.labels.shape[0])

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])

  @property
  def corrupted_mask(self) -> np.ndarray:
    """Boolean mask of examples whose training label differs from the truth."""
    return self.labels != self.true_labels

  def replace(self, **changes) -> "ArrayDataset":
    return dataclasses.replace(self, **changes)

  def take(self, n: int) -> "ArrayDataset":
    """The first ``n`` examples (for quick experiments)."""
    if n > len(self):
      raise DataError(f"cannot take {n} examples from {self.name}/{self.split}"
                      f" which has {len(self)}; ask for at most {len(self)}.")
    return self.replace(images=self.images[:n], labels=self.labels[:n],
                        true_labels=self.true_labels[:n])


_MAX_CLASSES = np.iinfo(np.int32).max


def check_finite(images: np.ndarray, what: str = "images") -> None:
  """Raises DataError if float ``images`` hold NaN or infinite pixels."""
  if not np.issubdtype(images.dtype, np.floating):
    return
  bad = ~np.isfinite(images.reshape(images.shape[0], -1)).all(axis=1)
  if bad.any():
    first = int(np.argmax(bad))
    raise DataError(
        f"{what}: {int(bad.sum())} of {images.shape[0]} images have NaN or "
        f"infinite pixels (the first at index {first}); training on them "
        f"gives a NaN loss and evaluating them a meaningless accuracy. Fix or "
        f"drop them (e.g. np.nan_to_num, or keep np.isfinite(x).all((1, 2, 3)))"
        f".")


def check_labels(labels: np.ndarray, num_classes: int,
                 what: str = "labels") -> None:
  """Raises DataError unless every label lies in [0, num_classes)."""
  if labels.size == 0:
    return
  low, high = int(labels.min()), int(labels.max())
  if low < 0:
    raise DataError(
        f"{what}: found negative labels (minimum {low}); class ids must lie "
        f"in [0, {num_classes}). Map your classes to 0..K-1 first (e.g. "
        f"np.unique(labels, return_inverse=True)[1]).")
  if high >= num_classes:
    raise DataError(
        f"{what}: labels must lie in [0, {num_classes}); found values up to "
        f"{high}. Pass num_classes={high + 1} or fix the labels.")


def _check_num_classes(num_classes) -> int:
  if (isinstance(num_classes, bool) or
      not isinstance(num_classes, (int, np.integer))):
    if isinstance(num_classes, (float, np.floating)) and float(
        num_classes).is_integer():
      num_classes = int(num_classes)
    else:
      raise DataError(f"num_classes must be a whole number of classes; got "
                      f"{num_classes!r}.")
  if not 1 <= int(num_classes) <= _MAX_CLASSES:
    raise DataError(f"num_classes must lie in [1, {_MAX_CLASSES}]; got "
                    f"{num_classes}.")
  return int(num_classes)


def from_arrays(images, labels, num_classes: int | None = None, *,
                name: str = "arrays", split: str = "") -> ArrayDataset:
  """Wraps in-memory arrays so they go through exactly the library pipeline.

  Args:
    images: ``(N, H, W, C)`` or ``(N, H, W)`` (gray) array of ``uint8``
      pixels in [0, 255], or floating point pixels on the same 0..255 scale.
    labels: ``(N,)`` integer class labels in [0, num_classes).
    num_classes: number of classes; defaults to ``max(labels) + 1``.
    name: a name recorded in results files.
    split: a split name recorded in results files.

  Returns:
    A validated :class:`ArrayDataset`.

  Raises:
    DataError: wrong dtype or shape (including channels-first images),
      mismatched lengths, NaN or infinite pixels, or labels outside
      [0, num_classes).
  """
  images = np.asarray(images)
  labels = np.asarray(labels)
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4:
    raise DataError(
        f"images must have shape (N, H, W, C) or (N, H, W); got shape "
        f"{images.shape}. Stack your images into one array first.")
  if images.shape[1] in (1, 3, 4) and images.shape[-1] not in (1, 3, 4):
    raise DataError(
        f"images of shape {images.shape} look channels-first (N, C, H, W); "
        f"the library takes channels-last (N, H, W, C). Transpose to NHWC "
        f"with images.transpose(0, 2, 3, 1).")
  if images.dtype == np.uint8:
    pass
  elif np.issubdtype(images.dtype, np.floating):
    images = images.astype(np.float32)
  else:
    raise DataError(
        f"images must be uint8 in [0, 255] or floating point on the 0..255 "
        f"scale; got dtype {images.dtype}. Convert with "
        f"images.astype(np.uint8) (or np.float32).")
  if labels.ndim != 1:
    raise DataError(f"labels must be a 1-D array of class ids; got shape "
                    f"{labels.shape}. Convert one-hot labels with "
                    f"labels.argmax(-1).")
  if not np.issubdtype(labels.dtype, np.integer):
    raise DataError(f"labels must be integers; got dtype {labels.dtype}. "
                    f"Map class names to ids 0..K-1 first.")
  if labels.shape[0] != images.shape[0]:
    raise DataError(f"{images.shape[0]} images but {labels.shape[0]} labels; "
                    f"they must have the same length.")
  if images.shape[0] == 0:
    raise DataError("the data set is empty; pass at least one example.")
  check_finite(images)
  if num_classes is None:
    check_labels(labels, _MAX_CLASSES)
    num_classes = int(labels.max()) + 1
  num_classes = _check_num_classes(num_classes)
  check_labels(labels, num_classes)
  labels = labels.astype(np.int32)
  return ArrayDataset(images=images, labels=labels,
                      num_classes=num_classes, true_labels=labels.copy(),
                      name=name, split=split)

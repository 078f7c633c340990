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
    return tuple(self.images.shape[1:])  # type: ignore[return-value]

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
    DataError: wrong dtype or shape, mismatched lengths, or labels outside
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
  if num_classes is None:
    num_classes = int(labels.max()) + 1
  if int(num_classes) < 1:
    raise DataError(f"num_classes must be >= 1; got {num_classes}.")
  low, high = int(labels.min()), int(labels.max())
  if low < 0 or high >= num_classes:
    raise DataError(
        f"labels must lie in [0, {num_classes}); found values in "
        f"[{low}, {high}]. Pass num_classes={high + 1} or fix the labels.")
  labels = labels.astype(np.int32)
  return ArrayDataset(images=images, labels=labels,
                      num_classes=int(num_classes), true_labels=labels.copy(),
                      name=name, split=split)

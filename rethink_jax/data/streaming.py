"""ImageNet-like data read record by record, randomized by index.

The paper's ImageNet experiments (Appendix B, Table 2) train Inception V3 on
about 1.28M images, too many to hold in memory. A :class:`StreamingDataset`
reads ArrayRecord files by index with ``tfds.data_source``, so the trainer can
fetch any permutation of the training set; a label randomization is the same
pure function of (seed, index) as for in-memory data
(:func:`rethink_jax.corruption.corrupt_labels`), so example ``i`` has the
same random label on every epoch, host and device count, and after a resume.

Host-side image pipeline (the TF-slim Inception pipeline the paper reused,
simplified): evaluation and un-augmented training take the central 87.5% crop
and resize it to ``image_size``; augmented training takes a random crop
covering 8%-100% of the area with aspect ratio in [3/4, 4/3], resizes it,
flips it left-right with probability 1/2 and perturbs brightness, contrast
and saturation (hue is not perturbed). The per-example augmentation draw is
seeded by (seed, epoch, index). Images leave as uint8; the device scales them
to [-1, 1] (:func:`rethink_jax.preprocessing.inception_scale`).
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Any, Sequence

import numpy as np

from rethink_jax.data.dataset import DataError

EVAL_CENTRAL_FRACTION = 0.875


def _resize(image: np.ndarray, size: int) -> np.ndarray:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pil = Image.fromarray(image)
  return np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR))


def central_crop_resize(image: np.ndarray, size: int,
                        fraction: float = EVAL_CENTRAL_FRACTION) -> np.ndarray:
  """TF-slim's evaluation crop: the central ``fraction`` box, resized."""
  h, w = image.shape[:2]
  ch, cw = max(1, int(round(h * fraction))), max(1, int(round(w * fraction)))
  top, left = (h - ch) // 2, (w - cw) // 2
  return _resize(image[top:top + ch, left:left + cw], size)


def augment_image(image: np.ndarray, size: int,
            rng: np.random.Generator) -> np.ndarray:
  """Inception-style training augmentation of one uint8 image."""
  h, w = image.shape[:2]
  crop = None
  for _ in range(10):
    area = rng.uniform(0.08, 1.0) * h * w
    ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    ch, cw = int(round(np.sqrt(area / ratio))), int(round(np.sqrt(area * ratio)))
    if 0 < ch <= h and 0 < cw <= w:
      top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
      crop = image[top:top + ch, left:left + cw]
      break
  if crop is None:
    crop = image
  x = _resize(crop, size).astype(np.float32)
  if rng.random() < 0.5:
    x = x[:, ::-1]
  x = x + rng.uniform(-32.0, 32.0)  # brightness
  mean = x.mean()
  x = (x - mean) * rng.uniform(0.5, 1.5) + mean  # contrast
  gray = x @ np.asarray([0.299, 0.587, 0.114], np.float32)
  x = gray[..., None] + (x - gray[..., None]) * rng.uniform(0.5, 1.5)
  return np.clip(np.rint(x), 0, 255).astype(np.uint8)


class StreamingDataset:
  """A split read by index, optionally with randomized labels.

  Attributes:
    name, split: where the data came from.
    num_examples: number of records.
    num_classes: number of classes of the label space in use.
    image_size: side of the square images :meth:`batch` returns.
    manifest: the randomization manifest (None for clean data; computed on
      first access for a randomized one, since it hashes every label).
  """

  def __init__(self, source: Sequence[dict[str, Any]],
               label_source: Sequence[dict[str, Any]], *, name: str,
               split: str, num_classes: int, image_size: int,
               label_map: np.ndarray | None = None,
               randomization: dict[str, Any] | None = None,
               location: str = ""):
    if image_size < 1:
      raise DataError(f"image_size must be positive; got {image_size}.")
    self._source = source
    self._label_source = label_source
    self._label_map = label_map
    self._randomization = randomization
    self._manifest: dict[str, Any] | None = None
    self._all_true_labels: np.ndarray | None = None
    self.location = location
    self.name = name
    self.split = split
    self.num_examples = len(source)
    self.num_classes = num_classes
    self.image_size = image_size

  @classmethod
  def from_builder(cls, tfds_builder, split: str, *, name: str,
                   image_size: int, label_space: str = "native"
                   ) -> "StreamingDataset":
    """Opens a prepared tfds builder's split as ArrayRecord data sources."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    base = split.split("[")[0]
    if tfds_builder.info.splits and base not in tfds_builder.info.splits:
      raise DataError(f"{tfds_builder.name} has no split {base!r}; its "
                      f"splits are {sorted(tfds_builder.info.splits)}.")
    try:
      source = tfds_builder.as_data_source(split=split)
      label_source = tfds_builder.as_data_source(
          split=split, decoders={"image": tfds.decode.SkipDecoding()})
    except Exception as e:  # pylint: disable=broad-except
      raise DataError(
          f"cannot open {tfds_builder.name} in {tfds_builder.data_dir} for "
          f"random access ({type(e).__name__}: {e}). Streaming reads "
          f"ArrayRecord files: prepare it again with download_and_prepare("
          f"file_format='array_record') (rethink_jax.data.builder does "
          f"this).") from e
    label_feature = tfds_builder.info.features["label"]
    num_classes = label_feature.num_classes
    label_map = None
    if label_space == "imagenet" and num_classes != 1000:
      label_map = imagenet_label_ids(label_feature.names)
      num_classes = 1000
    elif label_space not in ("native", "imagenet"):
      raise DataError(f"unknown label_space {label_space!r}; use 'native' "
                      f"or 'imagenet'.")
    return cls(source, label_source, name=name, split=split,
               num_classes=num_classes, image_size=image_size,
               label_map=label_map, location=os.fspath(tfds_builder.data_dir))

  def __len__(self) -> int:
    return self.num_examples

  def _check_indices(self, indices) -> np.ndarray:
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size and (indices.min() < 0 or
                         indices.max() >= self.num_examples):
      raise DataError(f"indices must lie in [0, {self.num_examples}); got "
                      f"[{indices.min()}, {indices.max()}].")
    return indices

  def true_labels(self, indices) -> np.ndarray:
    """Original labels of the examples at ``indices`` (no image decoding)."""
    indices = self._check_indices(indices)
    labels = np.asarray([self._read(self._label_source, i)["label"]
                         for i in indices], dtype=np.int32)
    if self._label_map is not None:
      labels = self._label_map[labels]
    return labels

  def _read(self, source, index: int) -> dict[str, Any]:
    """Record ``index``; a read error names the prepared files to delete."""
    try:
      return source[index]
    except Exception as e:  # pylint: disable=broad-except
      raise DataError(
          f"cannot read record {index} of {self.name} split {self.split!r} "
          f"from {self.location or 'its prepared files'}: "
          f"{type(e).__name__}: {str(e)[:300]}. The prepared files are "
          f"damaged; delete {self.location or 'them'} and run again to "
          f"prepare them anew.") from e

  def all_true_labels(self) -> np.ndarray:
    if self._all_true_labels is None:
      self._all_true_labels = self.true_labels(np.arange(self.num_examples))
    return self._all_true_labels

  def labels(self, indices) -> np.ndarray:
    """Labels as trained: randomized by (seed, index) when requested."""
    true = self.true_labels(indices)
    r = self._randomization
    if r is None:
      return true
    from rethink_jax import corruption  # pylint: disable=g-import-not-at-top
    label_fn = corruption.spec(r["randomization"]).labels
    if label_fn is None:
      return true
    new = label_fn(r["seed"], r["p"], true, self.num_classes,
                   self._check_indices(indices), "train")
    return np.asarray(new, dtype=np.int32)

  def with_randomization(self, name: str, *, seed: int,
                         p: float | None = None) -> "StreamingDataset":
    """The same split with a label randomization test (paper Section 2.1).

    Args:
      name: a randomization that changes only labels (``"true_labels"``,
        ``"partially_corrupted_labels"`` (needs ``p``), ``"random_labels"``
        (p = 1), or one registered with ``Randomization.streamable``).
      seed: the randomization seed; the draw for example ``i`` is
        ``fold_in(train_label_key(seed), i)``, as for in-memory data.
      p: corruption probability for ``partially_corrupted_labels``.

    Returns:
      A new StreamingDataset whose :meth:`labels` and :meth:`batch` give the
      randomized labels.
    """
    from rethink_jax import corruption  # pylint: disable=g-import-not-at-top
    try:
      r = corruption.spec(name)
      p = corruption.resolve_p(r, p)
    except ValueError as e:
      raise DataError(str(e)) from e
    if not r.streamable:
      streamable = [n for n in corruption.names()
                    if corruption.spec(n).streamable]
      raise DataError(
          f"randomization {name!r} is not available for streamed data; use "
          f"one of {streamable} (image randomizations need the in-memory "
          f"path, rethink_jax.data.load).")
    other = StreamingDataset(
        self._source, self._label_source, name=self.name, split=self.split,
        num_classes=self.num_classes, image_size=self.image_size,
        label_map=self._label_map,
        randomization={"randomization": name, "seed": int(seed), "p": p},
        location=self.location)
    other._all_true_labels = self._all_true_labels
    return other

  @property
  def manifest(self) -> dict[str, Any] | None:
    if self._randomization is None:
      return None
    if self._manifest is None:
      from rethink_jax import corruption  # pylint: disable=g-import-not-at-top
      true = self.all_true_labels()
      labels = self.labels(np.arange(self.num_examples))
      changed = int(np.sum(labels != true))
      self._manifest = {
          **self._randomization,
          "dataset": self.name, "split": self.split,
          "num_examples": self.num_examples,
          "num_classes": self.num_classes,
          "labels_corrupted": corruption.spec(
              self._randomization["randomization"]).changes_labels,
          "num_changed_labels": changed,
          "changed_label_fraction": changed / max(1, self.num_examples),
          "labels_sha256": corruption.sha256(labels.astype(np.int32)),
          **corruption.environment_manifest(),
      }
    return self._manifest

  def images(self, indices, *, epoch: int = 0, train: bool = False,
             augment: bool = False, seed: int = 0) -> np.ndarray:
    """Decoded, cropped and resized uint8 images ``(B, S, S, 3)``."""
    indices = self._check_indices(indices)
    size = self.image_size

    def one(index):
      image = np.asarray(self._read(self._source, index)["image"])
      if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
      if train and augment:
        rng = np.random.default_rng([int(seed), int(epoch), int(index)])
        return augment_image(image, size, rng)
      return central_crop_resize(image, size)

    workers = min(8, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      out = list(pool.map(one, indices.tolist()))
    return np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)

  def batch(self, indices, *, epoch: int, train: bool, augment: bool = False,
            seed: int = 0) -> dict[str, np.ndarray]:
    """One batch: uint8 images, labels as trained, and the true labels."""
    indices = self._check_indices(indices)
    return {
        "images": self.images(indices, epoch=epoch, train=train,
                              augment=augment, seed=seed),
        "labels": self.labels(indices),
        "true_labels": self.true_labels(indices),
    }


def imagenet_label_ids(wnids) -> np.ndarray:
  """Maps WordNet ids onto tfds' 1000-class ImageNet label ids."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  names = tfds.builder("imagenet2012").info.features["label"].names
  index = {wnid: i for i, wnid in enumerate(names)}
  missing = [w for w in wnids if w not in index]
  if missing:
    raise DataError(f"WordNet ids {missing} are not ImageNet classes.")
  return np.asarray([index[w] for w in wnids], dtype=np.int32)

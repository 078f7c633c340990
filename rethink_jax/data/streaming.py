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

import json
import os
import struct
from typing import Any, Sequence

import numpy as np

from rethink_jax.data import inception_preprocessing
from rethink_jax.data.dataset import DataError

class TFRecordSource:
  """Random access to a split prepared as TFRecord (tfds' default format).

  ``tfds.data_source`` reads only ArrayRecord; a TFRecord-prepared split
  (an ``imagenet2012`` prepared before, say) is indexed instead: the record
  boundaries of its files are found from the 12-byte record headers (no
  data is read), and a batch of records is read by seeking and parsed in
  one ``tf.io.parse_example`` call. The order is that of the split's file
  instructions (``DatasetInfo.splits[split].file_instructions``, which also
  resolves sub-splits such as ``train[:1000]``).
  """

  def __init__(self, tfds_builder, split: str):
    self._files: list[str] = []
    positions: list[tuple[int, int, int]] = []
    for instruction in tfds_builder.info.splits[split].file_instructions:
      records = _tfrecord_offsets(instruction.filename)
      start = instruction.skip
      stop = (len(records) if instruction.take in (None, -1) else
              start + instruction.take)
      file_index = len(self._files)
      self._files.append(instruction.filename)
      positions += [(file_index, offset, length)
                    for offset, length in records[start:stop]]
    self._positions = positions

  def __len__(self) -> int:
    return len(self._positions)

  def __getitems__(self, keys: Sequence[int]) -> list[dict[str, Any]]:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    serialized: list[bytes] = [b""] * len(keys)
    by_file: dict[int, list[int]] = {}
    for slot, key in enumerate(keys):
      by_file.setdefault(self._positions[key][0], []).append(slot)
    for file_index, slots in by_file.items():
      with open(self._files[file_index], "rb") as f:
        for slot in slots:
          _, offset, length = self._positions[keys[slot]]
          f.seek(offset)
          serialized[slot] = f.read(length)
    parsed = tf.io.parse_example(serialized, {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64)})
    images, labels = parsed["image"].numpy(), parsed["label"].numpy()
    return [{"image": images[i], "label": int(labels[i])}
            for i in range(len(keys))]

  def __getitem__(self, key: int) -> dict[str, Any]:
    return self.__getitems__([key])[0]


def _tfrecord_offsets(path: str) -> list[tuple[int, int]]:
  """(data offset, data length) of every record of a TFRecord file."""
  out = []
  size = os.path.getsize(path)
  with open(path, "rb") as f:
    position = 0
    while position < size:
      f.seek(position)
      header = f.read(12)  # uint64 length, uint32 masked CRC of the length
      if len(header) < 12:
        raise DataError(f"{path} ends inside a record header; the file is "
                        f"damaged.")
      (length,) = struct.unpack("<Q", header[:8])
      out.append((position + 12, length))
      position += 12 + length + 4  # data, then its uint32 masked CRC
  return out


class StreamingDataset:
  """A split read by index, optionally with randomized labels.

  Attributes:
    name, split: where the data came from.
    num_examples: number of records.
    num_classes: number of classes of the label space in use.
    image_size: side of the square images :meth:`batch` returns.
    manifest: the randomization manifest (None for clean data; computed on
      first access for a randomized one, since it hashes every label).
    label_cache: where the split's true labels are kept once read
      (``from_builder`` puts it beside the prepared files), or "" for none.
  """

  def __init__(self, source: Sequence[dict[str, Any]], *, name: str,
               split: str, num_classes: int, image_size: int,
               label_map: np.ndarray | None = None,
               randomization: dict[str, Any] | None = None,
               location: str = "", label_cache: str = "",
               label_cache_key: dict[str, Any] | None = None):
    if image_size < 1:
      raise DataError(f"image_size must be positive; got {image_size}.")
    self._source = source
    self._label_map = label_map
    self._randomization = randomization
    self._manifest: dict[str, Any] | None = None
    self._all_true_labels: np.ndarray | None = None
    self.location = location
    self.label_cache = label_cache
    self._label_cache_key = label_cache_key
    self.name = name
    self.split = split
    self.num_examples = len(source)
    self.num_classes = num_classes
    self.image_size = image_size

  @classmethod
  def from_builder(cls, tfds_builder, split: str, *, name: str,
                   image_size: int, label_space: str = "native"
                   ) -> "StreamingDataset":
    """Opens a prepared tfds builder's split for reading by index: an
    ArrayRecord split through ``tfds.data_source``, a TFRecord one through
    :class:`TFRecordSource`."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    base = split.split("[")[0]
    if tfds_builder.info.splits and base not in tfds_builder.info.splits:
      raise DataError(f"{tfds_builder.name} has no split {base!r}; its "
                      f"splits are {sorted(tfds_builder.info.splits)}.")
    try:
      # Images stay JPEG bytes: one read per record gives image and label,
      # and decoding happens in the batch preprocessing.
      try:
        source: Any = tfds_builder.as_data_source(
            split=split, decoders={"image": tfds.decode.SkipDecoding()})
      except NotImplementedError:  # TFRecord: tfds has no random access
        if tfds_builder.info.file_format != tfds.core.FileFormat.TFRECORD:
          raise
        source = TFRecordSource(tfds_builder, split)
    except Exception as e:  # pylint: disable=broad-except
      raise DataError(
          f"cannot open {tfds_builder.name} in {tfds_builder.data_dir} for "
          f"random access ({type(e).__name__}: {e}). Streaming reads "
          f"ArrayRecord or TFRecord files; prepare it again with "
          f"download_and_prepare(file_format='array_record') "
          f"(rethink_jax.data.builder does this).") from e
    label_feature = tfds_builder.info.features["label"]
    num_classes = label_feature.num_classes
    label_map = None
    if label_space == "imagenet" and num_classes != 1000:
      label_map = imagenet_label_ids(label_feature.names)
      num_classes = 1000
    elif label_space not in ("native", "imagenet"):
      raise DataError(f"unknown label_space {label_space!r}; use 'native' "
                      f"or 'imagenet'.")
    location = os.fspath(tfds_builder.data_dir)
    try:
      files = [(os.path.basename(i.filename), i.skip, i.take,
                os.path.getsize(i.filename)) for i in
               tfds_builder.info.splits[split].file_instructions]
    except Exception:  # pylint: disable=broad-except
      files = None  # no files to identify the split by: no label cache
    tag = "".join(c if c.isalnum() else "_" for c in split)
    return cls(source, name=name, split=split,
               num_classes=num_classes, image_size=image_size,
               label_map=label_map, location=location,
               label_cache=(os.path.join(location,
                                         f"rethink_jax_labels_{tag}.npz")
                            if files else ""),
               label_cache_key=dict(
                   num_examples=len(source), files=files,
                   label_space=label_space))

  def __len__(self) -> int:
    return self.num_examples

  def _check_indices(self, indices) -> np.ndarray:
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size and (indices.min() < 0 or
                         indices.max() >= self.num_examples):
      raise DataError(f"indices must lie in [0, {self.num_examples}); got "
                      f"[{indices.min()}, {indices.max()}].")
    return indices

  def _records(self, indices: np.ndarray) -> list[dict[str, Any]]:
    """The records at ``indices``, read once each in one batched call; a
    read error names the prepared files to delete."""
    keys = indices.tolist()
    try:
      try:
        return list(self._source.__getitems__(keys))  # type: ignore[attr-defined]
      except (AttributeError, TypeError):  # a source without batched reads
        return [self._source[i] for i in keys]
    except Exception as e:  # pylint: disable=broad-except
      raise DataError(
          f"cannot read the records at indices {keys[:8]}"
          f"{'...' if len(keys) > 8 else ''} of {self.name} "
          f"split {self.split!r} from "
          f"{self.location or 'its prepared files'}: "
          f"{type(e).__name__}: {str(e)[:300]}. The prepared files are "
          f"damaged; delete {self.location or 'them'} and run again to "
          f"prepare them anew.") from e

  def _labels_of(self, records: list[dict[str, Any]]) -> np.ndarray:
    labels = np.asarray([r["label"] for r in records], dtype=np.int32)
    if self._label_map is not None:
      labels = self._label_map[labels]
    return labels

  def true_labels(self, indices) -> np.ndarray:
    """Original labels of the examples at ``indices`` (no image decoding)."""
    indices = self._check_indices(indices)
    out = [self._labels_of(self._records(indices[i:i + 4096]))
           for i in range(0, indices.shape[0], 4096)]
    return np.concatenate(out) if out else np.zeros((0,), np.int32)

  def all_true_labels(self) -> np.ndarray:
    """Every example's true label, in order.

    Reading them means reading every record (1.28M for ImageNet), so they
    are kept in :attr:`label_cache` with what identifies the prepared split
    (its files, their sizes, the record count, the label space); a cache
    that does not match the split is read again and replaced.
    """
    if self._all_true_labels is None:
      labels = self._read_label_cache()
      if labels is None:
        labels = self.true_labels(np.arange(self.num_examples))
        self._write_label_cache(labels)
      self._all_true_labels = labels
    return self._all_true_labels

  def _cache_key_text(self) -> str:
    return json.dumps(self._label_cache_key, sort_keys=True, default=str)

  def _read_label_cache(self) -> np.ndarray | None:
    if not self.label_cache or not os.path.isfile(self.label_cache):
      return None
    try:
      with np.load(self.label_cache) as f:
        key, labels = str(f["key"]), np.asarray(f["labels"], np.int32)
    except (OSError, ValueError, KeyError):
      return None
    if key != self._cache_key_text() or labels.shape != (self.num_examples,):
      return None
    return labels

  def _write_label_cache(self, labels: np.ndarray) -> None:
    """Writes the cache atomically; a read-only data_dir goes without."""
    if not self.label_cache:
      return
    tmp = f"{self.label_cache}.tmp{os.getpid()}"
    try:
      with open(tmp, "wb") as f:
        np.savez(f, key=np.asarray(self._cache_key_text()), labels=labels)
      os.replace(tmp, self.label_cache)
    except OSError:
      if os.path.exists(tmp):
        os.remove(tmp)

  def labels(self, indices, true: np.ndarray | None = None) -> np.ndarray:
    """Labels as trained: randomized by (seed, index) when requested.

    ``true``: the true labels at ``indices`` when already read.
    """
    if true is None:
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
        self._source, name=self.name, split=self.split,
        num_classes=self.num_classes, image_size=self.image_size,
        label_map=self._label_map,
        randomization={"randomization": name, "seed": int(seed), "p": p},
        location=self.location, label_cache=self.label_cache,
        label_cache_key=self._label_cache_key)
    other._all_true_labels = self._all_true_labels
    return other

  @property
  def manifest(self) -> dict[str, Any] | None:
    if self._randomization is None:
      return None
    if self._manifest is None:
      from rethink_jax import corruption  # pylint: disable=g-import-not-at-top
      true = self.all_true_labels()  # one pass over the records, cached
      labels = self.labels(np.arange(self.num_examples), true)
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

  def _images_of(self, records: list[dict[str, Any]], indices: np.ndarray,
                 *, epoch: int, train: bool, augment: bool,
                 seed: int) -> np.ndarray:
    images = [r["image"] for r in records]
    if train and augment:
      return inception_preprocessing.train_batch(
          images, indices, size=self.image_size, seed=seed, epoch=epoch)
    return inception_preprocessing.eval_batch(images, size=self.image_size)

  def images(self, indices, *, epoch: int = 0, train: bool = False,
             augment: bool = False, seed: int = 0) -> np.ndarray:
    """Decoded, cropped and resized uint8 images ``(B, S, S, 3)``: TF-slim's
    Inception training augmentation (``train and augment``, a function of
    (seed, epoch, index)) or its evaluation crop
    (:mod:`rethink_jax.data.inception_preprocessing`)."""
    indices = self._check_indices(indices)
    return self._images_of(self._records(indices), indices, epoch=epoch,
                           train=train, augment=augment, seed=seed)

  def batch(self, indices, *, epoch: int, train: bool, augment: bool = False,
            seed: int = 0) -> dict[str, np.ndarray]:
    """One batch: uint8 images, labels as trained, and the true labels.

    Each record is read once, in one batched read.
    """
    indices = self._check_indices(indices)
    records = self._records(indices)
    true = self._labels_of(records)
    return {
        "images": self._images_of(records, indices, epoch=epoch,
                                  train=train, augment=augment, seed=seed),
        "labels": self.labels(indices, true),
        "true_labels": true,
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

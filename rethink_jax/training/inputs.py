"""The data a run trains on: loading, subsets, randomization and feeding.

Small data sets (CIFAR-10, MNIST-likes, a caller's arrays) are randomized
once on the host (paper Section 2.1, :mod:`rethink_jax.corruption`) and then
copied to every device as uint8 (float32 for Gaussian inputs), where
:mod:`rethink_jax.steps` shuffles, crops and whitens them. Streamed data sets
(ImageNet, Imagenette) are read batch by batch on the host in the order
``jax.random.permutation(fold_in(shuffle_key, epoch), N)``, a background
thread prefetching the next batches, and placed on the devices already split
along the batch axis.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
from typing import Any, Iterator

import jax
import ml_collections
import numpy as np

from rethink_jax import corruption
from rethink_jax import data
from rethink_jax.training import config as config_lib
from rethink_jax.data import dataset as dataset_lib
from rethink_jax.data.dataset import ArrayDataset, DataError

# Streams of the data_seed key that choose example subsets; the
# randomization itself uses the data_seed key in rethink_jax.corruption.
_TRAIN_SUBSET, _TEST_SUBSET, _TRAIN_EVAL_SUBSET = 101, 102, 103
_PREFETCH = 2

# An ArrayDataset or a streaming.StreamingDataset (told apart by is_streamed).
AnyDataset = Any


def is_streamed(dataset: AnyDataset) -> bool:
  """Whether a data set is read per batch from the host (not an array set)."""
  return not isinstance(dataset, ArrayDataset)


def size(dataset: AnyDataset) -> int:
  """Number of examples of an array or streamed data set."""
  return len(dataset) if isinstance(dataset, ArrayDataset) else int(
      dataset.num_examples)


def subset_indices(n: int, k: int, seed: int, stream: int) -> np.ndarray:
  """A fixed random subset of ``k`` of ``n`` indices, in increasing order.

  Args:
    n: data set size.
    k: subset size; 0 means all ``n``.
    seed: the config's ``data_seed``.
    stream: which subset (train, test, training-set evaluation).

  Returns:
    ``np.arange(n)`` for ``k == 0``, else ``k`` sorted indices drawn without
    replacement with ``jax.random.fold_in(jax.random.key(seed), stream)``.

  Raises:
    DataError: ``k > n``.
  """
  if k == 0 or k == n:
    return np.arange(n)
  if k > n:
    raise DataError(f"asked for a subset of {k} examples of a data set of "
                    f"{n}; use at most {n} (or 0 for all).")
  key = jax.random.fold_in(jax.random.key(seed), stream)
  return np.sort(np.asarray(jax.random.permutation(key, n))[:k])


def _take(dataset: ArrayDataset, index: np.ndarray) -> ArrayDataset:
  if index.shape[0] == len(dataset):
    return dataset
  return dataset.replace(images=dataset.images[index],
                         labels=dataset.labels[index],
                         true_labels=dataset.true_labels[index])


def load(config: ml_collections.ConfigDict, train: AnyDataset = None,
         test: AnyDataset = None
         ) -> tuple[AnyDataset, AnyDataset, np.ndarray, np.ndarray]:
  """The training and test sets of a run, randomized as the config says.

  Args:
    config: a validated training config.
    train: optional training set replacing ``config.dataset``.
    test: its test set (required with ``train``).

  Returns:
    ``(train, test, train_ids, test_ids)``. For array data sets the subsets
    (``train_examples``, ``test_examples``) are already taken and the ids are
    ``arange``; for streamed ones the ids list the examples used. The test
    labels are never corrupted (Section 2.1).

  Raises:
    config_lib.ConfigError: data sets passed with a config naming another
      data set, or ``dataset="arrays"`` without them.
  """
  if (train is None) != (test is None):
    raise config_lib.ConfigError(
        "train_and_evaluate needs both train= and test= data sets, or "
        "neither (then config.dataset is loaded).")
  if train is not None:
    if config.dataset not in ("arrays", train.name):
      raise config_lib.ConfigError(
          f"config.dataset: is {config.dataset!r} but the train= data set is "
          f"{train.name!r}; set config.dataset='arrays' (or "
          f"{train.name!r}) when passing data sets.")
    if is_streamed(train) and train.image_size != config.image_size:
      raise config_lib.ConfigError(
          f"config.image_size: is {config.image_size} but the streamed "
          f"train= data set gives {train.image_size}x{train.image_size} "
          f"images; set config.image_size={train.image_size}.")
  elif config.dataset == "arrays":
    raise config_lib.ConfigError(
        "config.dataset: 'arrays' means the caller passes train= and test= "
        "ArrayDatasets to train_and_evaluate; pass them or name a data set.")
  elif data.is_streamed(config.dataset):
    train, test = (
        data.load_stream(config.dataset, split, data_dir=config.data_dir,
                         image_size=config.image_size)
        for split in ("train", data.test_split(config.dataset)))
  else:
    train, test = (
        data.load(config.dataset, split, data_dir=config.data_dir)
        for split in ("train", data.test_split(config.dataset)))

  check_pair(train, test)
  train_ids = subset_indices(size(train), config.train_examples,
                             config.data_seed, _TRAIN_SUBSET)
  test_ids = subset_indices(size(test), config.test_examples,
                            config.data_seed, _TEST_SUBSET)
  if is_streamed(train):
    train, test = _randomize(config, train, test)
    return train, test, train_ids, test_ids
  # A subset is randomized by its examples' positions in the full split, so
  # example i gets the same random label (or pixels) as in a full run.
  train, test = _randomize(config, _take(train, train_ids),
                           _take(test, test_ids), train_ids, test_ids)
  return train, test, np.arange(len(train)), np.arange(len(test))


def _randomize(config: ml_collections.ConfigDict, train: AnyDataset,
               test: AnyDataset, train_ids: np.ndarray | None = None,
               test_ids: np.ndarray | None = None
               ) -> tuple[AnyDataset, AnyDataset]:
  """Applies config.randomization once, unless the data carry a manifest."""
  if train.manifest is not None:
    applied = train.manifest.get("randomization")
    if applied != config.randomization:
      raise config_lib.ConfigError(
          f"config.randomization: is {config.randomization!r} but the train= "
          f"data set was already randomized with {applied!r}; pass the clean "
          f"data set or set config.randomization={applied!r}.")
    return train, test
  if config.randomization == "true_labels":
    return train, test
  p = config.corruption_probability
  if is_streamed(train):
    return (train.with_randomization(config.randomization,
                                     seed=config.data_seed, p=p), test)
  kwargs = {}
  if config.gaussian_statistics is not None:
    kwargs["statistics"] = config.gaussian_statistics
  return corruption.randomize(train, test, config.randomization,
                              seed=config.data_seed, p=p,
                              train_indices=train_ids, test_indices=test_ids,
                              **kwargs)


def check_pair(train: AnyDataset, test: AnyDataset) -> None:
  """Checks that a training and a test set can be used together.

  Raises:
    DataError: different numbers of classes or image shapes, float images
      with NaN or infinite pixels, or labels outside [0, num_classes) (data
      sets built with ``replace`` skip the checks of ``from_arrays``).
  """
  if train.num_classes != test.num_classes:
    raise DataError(
        f"the training set has {train.num_classes} classes but the test set "
        f"has {test.num_classes}; they must share one label space. Pass the "
        f"same num_classes to both from_arrays calls (test labels beyond the "
        f"training classes cannot be predicted).")
  if is_streamed(train):
    return
  if train.image_shape != test.image_shape:
    raise DataError(
        f"training images are {train.image_shape} but test images are "
        f"{test.image_shape}; both sets need images of one shape (H, W, C).")
  for role, dataset in (("training", train), ("test", test)):
    dataset_lib.check_finite(dataset.images, f"{role} images")
    dataset_lib.check_labels(dataset.labels, dataset.num_classes,
                             f"{role} labels")
    dataset_lib.check_labels(dataset.true_labels, dataset.num_classes,
                             f"{role} true_labels")


def _sha256(array: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


# Manifest entries that describe the software, not the data (they may change
# between a run and its resume without changing a single example).
_ENVIRONMENT_KEYS = ("rethink_jax_version", "jax_version")


def fingerprint(train: AnyDataset, test: AnyDataset, train_ids: np.ndarray,
                test_ids: np.ndarray) -> dict[str, Any]:
  """What identifies a run's data, stored in its checkpoints.

  For in-memory data sets: SHA-256 of the images, the labels as trained and
  the true labels of both sets as the run uses them (after subsets and
  randomization), with shapes and dtypes. For streamed data sets, whose
  images are too many to hash at every start: name, split, sizes, the
  example ids and the randomization. Both include the randomization
  manifest (without software versions).
  """
  out = {}
  for role, dataset, ids in (("train", train, train_ids),
                             ("test", test, test_ids)):
    entry = dict(name=dataset.name, split=dataset.split,
                 num_classes=int(dataset.num_classes),
                 examples=int(ids.shape[0]),
                 ids_sha256=_sha256(ids.astype(np.int64)))
    if is_streamed(dataset):
      entry.update(num_records=int(dataset.num_examples),
                   image_size=int(dataset.image_size))
    else:
      entry.update(images=f"{dataset.images.dtype}{list(dataset.images.shape)}",
                   images_sha256=_sha256(dataset.images),
                   labels_sha256=_sha256(dataset.labels.astype(np.int32)),
                   true_labels_sha256=_sha256(
                       dataset.true_labels.astype(np.int32)))
    manifest = dataset.manifest
    if manifest is not None:
      manifest = {k: v for k, v in manifest.items()
                  if k not in _ENVIRONMENT_KEYS}
      entry["manifest_sha256"] = hashlib.sha256(json.dumps(
          manifest, sort_keys=True, default=str).encode()).hexdigest()
    out[role] = entry
  return out


def fingerprint_changes(saved: dict[str, Any],
                        current: dict[str, Any]) -> list[str]:
  """``"role.key: saved -> current"`` for every entry that differs."""
  changes = []
  for role in sorted(set(saved) | set(current)):
    a, b = saved.get(role, {}), current.get(role, {})
    for key in sorted(set(a) | set(b)):
      if a.get(key) != b.get(key):
        short = [v[:12] + "..." if isinstance(v, str) and len(v) == 64 else v
                 for v in (a.get(key), b.get(key))]
        changes.append(f"{role}.{key}: {short[0]!r} -> {short[1]!r}")
  return changes


def train_eval_indices(config: ml_collections.ConfigDict, n: int) -> np.ndarray:
  """The training examples of the per-epoch evaluation pass (all by default)."""
  k = min(config.train_eval_examples, n)
  return subset_indices(n, k, config.data_seed, _TRAIN_EVAL_SUBSET)


def describe(train: AnyDataset, test: AnyDataset, train_ids: np.ndarray,
             test_ids: np.ndarray) -> dict[str, Any]:
  """Name, splits and sizes of the data, for summary.json."""
  return dict(name=train.name, train_split=train.split, test_split=test.split,
              train_examples=int(train_ids.shape[0]),
              test_examples=int(test_ids.shape[0]),
              num_classes=int(train.num_classes),
              streamed=is_streamed(train))


@dataclasses.dataclass(frozen=True)
class DeviceData:
  """A small data set replicated on every device (uint8 or float32 images)."""

  images: jax.Array
  labels: jax.Array
  true_labels: jax.Array


def to_device(dataset: ArrayDataset, index: np.ndarray,
              sharding: jax.sharding.Sharding) -> DeviceData:
  """Copies ``dataset[index]`` onto the devices (replicated, multi-host safe).

  Args:
    dataset: an in-memory data set.
    index: the examples to copy.
    sharding: a replicated sharding over the mesh.

  Returns:
    The device arrays: images keep their dtype (uint8, or float32 for
    Gaussian inputs); labels are int32.
  """

  def put(array):
    array = np.ascontiguousarray(array[index])
    return jax.make_array_from_callback(array.shape, sharding,
                                        lambda i: array[i])

  return DeviceData(images=put(dataset.images),
                    labels=put(dataset.labels.astype(np.int32)),
                    true_labels=put(dataset.true_labels.astype(np.int32)))


class StreamFeed:
  """Host-fed, prefetched batches of a streamed data set.

  Each process reads its own share of every global batch (its contiguous
  slice of the batch's examples) and the shares are assembled into one
  global array split along the batch axis.
  """

  def __init__(self, stream: Any, ids: np.ndarray,
               batch_sharding: jax.sharding.Sharding, seed: int):
    """Wraps a stream.

    Args:
      stream: a ``StreamingDataset`` (``batch(indices, *, epoch, train,
        augment, seed)``).
      ids: the stream's examples this run uses (a subset or all).
      batch_sharding: ``NamedSharding(mesh, P("data"))``.
      seed: seed of the stream's augmentation draws (``config.seed``).
    """
    self.stream = stream
    self.ids = ids
    self.sharding = batch_sharding
    self.seed = seed
    self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)

  def _local(self, global_ids: np.ndarray) -> np.ndarray:
    share = global_ids.shape[0] // jax.process_count()
    start = jax.process_index() * share
    return global_ids[start:start + share]

  def _put(self, array: np.ndarray) -> jax.Array:
    return jax.make_array_from_process_local_data(self.sharding, array)

  def _load(self, global_ids: np.ndarray, *, epoch: int, train: bool,
            augment: bool, valid: np.ndarray | None = None
            ) -> tuple[jax.Array, ...]:
    batch = self.stream.batch(self._local(global_ids), epoch=epoch,
                              train=train, augment=augment, seed=self.seed)
    arrays = [batch["images"], batch["labels"].astype(np.int32)]
    if valid is not None:
      arrays += [batch["true_labels"].astype(np.int32), self._local(valid)]
    return tuple(self._put(a) for a in arrays)

  def _prefetched(self, jobs: Iterator[dict[str, Any]]
                  ) -> Iterator[tuple[jax.Array, ...]]:
    queue: collections.deque[concurrent.futures.Future] = (
        collections.deque())
    for job in jobs:
      queue.append(self._executor.submit(self._load, **job))
      if len(queue) > _PREFETCH:
        yield queue.popleft().result()
    while queue:
      yield queue.popleft().result()

  def train_batches(self, order: np.ndarray, *, epoch: int, num_batches: int,
                    batch_size: int, augment: bool
                    ) -> Iterator[tuple[jax.Array, ...]]:
    """The first ``num_batches`` batches of an epoch as (images, labels).

    Args:
      order: the epoch's permutation of ``range(len(ids))``.
      epoch: 0-based epoch (passed to the stream for its augmentation).
      num_batches: number of batches (the remainder of ``order`` is dropped).
      batch_size: global batch size.
      augment: the stream's training augmentation (config.random_crop).

    Yields:
      Sharded uint8 images and int32 labels as trained.
    """
    jobs = (dict(global_ids=self.ids[order[b * batch_size:
                                           (b + 1) * batch_size]],
                 epoch=epoch, train=True, augment=augment)
            for b in range(num_batches))
    yield from self._prefetched(jobs)

  def eval_batches(self, index: np.ndarray, eval_batch_size: int
                   ) -> Iterator[tuple[jax.Array, ...]]:
    """Evaluation batches over ``ids[index]``, the last one padded.

    Yields:
      ``(images, labels, true_labels, valid)``, sharded; ``valid`` is False
      on padding.
    """
    n = index.shape[0]

    def jobs():
      for start in range(0, n, eval_batch_size):
        position = start + np.arange(eval_batch_size)
        valid = position < n
        global_ids = self.ids[index[np.minimum(position, n - 1)]]
        yield dict(global_ids=global_ids, epoch=0, train=False, augment=False,
                   valid=valid)

    yield from self._prefetched(jobs())

  def close(self) -> None:
    self._executor.shutdown(wait=True)

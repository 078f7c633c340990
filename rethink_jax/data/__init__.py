"""Data sets of the paper through tfds, online or offline.

``load("cifar10")`` returns the whole split as an in-memory
:class:`~rethink_jax.dataset.ArrayDataset` (uint8 NHWC images, int32
labels); ``load_stream("imagenet2012")`` returns a
:class:`~rethink_jax.streaming.StreamingDataset` that reads ArrayRecord
files by index through ``tfds.data_source``.

Where the data comes from (``source``):

* ``"tfds"``: tfds' own builder (``cifar10``, ``mnist``, ``fashion_mnist``,
  ``imagenet2012``, ``imagenette``), downloading it when it is not yet
  prepared, as tfds normally does.
* ``"offline"``: the project's builders in :mod:`rethink_jax.sources`, which
  prepare the same data through the same tfds machinery from local files
  (``RETHINK_JAX_OFFLINE_DIR``, default ``shared/data`` in the folder holding the
  checkout; Fashion-MNIST from ``/usr/share/datasets/fashion-mnist``).
* ``"auto"`` (default): tfds' builder if it is already prepared in
  ``data_dir``, else the offline builder if its files are present, else a
  tfds download.

``data_dir`` (argument, else ``RETHINK_JAX_DATA_DIR``, else tfds' default
``TFDS_DATA_DIR`` / ``~/tensorflow_datasets``) says where prepared data lives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import pathlib
import socket
import threading
import zipfile

from absl import logging
import numpy as np

from rethink_jax.data import streaming
from rethink_jax.data.dataset import ArrayDataset, DataError, from_arrays
from rethink_jax.data.streaming import StreamingDataset, imagenet_label_ids
from rethink_jax.registry import Registry

SOURCES = ("auto", "tfds", "offline")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """How one named data set is found and read."""

  tfds_name: str
  offline_builder: str | None  # name of a builder in rethink_jax.sources
  offline_files: tuple[str, ...]  # files that must exist in the source dir
  offline_env: str  # environment variable naming the source dir
  streamed: bool  # ImageNet-like: read by index, not held in memory
  test_split: str
  num_classes: int
  download_host: str | None  # where tfds downloads it from (None: manual)


_DEFAULT_FASHION_DIR = "/usr/share/datasets/fashion-mnist"

DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec("cifar10", "cifar10_jpeg",
                           ("cifar10-jpeg.tar.gz",), "RETHINK_JAX_OFFLINE_DIR",
                           False, "test", 10, "www.cs.toronto.edu"),
    "mnist": DatasetSpec("mnist", None, (), "", False, "test", 10,
                         "storage.googleapis.com"),
    "fashion_mnist": DatasetSpec("fashion_mnist", "fashion_mnist_idx",
                                 ("train-images-idx3-ubyte.gz",),
                                 "RETHINK_JAX_FASHION_MNIST_DIR", False,
                                 "test", 10,
                                 "fashion-mnist.s3-website.eu-central-1"
                                 ".amazonaws.com"),
    "imagenet2012": DatasetSpec("imagenet2012", None, (), "", True,
                                "validation", 1000, None),
    "imagenette": DatasetSpec("imagenette/full-size-v2", "imagenette224_jpeg",
                              ("imagenette-224-jpeg.tar.gz",),
                              "RETHINK_JAX_OFFLINE_DIR", True, "validation",
                              10, "s3.amazonaws.com"),
}


_REGISTRY: Registry[DatasetSpec] = Registry(
    "data set", "or wrap your own arrays with "
    "rethink_jax.data.from_arrays(images, labels)", DATASETS, DataError)


def register(name: str, spec: DatasetSpec) -> DatasetSpec:
  """Adds a data set under ``name`` (config.dataset) to :data:`DATASETS`.

  The config validation and both load paths read :data:`DATASETS`; a new
  tfds data set needs only its entry (and, to work offline, a builder in
  :mod:`rethink_jax.data.sources`).
  """
  return _REGISTRY.register(name, spec)


def is_streamed(name: str) -> bool:
  """Whether data set ``name`` is read per batch (ImageNet-like) rather than
  held in memory; False for ``"arrays"`` (data the caller passes)."""
  return name != "arrays" and _spec(name).streamed


def _spec(name: str) -> DatasetSpec:
  return _REGISTRY.get(name)


def test_split(name: str) -> str:
  """The split the paper evaluates on ("test" or "validation")."""
  return _spec(name).test_split


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> str | None:
  """The tfds data_dir: argument, else RETHINK_JAX_DATA_DIR, else tfds' own."""
  if data_dir is not None:
    return os.fspath(data_dir)
  return os.environ.get("RETHINK_JAX_DATA_DIR") or None


def _default_offline_dirs() -> list[pathlib.Path]:
  """``shared/data`` in the folder holding the checkout, then in the one
  holding the working directory."""
  repo_root = pathlib.Path(__file__).resolve().parent.parent
  return [repo_root.parent / "shared" / "data",
          pathlib.Path.cwd().parent / "shared" / "data"]


def offline_source_dir(name: str, source_dir=None) -> str | None:
  """The folder with the offline source files of ``name``, if there is one.

  Args:
    name: a data set name with an offline builder.
    source_dir: an explicit folder (wins over the environment).

  Returns:
    The first folder holding the files, or None if none is found.
  """
  spec = _spec(name)
  if spec.offline_builder is None:
    return None
  if source_dir is not None:
    candidates = [pathlib.Path(source_dir)]
  elif os.environ.get(spec.offline_env):
    candidates = [pathlib.Path(os.environ[spec.offline_env])]
  elif name == "fashion_mnist":
    candidates = [pathlib.Path(_DEFAULT_FASHION_DIR)]
  else:
    candidates = _default_offline_dirs()
  for folder in candidates:
    if all((folder / f).is_file() for f in spec.offline_files):
      return os.fspath(folder)
  return None


def _offline_builder(name: str, data_dir):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  # Importing sources registers the offline tfds builders.
  from rethink_jax.data import sources  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  return tfds.builder(_spec(name).offline_builder, data_dir=data_dir)


def _prepare(builder, manual_dir=None) -> None:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  config = tfds.download.DownloadConfig(manual_dir=manual_dir)
  try:
    builder.download_and_prepare(download_config=config,
                                 file_format="array_record")
  except OSError as e:
    raise DataError(
        f"cannot write the prepared {builder.name} into {builder.data_dir}: "
        f"{type(e).__name__}: {e}. Point RETHINK_JAX_DATA_DIR (or "
        f"config.data_dir / the data_dir argument) at a writable folder with "
        f"free space.") from e


@contextlib.contextmanager
def _one_preparer(builder):
  """Lets one process at a time prepare ``builder``'s data set.

  Processes that load the same unprepared data set at once (the processes
  of a multi-host run on one disk, parallel test workers) would each write
  it and clash when they move it into place; with this lock the others wait
  and then find it prepared. Where the lock file cannot be made the
  preparation goes on unlocked and reports its own error.
  """
  folder = pathlib.Path(builder.data_dir).parent
  try:
    folder.mkdir(parents=True, exist_ok=True)
    file = open(folder / f".{pathlib.Path(builder.data_dir).name}.lock", "a")
  except OSError:
    yield
    return
  with file:
    fcntl.flock(file.fileno(), fcntl.LOCK_EX)
    yield


def _prepare_once(builder, make_builder, manual_dir=None):
  """Prepares the unprepared ``builder`` under :func:`_one_preparer`.

  Returns a builder made anew by ``make_builder()`` once the lock is held
  (another process may have prepared the data meanwhile).
  """
  with _one_preparer(builder):
    builder = make_builder()
    if not builder.is_prepared():
      _prepare(builder, manual_dir=manual_dir)
  return builder


def _reachable(host: str, timeout: float = 5.0) -> bool:
  """Whether a TCP connection to ``host:443`` opens within ``timeout``."""
  result = []

  def probe():
    try:
      socket.create_connection((host, 443), timeout=timeout).close()
      result.append(True)
    except OSError:
      pass

  thread = threading.Thread(target=probe, daemon=True)
  thread.start()
  thread.join(timeout)
  return bool(result)


def _missing_offline_files(name: str, source_dir) -> str:
  spec = _spec(name)
  where = source_dir or os.environ.get(spec.offline_env) or (
      _DEFAULT_FASHION_DIR if name == "fashion_mnist" else
      " or ".join(map(str, _default_offline_dirs())))
  return (f"offline files {spec.offline_files} for {name} not found in "
          f"{where}. Set {spec.offline_env} to the folder that holds them.")


def builder(name: str, *, data_dir=None, source: str = "auto",
            source_dir=None, prepare: bool = True):
  """A prepared tfds builder for a named data set.

  Args:
    name: one of :data:`DATASETS`.
    data_dir: where prepared data lives (see :func:`resolve_data_dir`).
    source: ``"auto"``, ``"tfds"`` or ``"offline"`` (see the module doc).
    source_dir: folder with the offline files (overrides the environment).
    prepare: prepare the data when it is not prepared yet.

  Returns:
    A ``tfds.core.DatasetBuilder`` whose data is prepared.

  Raises:
    DataError: unknown name or source, missing or corrupt offline files, or a
      download that failed.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  spec = _spec(name)
  if source not in SOURCES:
    raise DataError(f"unknown source {source!r}; use one of {SOURCES}.")
  data_dir = resolve_data_dir(data_dir)
  offline_dir = offline_source_dir(name, source_dir)

  if source == "offline" or (source == "auto" and offline_dir is not None):
    canonical = tfds.builder(spec.tfds_name, data_dir=data_dir)
    if source == "auto" and canonical.is_prepared():
      return canonical
    if spec.offline_builder is None:
      raise DataError(f"{name} has no offline source; use source='tfds' (it "
                      f"needs internet or a prepared data_dir).")
    if offline_dir is None:
      raise DataError(_missing_offline_files(name, source_dir))
    offline = _offline_builder(name, data_dir)
    if offline.is_prepared():
      return offline
    if not prepare:
      raise DataError(f"{name} is not prepared in {offline.data_dir}.")
    return _prepare_once(offline, lambda: _offline_builder(name, data_dir),
                         manual_dir=offline_dir)

  canonical = tfds.builder(spec.tfds_name, data_dir=data_dir)
  if not canonical.is_prepared():
    if not prepare:
      raise DataError(f"{name} is not prepared in {canonical.data_dir}.")
    # A fallback from "auto" with an offline folder named explicitly, or
    # with no network: fail now with the paths, not after minutes of
    # download retries.
    explicit = source_dir is not None or os.environ.get(spec.offline_env)
    if spec.offline_builder and source == "auto" and explicit:
      raise DataError(_missing_offline_files(name, source_dir))
    if (spec.download_host and source == "auto" and
        not _reachable(spec.download_host)):
      offline = (f" Offline: {_missing_offline_files(name, source_dir)}"
                 if spec.offline_builder else "")
      raise DataError(
          f"{name} is not prepared in {canonical.data_dir} and its download "
          f"host {spec.download_host} cannot be reached.{offline}")
    try:
      canonical = _prepare_once(
          canonical, lambda: tfds.builder(spec.tfds_name, data_dir=data_dir))
    except Exception as e:  # pylint: disable=broad-except
      hint = (f" Offline, set {spec.offline_env} to the folder with "
              f"{spec.offline_files[0]}." if spec.offline_builder else "")
      raise DataError(
          f"tfds could not prepare {spec.tfds_name} in {canonical.data_dir}: "
          f"{type(e).__name__}: {str(e)[:500]}. It needs internet (or, for "
          f"imagenet2012, the manual download in the tfds manual_dir)."
          f"{hint}") from e
  return canonical


def _check_split(tfds_builder, split: str) -> None:
  base = split.split("[")[0]
  # Without metadata (e.g. under tfds.testing.mock_data) tfds checks itself.
  if tfds_builder.info.splits and base not in tfds_builder.info.splits:
    raise DataError(f"{tfds_builder.name} has no split {base!r}; its splits "
                    f"are {sorted(tfds_builder.info.splits)}.")


def _cache_path(tfds_builder, split: str) -> pathlib.Path:
  safe = "".join(c if c.isalnum() else "_" for c in split)
  return pathlib.Path(tfds_builder.data_dir) / "rethink_jax_arrays" / (
      safe + ".npz")


def damaged_records_error(tfds_builder, split: str,
                          error: Exception) -> DataError:
  """The DataError for prepared records that cannot be read back."""
  return DataError(
      f"cannot read {tfds_builder.name} split {split!r} from "
      f"{tfds_builder.data_dir}: {type(error).__name__}: {str(error)[:300]}. "
      f"The prepared files are damaged; delete {tfds_builder.data_dir} and "
      f"run again to prepare them anew.")


def _decode_split(tfds_builder, split: str) -> tuple[np.ndarray, np.ndarray]:
  try:
    return _decode_records(tfds_builder, split)
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise damaged_records_error(tfds_builder, split, e) from e


def _decode_records(tfds_builder, split: str
                    ) -> tuple[np.ndarray, np.ndarray]:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if tfds_builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
    source = tfds_builder.as_data_source(split=split)
    records = source.__getitems__(list(range(len(source))))
    images = np.stack([r["image"] for r in records])
    labels = np.asarray([r["label"] for r in records])
    return images, labels
  # tfds' own preparation writes TFRecord files: read them with tf.data.
  ds = tfds_builder.as_dataset(split=split, batch_size=4096,
                               shuffle_files=False)
  batches = list(tfds.as_numpy(ds))
  if not batches:
    raise DataError(f"{tfds_builder.name} split {split!r} is empty.")
  return (np.concatenate([b["image"] for b in batches]),
          np.concatenate([b["label"] for b in batches]))


def _read_all(tfds_builder, split: str) -> tuple[np.ndarray, np.ndarray]:
  """All images and labels of a split, in the stored order.

  Decoding 60,000 records through tfds takes ~20 s on 2 cores, so the decoded
  arrays are cached beside the prepared data (``rethink_jax_arrays/`` in the
  builder's versioned folder) and the cache is written atomically. A
  read-only data_dir simply goes without the cache.
  """
  _check_split(tfds_builder, split)
  cache = _cache_path(tfds_builder, split)
  # Only data that was really prepared (it has its dataset_info.json) is
  # cached, never e.g. the fake examples of tfds.testing.mock_data.
  prepared = (pathlib.Path(tfds_builder.data_dir) / "dataset_info.json"
              ).is_file()
  if not prepared:
    return _decode_split(tfds_builder, split)
  if cache.is_file():
    try:
      with np.load(cache) as arrays:
        return arrays["images"], arrays["labels"]
    except (OSError, ValueError, KeyError, EOFError,
            zipfile.BadZipFile) as e:
      logging.warning("The decoded-array cache %s is damaged (%s: %s); "
                      "decoding the split again and rewriting it.", cache,
                      type(e).__name__, e)
      cache.unlink(missing_ok=True)
  images, labels = _decode_split(tfds_builder, split)
  try:
    cache.parent.mkdir(exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
      np.savez(f, images=images, labels=labels)
    os.replace(tmp, cache)
  except OSError:
    pass
  return images, labels


def load(name: str, split: str = "train", *, data_dir=None,
         source: str = "auto", source_dir=None) -> ArrayDataset:
  """A whole split of a small data set as uint8 NHWC arrays in memory.

  Example::

    from rethink_jax import data
    test = data.load("fashion_mnist", "test")
    print(test.images.shape, test.images.dtype)  # (10000, 28, 28, 1) uint8

  Args:
    name: ``"cifar10"``, ``"mnist"`` or ``"fashion_mnist"``.
    split: a tfds split, e.g. ``"train"``, ``"test"`` or ``"train[:1000]"``.
    data_dir, source, source_dir: see :func:`builder`.

  Returns:
    An :class:`ArrayDataset` in the stored example order.
  """
  spec = _spec(name)
  if spec.streamed:
    raise DataError(f"{name} is too large to hold in memory; use "
                    f"rethink_jax.data.load_stream({name!r}, ...).")
  b = builder(name, data_dir=data_dir, source=source, source_dir=source_dir)
  images, labels = _read_all(b, split)
  if images.dtype != np.uint8:
    raise DataError(f"{b.name} images have dtype {images.dtype}, expected "
                    f"uint8.")
  return from_arrays(images, labels,
                     num_classes=spec.num_classes, name=name, split=split)


def load_stream(name: str, split: str = "train", *, data_dir=None,
                source: str = "auto", source_dir=None, image_size: int = 299,
                label_space: str = "native"):
  """An ImageNet-like split read record by record (paper Appendix B).

  Args:
    name: ``"imagenet2012"`` or ``"imagenette"``.
    split: ``"train"`` or ``"validation"`` (a tfds split string).
    data_dir, source, source_dir: see :func:`builder`.
    image_size: side of the square images handed to the model (299 for
      Inception V3).
    label_space: ``"native"`` (Imagenette's 10 classes) or ``"imagenet"``
      (Imagenette's labels mapped onto the 1000 ImageNet classes).

  Returns:
    A :class:`~rethink_jax.streaming.StreamingDataset`.
  """
  spec = _spec(name)
  if not spec.streamed:
    raise DataError(f"{name} is small; use rethink_jax.data.load({name!r}).")
  b = builder(name, data_dir=data_dir, source=source, source_dir=source_dir)
  return streaming.StreamingDataset.from_builder(
      b, split, name=name, image_size=image_size, label_space=label_space)


__all__ = ["ArrayDataset", "DataError", "StreamingDataset", "DATASETS", "DatasetSpec", "builder",
           "from_arrays", "imagenet_label_ids", "is_streamed", "load",
           "load_stream", "offline_source_dir", "register",
           "resolve_data_dir", "test_split"]

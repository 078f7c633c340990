"""Data loading: tfds paths (mocked), offline sources (real), from_arrays."""

import io
import os
import shutil
import tarfile
import threading
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from rethink_jax import data
from rethink_jax.data import sources
from rethink_jax.data.dataset import DataError, from_arrays

SHARED = data.offline_source_dir("cifar10")


# --------------------------------------------------------------------------
# from_arrays: bring-your-own data, validated
# --------------------------------------------------------------------------


def test_from_arrays_accepts_uint8_and_gray():
  images = np.zeros((5, 8, 8), np.uint8)
  ds = from_arrays(images, [0, 1, 2, 1, 0], name="mine", split="train")
  assert ds.images.shape == (5, 8, 8, 1)
  assert ds.labels.dtype == np.int32 and ds.num_classes == 3
  np.testing.assert_array_equal(ds.true_labels, ds.labels)
  assert not ds.corrupted_mask.any()


def test_from_arrays_keeps_float_pixels_as_float32():
  ds = from_arrays(np.random.rand(3, 4, 4, 3) * 255, [0, 1, 1], 2)
  assert ds.images.dtype == np.float32


@pytest.mark.parametrize("images, labels, kwargs, message", [
    (np.zeros((4, 8), np.uint8), [0, 1, 0, 1], {}, "shape (N, H, W, C)"),
    (np.zeros((4, 8, 8, 3), np.int64), [0, 1, 0, 1], {}, "dtype int64"),
    (np.zeros((4, 8, 8, 3), np.uint8), [0, 1, 0], {}, "4 images but 3"),
    (np.zeros((4, 8, 8, 3), np.uint8), [0, 1, 0, 7], {"num_classes": 5},
     "labels must lie in [0, 5)"),
    (np.zeros((4, 8, 8, 3), np.uint8), [0, -1, 0, 1], {}, "negative labels"),
    (np.zeros((4, 8, 8, 3), np.uint8), [0.0, 1.0, 0.0, 1.0], {},
     "labels must be integers"),
    (np.zeros((4, 8, 8, 3), np.uint8), np.eye(4, dtype=int), {},
     "argmax"),
    (np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0, int), {}, "empty"),
])
def test_from_arrays_rejects_bad_input(images, labels, kwargs, message):
  with pytest.raises(DataError, match=r".*" + __import__("re").escape(message)):
    from_arrays(images, np.asarray(labels), **kwargs)


def test_unknown_dataset_names_the_choices():
  with pytest.raises(DataError, match="cifar10.*from_arrays"):
    data.load("cifar100")


def test_wrong_loader_for_size_is_explained():
  with pytest.raises(DataError, match="load_stream"):
    data.load("imagenet2012")
  with pytest.raises(DataError, match="use rethink_jax.data.load"):
    data.load_stream("cifar10")


def test_unknown_source_rejected():
  with pytest.raises(DataError, match="auto"):
    data.builder("cifar10", source="internet")


# --------------------------------------------------------------------------
# tfds' own builders, exercised with tfds.testing.mock_data
# --------------------------------------------------------------------------


@pytest.fixture
def empty_data_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("RETHINK_JAX_DATA_DIR", str(tmp_path / "tfds"))
  return tmp_path / "tfds"


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)),
                                         ("cifar10", (32, 32, 3))])
def test_tfds_path_with_mock_data(empty_data_dir, name, shape):
  with tfds.testing.mock_data(num_examples=12):
    ds = data.load(name, "train", source="tfds")
  assert ds.images.shape == (12, *shape) and ds.images.dtype == np.uint8
  assert ds.labels.dtype == np.int32 and ds.num_classes == 10
  assert ds.labels.min() >= 0 and ds.labels.max() < 10
  # Mock data is never cached as if it were the real data set.
  assert not list(empty_data_dir.rglob("*.npz"))


def test_imagenet2012_streams_with_mock_data(empty_data_dir):
  with tfds.testing.mock_data(num_examples=10):
    stream = data.load_stream("imagenet2012", "train", image_size=64)
    batch = stream.batch(np.array([0, 3, 7]), epoch=0, train=True,
                         augment=True)
    evaluation = stream.batch(np.array([0, 3, 7]), epoch=0, train=False)
  assert stream.num_classes == 1000 and stream.num_examples == 10
  assert batch["images"].shape == (3, 64, 64, 3)
  assert batch["images"].dtype == np.uint8
  assert evaluation["images"].shape == (3, 64, 64, 3)
  assert ((batch["labels"] >= 0) & (batch["labels"] < 1000)).all()


def test_tfds_download_failure_names_offline_fix(empty_data_dir, monkeypatch):
  def no_network(self, *args, **kwargs):
    raise ConnectionError("no route to host")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                      no_network)
  with pytest.raises(DataError, match="RETHINK_JAX_OFFLINE_DIR"):
    data.load("cifar10", source="tfds")


# --------------------------------------------------------------------------
# The offline sources, read for real
# --------------------------------------------------------------------------


def test_offline_cifar10_is_the_full_data_set(cifar10_train, cifar10_test):
  assert cifar10_train.images.shape == (50_000, 32, 32, 3)
  assert cifar10_test.images.shape == (10_000, 32, 32, 3)
  assert cifar10_train.images.dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(cifar10_train.labels),
                                [5000] * 10)
  np.testing.assert_array_equal(np.bincount(cifar10_test.labels), [1000] * 10)
  # Real photographs: not constant, not noise-like mean.
  assert 100 < cifar10_train.images.mean() < 140
  assert cifar10_train.images.std() > 50


@pytest.mark.real_data("cifar10", offline=True)
def test_offline_cifar10_labels_follow_the_archive_folders():
  """A record's label is its class folder's index in CIFAR-10 order."""
  b = data.builder("cifar10")
  source = b.as_data_source(split="test")
  for i in (0, 1234, 9999):
    record = source[i]
    folder = record["id"].decode().split("/")[1]
    assert sources.CIFAR10_CLASSES.index(folder) == record["label"]


@pytest.mark.real_data("cifar10", offline=True)
def test_offline_cifar10_pixels_match_the_jpeg_files():
  from PIL import Image
  b = data.builder("cifar10")
  record = b.as_data_source(split="train")[42]
  name = record["id"].decode()
  with tarfile.open(os.path.join(SHARED, sources.CIFAR10_ARCHIVE)) as tar:
    raw = tar.extractfile(name).read()
  expected = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
  np.testing.assert_array_equal(record["image"], expected)


def test_offline_fashion_mnist_equals_the_idx_payload(fashion_mnist_train,
                                                      fashion_mnist_test):
  folder = data.offline_source_dir("fashion_mnist")
  for ds, prefix in ((fashion_mnist_train, "train"),
                     (fashion_mnist_test, "t10k")):
    idx_images = sources.read_idx(
        os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"))
    idx_labels = sources.read_idx(
        os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"))
    assert ds.images.shape == (len(idx_images), 28, 28, 1)
    # tfds stores examples in its own order: compare (image, label) pairs
    # as multisets, which also proves the PNG round trip is lossless.
    def pairs(images, labels):
      flat = images.reshape(len(images), -1)
      rows = np.concatenate([flat, labels.reshape(-1, 1).astype(np.uint8)],
                            axis=1)
      return rows[np.lexsort(rows.T[::-1])]
    np.testing.assert_array_equal(pairs(ds.images, ds.labels),
                                  pairs(idx_images, idx_labels))


def test_offline_imagenette_streams_real_images(imagenette_train):
  assert imagenette_train.num_examples == 9469
  assert imagenette_train.num_classes == 10
  indices = np.array([0, 17, 9468])
  evaluation = imagenette_train.batch(indices, epoch=0, train=False)
  assert evaluation["images"].shape == (3, 75, 75, 3)
  assert evaluation["images"].std() > 20  # real photographs
  np.testing.assert_array_equal(evaluation["labels"],
                                evaluation["true_labels"])
  # The augmentation draw is a function of (seed, epoch, index) only.
  a = imagenette_train.batch(indices, epoch=3, train=True, augment=True)
  b = imagenette_train.batch(indices[::-1], epoch=3, train=True, augment=True)
  np.testing.assert_array_equal(a["images"], b["images"][::-1])
  c = imagenette_train.batch(indices, epoch=4, train=True, augment=True)
  assert not np.array_equal(a["images"], c["images"])


@pytest.mark.real_data("imagenette")
def test_imagenette_maps_onto_imagenet_classes():
  stream = data.load_stream("imagenette", "validation", image_size=75,
                            label_space="imagenet")
  names = tfds.builder("imagenet2012").info.features["label"].names
  labels = stream.true_labels(np.arange(0, stream.num_examples, 97))
  assert stream.num_classes == 1000
  assert {names[label] for label in labels} <= set(sources.IMAGENETTE_WNIDS)


# --------------------------------------------------------------------------
# Failures: clear errors, nothing half-written that a later run would trust
# --------------------------------------------------------------------------


def _copy_archive(tmp_path, corrupt: bool):
  src = os.path.join(SHARED, sources.CIFAR10_ARCHIVE)
  dst = tmp_path / "src" / sources.CIFAR10_ARCHIVE
  dst.parent.mkdir()
  shutil.copyfile(src, dst)
  if corrupt:
    with open(dst, "r+b") as f:
      f.seek(1000)
      f.write(b"\x00" * 16)
  return dst.parent


def test_missing_archive_names_the_fix(tmp_path, empty_data_dir):
  (tmp_path / "nothing").mkdir()
  with pytest.raises(DataError, match="RETHINK_JAX_OFFLINE_DIR"):
    data.load("cifar10", source="offline", source_dir=tmp_path / "nothing")


@pytest.mark.real_data("cifar10", offline=True)
def test_corrupt_archive_is_rejected_and_nothing_is_prepared(tmp_path,
                                                             empty_data_dir):
  folder = _copy_archive(tmp_path, corrupt=True)
  with pytest.raises(DataError, match="corrupt"):
    data.load("cifar10", source="offline", source_dir=folder)
  offline = tfds.builder("cifar10_jpeg", data_dir=str(empty_data_dir))
  assert not offline.is_prepared()


@pytest.mark.real_data("cifar10", offline=True)
def test_failed_preparation_leaves_nothing_trusted(tmp_path, empty_data_dir,
                                                   monkeypatch):
  folder = _copy_archive(tmp_path, corrupt=False)
  original = sources.Cifar10Jpeg._generate_examples

  def fail_midway(self, archive, split):
    for n, example in enumerate(original(self, archive, split)):
      if n == 200:
        raise OSError("disk full")
      yield example

  monkeypatch.setattr(sources.Cifar10Jpeg, "_generate_examples", fail_midway)
  with pytest.raises(DataError, match=f"into {empty_data_dir}.*disk full"):
    data.load("cifar10", source="offline", source_dir=folder)
  offline = tfds.builder("cifar10_jpeg", data_dir=str(empty_data_dir))
  assert not offline.is_prepared()
  assert not (empty_data_dir / "cifar10_jpeg" / "1.0.0").exists()


class _MovedIntoPlace:
  """A builder that prepares as tfds does: work, then move the folder in."""

  name = "toy"

  def __init__(self, root, prepared_by):
    self.data_dir = str(root / "toy" / "1.0.0")
    self.prepared_by = prepared_by

  def is_prepared(self):
    return os.path.isdir(self.data_dir)

  def download_and_prepare(self, **_):
    self.prepared_by.append(threading.get_ident())
    time.sleep(0.3)
    os.makedirs(self.data_dir)  # FileExistsError for a second preparer


def test_loaders_started_together_prepare_once(tmp_path):
  """Two loaders of one unprepared data set: one prepares, one waits."""
  prepared_by, errors = [], []
  start = threading.Barrier(2)

  def load():
    try:
      make = lambda: _MovedIntoPlace(tmp_path, prepared_by)  # noqa: E731
      builder = make()
      start.wait()
      assert data._prepare_once(builder, make).is_prepared()  # pylint: disable=protected-access
    except Exception as e:  # pylint: disable=broad-except
      errors.append(e)

  threads = [threading.Thread(target=load) for _ in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert not errors, errors
  assert len(prepared_by) == 1


def test_corrupt_idx_payload_is_rejected(tmp_path):
  path = tmp_path / "train-labels-idx1-ubyte"
  path.write_bytes(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"\x01\x02")
  with pytest.raises(DataError, match="truncated"):
    sources.read_idx(path)
  with pytest.raises(DataError, match="sha256"):
    sources.read_idx(path, expected_sha256="0" * 64)


def test_streamed_label_randomization_equals_in_memory(imagenette_train):
  """Example i gets the same random label streamed or in memory."""
  from rethink_jax import corruption
  stream = imagenette_train.with_randomization("partially_corrupted_labels",
                                               seed=7, p=0.6)
  indices = np.array([5, 9000, 17, 4242, 0])
  expected, _ = corruption.corrupt_labels(
      corruption.train_label_key(7), stream.all_true_labels(), 0.6, 10)
  np.testing.assert_array_equal(stream.labels(indices), expected[indices])
  batch = stream.batch(indices, epoch=2, train=False)
  np.testing.assert_array_equal(batch["labels"], expected[indices])
  manifest = stream.manifest
  assert manifest["num_changed_labels"] == int(
      (expected != stream.all_true_labels()).sum())
  assert 0.6 * 0.9 - 0.03 < manifest["changed_label_fraction"] < 0.6 * 0.9 + 0.03
  assert manifest["labels_sha256"] == corruption.sha256(expected)
  with pytest.raises(DataError, match="in-memory path"):
    imagenette_train.with_randomization("gaussian", seed=0)
  with pytest.raises(DataError, match="requires p"):
    imagenette_train.with_randomization("partially_corrupted_labels", seed=0)

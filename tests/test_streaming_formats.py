"""A split prepared as TFRecord streams exactly like one prepared as
ArrayRecord, through TF-slim's preprocessing (JPEG and PNG images)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds

from rethink_jax.data import inception_preprocessing, streaming


class FormatsTinyJpeg(tfds.core.GeneratorBasedBuilder):
  """Twelve 24x32 images in three classes, JPEG-encoded."""

  VERSION = tfds.core.Version("1.0.0")
  ENCODING = "jpeg"

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=(
        tfds.features.FeaturesDict(
            {"image": tfds.features.Image(shape=(24, 32, 3),
                                          encoding_format=self.ENCODING),
             "label": tfds.features.ClassLabel(num_classes=3)})))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    rng = np.random.default_rng(0)
    for i in range(12):
      yield i, {"image": rng.integers(0, 256, (24, 32, 3), np.uint8),
                "label": i % 3}


class FormatsTinyPng(FormatsTinyJpeg):
  """The same images, PNG-encoded."""

  ENCODING = "png"


@pytest.fixture(scope="module", params=[FormatsTinyJpeg, FormatsTinyPng],
                ids=["jpeg", "png"])
def prepared(request, tmp_path_factory):
  cls = request.param
  out = {}
  for file_format in ("tfrecord", "array_record"):
    builder = cls(data_dir=str(tmp_path_factory.mktemp(file_format)))
    builder.download_and_prepare(file_format=file_format)
    out[file_format] = builder
  return out


def test_tfrecord_split_streams_like_array_record(prepared):
  streams = {f: streaming.StreamingDataset.from_builder(
      b, "train", name="tiny", image_size=16) for f, b in prepared.items()}
  assert isinstance(streams["tfrecord"]._source,  # pylint: disable=protected-access
                    streaming.TFRecordSource)
  assert len(streams["tfrecord"]) == len(streams["array_record"]) == 12
  indices = np.array([11, 0, 5, 7])
  for kwargs in (dict(epoch=2, train=True, augment=True),
                 dict(epoch=0, train=False)):
    a = streams["tfrecord"].batch(indices, **kwargs)
    b = streams["array_record"].batch(indices, **kwargs)
    for key in ("images", "labels", "true_labels"):
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  np.testing.assert_array_equal(streams["tfrecord"].all_true_labels(),
                                streams["array_record"].all_true_labels())


def test_tfrecord_sub_split(prepared):
  whole = streaming.StreamingDataset.from_builder(
      prepared["tfrecord"], "train", name="tiny", image_size=16)
  part = streaming.StreamingDataset.from_builder(
      prepared["tfrecord"], "train[3:8]", name="tiny", image_size=16)
  assert len(part) == 5
  np.testing.assert_array_equal(part.true_labels(np.arange(5)),
                                whole.true_labels(np.arange(3, 8)))


def test_augmentation_is_a_function_of_seed_epoch_and_index(prepared):
  stream = streaming.StreamingDataset.from_builder(
      prepared["array_record"], "train", name="tiny", image_size=16)
  records = stream._records(np.arange(12))  # pylint: disable=protected-access
  images = [r["image"] for r in records]
  one = inception_preprocessing.train_batch(images, np.arange(12), size=16,
                                            seed=3, epoch=1)
  alone = inception_preprocessing.train_batch(images[4:5], np.array([4]),
                                              size=16, seed=3, epoch=1)
  np.testing.assert_array_equal(one[4], alone[0])
  other_epoch = inception_preprocessing.train_batch(
      images, np.arange(12), size=16, seed=3, epoch=2)
  other_seed = inception_preprocessing.train_batch(
      images, np.arange(12), size=16, seed=4, epoch=1)
  assert not np.array_equal(one, other_epoch)
  assert not np.array_equal(one, other_seed)
  evaluation = inception_preprocessing.eval_batch(images, size=16)
  assert evaluation.shape == (12, 16, 16, 3) and evaluation.dtype == np.uint8


def test_true_labels_are_read_once_per_prepared_split(prepared, monkeypatch):
  builder = prepared["array_record"]
  open_ = lambda: streaming.StreamingDataset.from_builder(  # noqa: E731
      builder, "train", name="tiny", image_size=16).with_randomization(
          "random_labels", seed=3)
  first = open_()
  manifest = first.manifest
  assert first.label_cache.startswith(str(builder.data_dir))
  true = first.true_labels(np.arange(12))
  assert np.array_equal(first.all_true_labels(), true)

  def no_reads(self, indices):
    raise AssertionError("read every record again")

  with monkeypatch.context() as m:
    m.setattr(streaming.StreamingDataset, "true_labels", no_reads)
    assert open_().manifest == manifest  # from the cache, no record read
  # A cache that does not describe the split is read again and replaced.
  with np.load(first.label_cache) as f:
    key = str(f["key"])
  np.savez(first.label_cache, key=np.asarray(key.replace("12", "13")),
           labels=np.zeros(12, np.int32))
  again = open_()
  assert again.manifest == manifest
  with monkeypatch.context() as m:
    m.setattr(streaming.StreamingDataset, "true_labels", no_reads)
    assert np.array_equal(open_().all_true_labels(), true)

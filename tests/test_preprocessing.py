"""The paper's input pipeline (Appendix A, Appendix A) on real images."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rethink_jax.data import preprocessing


def _formula(images_uint8):
  """/255, centre 28x28 crop, (x - mean) / max(std, 1/sqrt(2352))."""
  x = images_uint8.astype(np.float64) / 255.0
  x = x[:, 2:30, 2:30, :]
  mean = x.mean(axis=(1, 2, 3), keepdims=True)
  std = x.std(axis=(1, 2, 3), keepdims=True)
  return (x - mean) / np.maximum(std, 1.0 / math.sqrt(28 * 28 * 3))


def test_cifar_eval_matches_the_formula_on_real_images(cifar10_train):
  images = cifar10_train.images[:512]
  got = np.asarray(preprocessing.cifar_eval(jnp.asarray(images)))
  assert got.shape == (512, 28, 28, 3) and got.dtype == np.float32
  np.testing.assert_allclose(got, _formula(images), atol=2e-5)
  np.testing.assert_allclose(got.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
  np.testing.assert_allclose(got.std(axis=(1, 2, 3)), 1.0, atol=1e-4)


def test_standardization_matches_tensorflow(cifar10_test):
  tf = pytest.importorskip("tensorflow")
  images = cifar10_test.images[:256].astype(np.float32) / 255.0
  expected = tf.image.per_image_standardization(images).numpy()
  got = np.asarray(preprocessing.per_image_standardization(images))
  np.testing.assert_allclose(got, expected, atol=2e-5)


def test_std_floor_applies_to_flat_images():
  # A constant image has std 0: TF divides by 1/sqrt(N), giving zeros, not
  # NaNs; a nearly constant one is scaled by sqrt(N), not by its tiny std.
  flat = np.full((1, 28, 28, 3), 0.5, np.float32)
  assert np.all(np.asarray(preprocessing.per_image_standardization(flat))
                == 0.0)
  almost = flat.copy()
  almost[0, 0, 0, 0] += 1e-4
  out = np.asarray(preprocessing.per_image_standardization(almost))
  n = 28 * 28 * 3
  centred = almost - almost.mean()
  np.testing.assert_allclose(out, centred * math.sqrt(n), rtol=1e-3,
                             atol=1e-6)


def test_center_crop_takes_the_middle():
  images = np.arange(32 * 32).reshape(1, 32, 32, 1)
  crop = np.asarray(preprocessing.center_crop(images, 28))
  assert crop[0, 0, 0, 0] == 2 * 32 + 2
  assert crop[0, -1, -1, 0] == 29 * 32 + 29


def test_random_crop_is_a_28x28_window_and_varies(cifar10_train):
  images = jnp.asarray(cifar10_train.images[:64])
  crops = np.asarray(preprocessing.random_crop(jax.random.key(0), images))
  assert crops.shape == (64, 28, 28, 3)
  # Every crop is some window of its own image.
  src = cifar10_train.images[:64]
  offsets = set()
  for i in range(64):
    found = [(t, left) for t in range(5) for left in range(5)
             if np.array_equal(src[i, t:t + 28, left:left + 28], crops[i])]
    assert found
    offsets.add(found[0])
  assert len(offsets) > 5


def test_train_pipeline_without_augmentation_equals_eval(cifar10_train):
  images = jnp.asarray(cifar10_train.images[:32])
  train = preprocessing.cifar_train(jax.random.key(1), images,
                                    random_crop_on=False,
                                    flip_and_rotate=False)
  np.testing.assert_array_equal(np.asarray(train),
                                np.asarray(preprocessing.cifar_eval(images)))


def test_rotation_by_zero_is_identity_and_flip_mirrors():
  images = jnp.asarray(np.random.default_rng(0).random((2, 9, 9, 3)),
                       jnp.float32)
  same = preprocessing.random_rotation(jax.random.key(0), images,
                                       max_degrees=0.0)
  np.testing.assert_allclose(np.asarray(same), np.asarray(images), atol=1e-6)
  flipped = np.asarray(preprocessing.random_flip(jax.random.key(3), images))
  for i in range(2):
    assert (np.array_equal(flipped[i], np.asarray(images)[i]) or
            np.array_equal(flipped[i], np.asarray(images)[i, :, ::-1]))


def test_rotation_moves_pixels_within_25_degrees():
  image = np.zeros((1, 31, 31, 1), np.float32)
  image[0, 15, 25, 0] = 1.0  # a dot 10 px right of the centre
  out = np.asarray(preprocessing.random_rotation(jax.random.key(5),
                                                 jnp.asarray(image)))
  y, x = np.unravel_index(np.argmax(out[0, ..., 0]), (31, 31))
  angle = math.degrees(math.atan2(y - 15, x - 15))
  assert abs(angle) <= 25 + 6  # within the range, up to pixel rounding


def test_inception_scale_maps_to_unit_interval():
  out = np.asarray(preprocessing.inception_scale(np.array([0, 255],
                                                          np.uint8)))
  np.testing.assert_allclose(out, [-1.0, 1.0])

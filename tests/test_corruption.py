"""Tests of the randomization tests of Section 2.1 (rethink_jax.corruption).

Each mistake other reproductions made (docs: /work/shared/style.md) that
concerns the randomizations has a test here:

1. test labels corrupted along with the training labels:
   ``test_randomize_never_touches_test_labels``;
2. "random labels" as one fixed class permutation:
   ``test_random_labels_are_uniform_and_independent_of_the_true_label``;
3. random pixels / Gaussian redrawn every epoch:
   ``test_every_function_is_deterministic`` and
   ``test_randomize_is_drawn_once``;
4. Gaussian statistics in the wrong space or from a global RNG:
   ``test_pixel_stats_are_in_0_255_space`` and the Gaussian tests;
5. shuffled-pixel permutation applied to the training set only, or over
   channels: ``test_shuffled_pixels_use_the_train_permutation_on_test`` and
   ``test_shuffle_pixels_one_spatial_permutation_for_all_images``.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as scipy_stats

import rethink_jax
from rethink_jax import corruption
from rethink_jax.data.dataset import ArrayDataset, DataError, from_arrays

KEY = jax.random.key(0)
OTHER_KEY = jax.random.key(1)
# Significance level of the statistical tests. The draws are seeded, so a
# test either always passes or always fails; a tiny level only keeps a
# correct implementation from failing for one unlucky seed.
ALPHA = 1e-6
# A test of a binomial proportion accepts |observed - expected| within this
# many standard errors (two-sided tail 5.7e-7, about ALPHA).
Z = 5.0


def _chi2_bound(df: int, alpha: float = ALPHA) -> float:
  return float(scipy_stats.chi2.isf(alpha, df))


def _encoded_images(n: int, h: int, w: int, c: int) -> np.ndarray:
  """float32 images whose values say (image, position, channel) exactly."""
  image = np.arange(n, dtype=np.float32)[:, None, None]
  position = np.arange(h * w, dtype=np.float32)[None, :, None]
  channel = np.arange(c, dtype=np.float32)[None, None, :]
  values = image * (h * w * c) + position * c + channel
  return values.reshape(n, h, w, c)


def _decode_permutations(images: np.ndarray, n_first: int = 0) -> np.ndarray:
  """Per-image permutation from images made by ``_encoded_images``.

  Checks on the way that the channels of every pixel moved together and that
  every pixel stayed in its own image.
  """
  n, h, w, c = images.shape
  flat = images.reshape(n, h * w, c).astype(np.int64)
  image = np.arange(n_first, n_first + n)[:, None]
  local = flat - image[..., None] * (h * w * c)
  np.testing.assert_array_equal(local % c, np.broadcast_to(np.arange(c),
                                                           local.shape))
  position = local // c
  np.testing.assert_array_equal(position, np.broadcast_to(
      position[..., :1], position.shape))  # channels move together
  perms = position[..., 0]
  assert perms.min() >= 0 and perms.max() < h * w  # stayed in its own image
  return perms


def _packed_pixels(images: np.ndarray) -> np.ndarray:
  """uint8 RGB(A) pixels packed to one integer each, shape (N, H*W)."""
  n, h, w, c = images.shape
  flat = images.reshape(n, h * w, c).astype(np.int64)
  return (flat * (256 ** np.arange(c))).sum(-1)


def _uint8_images(n, h=8, w=8, c=3, seed=0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (n, h, w, c),
                                              dtype=np.uint8)


def _pair(n_train=200, n_test=50, shape=(4, 4, 3), num_classes=10,
          images=None, test_images=None) -> tuple[ArrayDataset, ArrayDataset]:
  rng = np.random.default_rng(42)
  if images is None:
    images = rng.integers(0, 256, (n_train,) + shape, dtype=np.uint8)
  if test_images is None:
    test_images = rng.integers(0, 256, (n_test,) + images.shape[1:],
                               dtype=np.uint8)
  train = from_arrays(images, rng.integers(0, num_classes, len(images)),
                      num_classes, name="synthetic", split="train")
  test = from_arrays(test_images,
                     rng.integers(0, num_classes, len(test_images)),
                     num_classes, name="synthetic", split="test")
  return train, test


def _p_for(name: str) -> float | None:
  return 0.5 if name == "partially_corrupted_labels" else None


# A table of every public random function as f(key, n, indices) -> array,
# used by the determinism, index-independence, seed and key-format tests.
_LABELS = np.arange(5000) % 10
_IMAGES = _uint8_images(5000, 4, 4, 3)
_STATS = corruption.pixel_stats(_IMAGES)
_FUNCTIONS = {
    "corrupt_labels": lambda key, idx: corruption.corrupt_labels(
        key, _LABELS[idx], 0.5, 10, indices=idx)[0],
    "randomize_pixels": lambda key, idx: corruption.randomize_pixels(
        key, _IMAGES[idx], indices=idx),
    "gaussian_images": lambda key, idx: corruption.gaussian_images(
        key, _STATS, indices=idx),
    "gaussian_images_from_images": lambda key, idx: corruption.gaussian_images(
        key, _IMAGES, indices=idx),
    "shuffle_pixels": lambda key, idx: corruption.shuffle_pixels(
        key, _IMAGES[idx]),
}


# ---------------------------------------------------------------------------
# corrupt_labels
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("p, num_classes", [
    (0.0, 10), (0.2, 10), (0.5, 10), (0.8, 10), (1.0, 10),
    (1.0, 2), (0.5, 100),
])
def test_changed_fraction_is_binomial(p, num_classes):
  """About (1 - 1/K) p of the labels change: the class is drawn from all K."""
  n = 50_000
  labels = np.arange(n) % num_classes
  new, changed = corruption.corrupt_labels(KEY, labels, p, num_classes)
  expected = (1 - 1 / num_classes) * p
  standard_error = math.sqrt(expected * (1 - expected) / n)
  assert abs(changed.mean() - expected) <= Z * standard_error
  assert new.dtype == np.int32 and changed.dtype == np.bool_
  assert new.min() >= 0 and new.max() < num_classes


def test_random_labels_are_uniform_and_independent_of_the_true_label():
  """Guards "random labels as one fixed class permutation" (pitfall 2)."""
  n, k = 50_000, 10
  labels = np.repeat(np.arange(k), n // k)
  new, _ = corruption.corrupt_labels(KEY, labels, 1.0, k)
  counts = np.bincount(new, minlength=k)
  expected = n / k
  assert ((counts - expected)**2 / expected).sum() < _chi2_bound(k - 1)
  table = np.zeros((k, k))
  np.add.at(table, (labels, new), 1)
  # Every true class spreads uniformly over all K new classes ...
  row_expected = table.sum(1, keepdims=True) / k
  row_chi2 = ((table - row_expected)**2 / row_expected).sum(1)
  assert (row_chi2 < _chi2_bound(k - 1, ALPHA / k)).all(), row_chi2
  # ... so no class map (a permutation or any function) explains the labels,
  assert (table > 0).all()
  assert table.max(1).max() / (n / k) < 0.2
  # and the contingency table shows no dependence at all.
  stat, _, dof, _ = scipy_stats.chi2_contingency(table)
  assert stat < _chi2_bound(dof)


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_changed_mask_is_exactly_new_ne_old(p):
  labels = np.random.default_rng(0).integers(0, 7, 3000)
  new, changed = corruption.corrupt_labels(KEY, labels, p, 7)
  np.testing.assert_array_equal(changed, new != labels)
  np.testing.assert_array_equal(new[~changed], labels[~changed])


def test_corruption_levels_are_nested_for_one_key():
  """For one key, the examples corrupted at p1 < p2 are also corrupted at p2."""
  labels = np.zeros(20_000, np.int64)
  new_low, changed_low = corruption.corrupt_labels(KEY, labels, 0.3, 10)
  new_high, changed_high = corruption.corrupt_labels(KEY, labels, 0.7, 10)
  assert not (changed_low & ~changed_high).any()
  np.testing.assert_array_equal(new_low[changed_low], new_high[changed_low])


def test_corrupt_labels_per_example_definition():
  """Example i depends on fold_in(key, i) only, not on its neighbours."""
  labels = np.arange(50) % 10
  full, _ = corruption.corrupt_labels(KEY, labels, 1.0, 10)
  for i in (0, 17, 49):
    alone, _ = corruption.corrupt_labels(KEY, labels[i:i + 1], 1.0, 10,
                                         indices=[i])
    assert alone[0] == full[i]


def test_new_label_does_not_depend_on_the_old_label():
  """The draw ignores the label: at p=1 any labels give the same output."""
  labels_a = np.zeros(1000, np.int64)
  labels_b = np.arange(1000) % 10
  np.testing.assert_array_equal(
      corruption.corrupt_labels(KEY, labels_a, 1.0, 10)[0],
      corruption.corrupt_labels(KEY, labels_b, 1.0, 10)[0])


@pytest.mark.parametrize("kwargs, fragment", [
    ({"p": -0.1}, "[0, 1]"),
    ({"p": 1.5}, "[0, 1]"),
    ({"p": float("nan")}, "[0, 1]"),
    ({"p": float("inf")}, "[0, 1]"),
    ({"p": "0.5"}, "real number"),
    ({"num_classes": 1, "labels": np.zeros(5, int)},
     "num_classes must be >= 2"),
    ({"num_classes": 2.5}, "num_classes must be an integer"),
    ({"num_classes": 5}, "num_classes (5) is smaller than a label"),
    ({"labels": np.array([0, -1, 2])}, "labels must be class ids >= 0"),
    ({"labels": np.zeros((3, 2), int)}, "1-D"),
    ({"labels": np.array([0.0, 1.0])}, "integers"),
    ({"indices": np.arange(9)}, "indices has length 9"),
    ({"indices": np.arange(10) - 1}, "[0, 2**32)"),
    ({"indices": np.arange(10.0)}, "indices must be integers"),
])
def test_corrupt_labels_errors(kwargs, fragment):
  args = {"labels": np.arange(10) % 10, "p": 0.5, "num_classes": 10}
  args.update(kwargs)
  with pytest.raises(ValueError) as error:
    corruption.corrupt_labels(KEY, **args)
  assert fragment in str(error.value)


# ---------------------------------------------------------------------------
# Properties every random function shares
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(_FUNCTIONS))
def test_every_function_is_deterministic(name):
  """Drawn once and fixed: a second call is bit-identical (pitfall 3)."""
  idx = np.arange(300)
  first = _FUNCTIONS[name](KEY, idx)
  second = _FUNCTIONS[name](KEY, idx)
  assert first.dtype == second.dtype
  np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name", sorted(_FUNCTIONS))
def test_every_function_is_independent_of_order_and_batching(name):
  """A shuffled subset, single examples or batches, each with its indices,
  give exactly the rows of the full data set (with > 1 chunk of 4096)."""
  n = len(_LABELS)
  full = _FUNCTIONS[name](KEY, np.arange(n))
  order = np.random.default_rng(1).permutation(n)
  np.testing.assert_array_equal(_FUNCTIONS[name](KEY, order), full[order])
  for subset in (order[:1], order[:7], order[:100]):
    np.testing.assert_array_equal(_FUNCTIONS[name](KEY, subset), full[subset])
  batches = [_FUNCTIONS[name](KEY, order[s:s + 768])
             for s in range(0, n, 768)]
  np.testing.assert_array_equal(np.concatenate(batches), full[order])


@pytest.mark.parametrize("name", sorted(_FUNCTIONS))
def test_different_keys_give_different_draws(name):
  idx = np.arange(200)
  assert not np.array_equal(_FUNCTIONS[name](KEY, idx),
                            _FUNCTIONS[name](OTHER_KEY, idx))


@pytest.mark.parametrize("name", sorted(_FUNCTIONS))
def test_typed_and_raw_keys_agree(name):
  idx = np.arange(100)
  np.testing.assert_array_equal(
      _FUNCTIONS[name](jax.random.key(7), idx),
      _FUNCTIONS[name](jax.random.PRNGKey(7), idx))


@pytest.mark.parametrize("key, error, fragment", [
    (0, TypeError, "jax.random.key(0)"),
    (np.zeros(3, np.uint32), TypeError, "raw uint32 key"),
    (np.zeros(2, np.int32), TypeError, "raw uint32 key"),
    (jax.random.split(KEY, 2), ValueError, "a single PRNG key"),
])
def test_bad_keys_are_rejected(key, error, fragment):
  with pytest.raises(error) as raised:
    corruption.pixel_permutation(key, 4, 4)
  assert fragment in str(raised.value)


# ---------------------------------------------------------------------------
# Shuffled pixels
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(32, 32, 3), (28, 28, 1), (5, 7, 3),
                                   (5, 7, 4), (1, 1, 3)])
def test_shuffle_pixels_one_spatial_permutation_for_all_images(shape):
  """Spatial positions are permuted, a pixel's channels move together, and
  every image gets pixel_permutation(key, H, W) (pitfall 5)."""
  h, w, c = shape
  images = _encoded_images(6, h, w, c)
  shuffled = corruption.shuffle_pixels(KEY, images)
  assert shuffled.shape == images.shape and shuffled.dtype == np.float32
  perms = _decode_permutations(shuffled)
  expected = corruption.pixel_permutation(KEY, h, w)
  assert expected.shape == (h * w,) and expected.dtype == np.int32
  np.testing.assert_array_equal(np.sort(expected), np.arange(h * w))
  np.testing.assert_array_equal(perms, np.broadcast_to(expected, perms.shape))
  if h * w > 2:
    assert not np.array_equal(expected, np.arange(h * w))


def test_shuffle_pixels_uint8_keeps_dtype_and_pixel_multisets():
  images = _uint8_images(20, 32, 32, 3)
  shuffled = corruption.shuffle_pixels(KEY, images)
  assert shuffled.dtype == np.uint8
  np.testing.assert_array_equal(np.sort(_packed_pixels(shuffled), axis=1),
                                np.sort(_packed_pixels(images), axis=1))
  assert not np.array_equal(shuffled, images)


def test_permutations_are_uniform():
  """All 24 permutations of a 2x2 image are equally likely (chi-square)."""
  draws = 12_000
  perms = _decode_permutations(
      corruption.randomize_pixels(KEY, _encoded_images(draws, 2, 2, 1)))
  codes = perms @ (4 ** np.arange(4))
  _, counts = np.unique(codes, return_counts=True)
  assert len(counts) == math.factorial(4)
  expected = draws / math.factorial(4)
  assert ((counts - expected)**2 / expected).sum() < _chi2_bound(23)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"height": 0, "width": 4}, "height must be a positive integer"),
    ({"height": 4, "width": 2.0}, "width must be a positive integer"),
])
def test_pixel_permutation_errors(kwargs, fragment):
  with pytest.raises(ValueError) as error:
    corruption.pixel_permutation(KEY, **kwargs)
  assert fragment in str(error.value)


def test_shuffle_pixels_rejects_images_without_channel_axis():
  with pytest.raises(ValueError) as error:
    corruption.shuffle_pixels(KEY, np.zeros((2, 4, 4), np.uint8))
  assert "images[..., None]" in str(error.value)


# ---------------------------------------------------------------------------
# Random pixels
# ---------------------------------------------------------------------------


def test_randomize_pixels_one_permutation_per_image():
  n, h, w, c = 64, 32, 32, 3
  images = _encoded_images(n, h, w, c)
  randomized = corruption.randomize_pixels(KEY, images)
  assert randomized.dtype == np.float32
  perms = _decode_permutations(randomized)
  np.testing.assert_array_equal(np.sort(perms, axis=1),
                                np.broadcast_to(np.arange(h * w), perms.shape))
  assert len({p.tobytes() for p in perms}) == n  # all different
  for i in (0, 5, 63):  # image i uses pixel_permutation(fold_in(key, i)).
    np.testing.assert_array_equal(
        perms[i], corruption.pixel_permutation(jax.random.fold_in(KEY, i),
                                               h, w))


def test_randomize_pixels_uint8_keeps_each_images_pixels():
  images = _uint8_images(50, 32, 32, 3)
  randomized = corruption.randomize_pixels(KEY, images)
  assert randomized.dtype == np.uint8 and randomized.shape == images.shape
  np.testing.assert_array_equal(np.sort(_packed_pixels(randomized), axis=1),
                                np.sort(_packed_pixels(images), axis=1))


def test_randomize_pixels_index_length_must_match():
  with pytest.raises(ValueError) as error:
    corruption.randomize_pixels(KEY, _uint8_images(4), indices=[0, 1])
  assert "indices has length 2 but there are 4 images" in str(error.value)


# ---------------------------------------------------------------------------
# Pixel statistics and Gaussian images
# ---------------------------------------------------------------------------


def _channel_images(n=2000, seed=0) -> np.ndarray:
  """uint8 images whose channels have clearly different means."""
  rng = np.random.default_rng(seed)
  low = np.array([0, 60, 150])
  return (low + rng.integers(0, 100, (n, 4, 4, 3))).astype(np.uint8)


@pytest.mark.parametrize("statistics", ["global", "per_channel"])
def test_pixel_stats_match_numpy(statistics):
  images = _channel_images()
  result = corruption.pixel_stats(images, statistics)
  axis = None if statistics == "global" else (0, 1, 2)
  as_float = images.astype(np.float64)
  np.testing.assert_allclose(result.mean, as_float.mean(axis), rtol=1e-12)
  np.testing.assert_allclose(result.std, as_float.std(axis), rtol=1e-12)
  assert result.statistics == statistics
  assert result.image_shape == (4, 4, 3)
  from_float = corruption.pixel_stats(images.astype(np.float32), statistics)
  np.testing.assert_allclose(from_float.mean, result.mean, rtol=1e-12)
  np.testing.assert_allclose(from_float.std, result.std, rtol=1e-12)


def test_pixel_stats_are_in_0_255_space():
  """Guards statistics taken after dividing by 255 (pitfall 4)."""
  images = np.full((3, 4, 4, 3), 255, np.uint8)
  images[0] = 0
  result = corruption.pixel_stats(images)
  assert result.mean == pytest.approx(170.0)
  assert result.std == pytest.approx(255 * math.sqrt(2) / 3)


@pytest.mark.parametrize("statistics", ["global", "per_channel"])
def test_gaussian_images_match_the_data_set(statistics):
  images = _channel_images()
  source = corruption.pixel_stats(images, statistics)
  noise = corruption.gaussian_images(KEY, images, statistics=statistics)
  assert noise.dtype == np.float32 and noise.shape == images.shape
  drawn = corruption.pixel_stats(noise, statistics)
  count = noise.size if statistics == "global" else noise.size // 3
  # Sampling error of a normal sample's mean and standard deviation.
  np.testing.assert_array_less(np.abs(drawn.mean - source.mean),
                               Z * source.std / math.sqrt(count))
  np.testing.assert_array_less(np.abs(drawn.std - source.std),
                               Z * source.std / math.sqrt(2 * count))
  if statistics == "per_channel":  # the channels really differ
    assert np.ptp(source.mean) > 100


def test_gaussian_images_are_not_rounded_or_clipped():
  images = _channel_images()
  noise = corruption.gaussian_images(KEY, images)
  assert noise.min() < 0 and noise.max() > 255
  assert np.mean(noise != np.round(noise)) > 0.99


def test_gaussian_images_per_example_definition():
  """Image i is mean + std * normal(fold_in(key, i), image_shape)."""
  stats = corruption.PixelStats(mean=[10.0, 100.0, 200.0],
                                std=[1.0, 5.0, 20.0], image_shape=(4, 4, 3))
  noise = corruption.gaussian_images(KEY, stats, indices=[3, 11])
  for row, i in enumerate((3, 11)):
    normal = np.asarray(jax.random.normal(jax.random.fold_in(KEY, i),
                                          (4, 4, 3)))
    np.testing.assert_allclose(noise[row], stats.mean + stats.std * normal,
                               rtol=1e-6)


@pytest.mark.parametrize("statistics", ["global", "per_channel"])
def test_gaussian_images_from_stats_equal_from_images(statistics):
  images = _channel_images(300)
  stats = corruption.pixel_stats(images, statistics)
  np.testing.assert_array_equal(
      corruption.gaussian_images(KEY, images, statistics=statistics),
      corruption.gaussian_images(KEY, stats, indices=np.arange(300)))
  np.testing.assert_array_equal(  # a statistics that agrees is accepted
      corruption.gaussian_images(KEY, stats, indices=[4],
                                 statistics=statistics),
      corruption.gaussian_images(KEY, images, statistics=statistics)[[4]])


@pytest.mark.parametrize("call, fragment", [
    (lambda: corruption.pixel_stats(_channel_images(5), "per_pixel"),
     "unknown statistics 'per_pixel'"),
    (lambda: corruption.gaussian_images(KEY, _channel_images(5),
                                        statistics="channel"),
     "unknown statistics 'channel'"),
    (lambda: corruption.gaussian_images(KEY, _STATS),
     "indices are required with a PixelStats"),
    (lambda: corruption.gaussian_images(KEY, _STATS, indices=[0],
                                        statistics="per_channel"),
     "conflicts with the given PixelStats"),
    (lambda: corruption.PixelStats(mean=np.zeros(2), std=np.ones(2),
                                   image_shape=(4, 4, 3)),
     "(per channel, C=3)"),
    (lambda: corruption.PixelStats(mean=0.0, std=-1.0, image_shape=(4, 4, 3)),
     "std finite and >= 0"),
    (lambda: corruption.pixel_stats(np.zeros((0, 4, 4, 3), np.uint8)),
     "empty data set"),
])
def test_gaussian_errors(call, fragment):
  with pytest.raises(ValueError) as error:
    call()
  assert fragment in str(error.value)


# ---------------------------------------------------------------------------
# randomize(): one test applied to a train/test pair
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", corruption.RANDOMIZATIONS)
def test_randomize_never_touches_test_labels(name):
  """The paper evaluates on clean test labels (pitfall 1)."""
  train, test = _pair()
  new_train, new_test = corruption.randomize(train, test, name, seed=3,
                                             p=_p_for(name))
  np.testing.assert_array_equal(new_test.labels, test.labels)
  np.testing.assert_array_equal(new_test.true_labels, test.true_labels)
  np.testing.assert_array_equal(new_train.true_labels, train.true_labels)
  assert new_test.manifest["labels_corrupted"] is False
  assert new_test.manifest["num_changed_labels"] == 0


@pytest.mark.parametrize("name", corruption.RANDOMIZATIONS)
def test_randomize_changes_only_what_it_should(name):
  train, test = _pair()
  new_train, new_test = corruption.randomize(train, test, name, seed=3,
                                             p=_p_for(name))
  label_change = name in corruption.LABEL_RANDOMIZATIONS
  image_change = name in corruption.PIXEL_RANDOMIZATIONS
  assert np.array_equal(new_train.labels, train.labels) != label_change
  assert np.array_equal(new_train.images, train.images) != image_change
  # Only shuffled pixels touch the test images; random pixels and Gaussian
  # leave them clean (the paper reports only training loss for those).
  assert (np.array_equal(new_test.images, test.images)
          == (name != "shuffled_pixels"))
  if name == "gaussian":
    assert new_train.images.dtype == np.float32
  elif image_change:
    assert new_train.images.dtype == np.uint8


def test_shuffled_pixels_use_the_train_permutation_on_test():
  """The same permutation for training and test images (pitfall 5)."""
  images = _encoded_images(30, 8, 8, 3)
  train, test = _pair(images=images[:20], test_images=images[20:])
  new_train, new_test = corruption.randomize(train, test, "shuffled_pixels",
                                             seed=5)
  train_perms = _decode_permutations(new_train.images)
  test_perms = _decode_permutations(new_test.images, n_first=20)
  np.testing.assert_array_equal(train_perms,
                                np.broadcast_to(train_perms[0],
                                                train_perms.shape))
  np.testing.assert_array_equal(test_perms,
                                np.broadcast_to(train_perms[0],
                                                test_perms.shape))
  assert (new_train.manifest["permutation_sha256"]
          == new_test.manifest["permutation_sha256"]
          == corruption.sha256(train_perms[0].astype(np.int32)))


def test_random_labels_is_partial_corruption_at_p_1():
  train, test = _pair(n_train=1000)
  random_train, _ = corruption.randomize(train, test, "random_labels", seed=9)
  partial_train, _ = corruption.randomize(
      train, test, "partially_corrupted_labels", seed=9, p=1.0)
  np.testing.assert_array_equal(random_train.labels, partial_train.labels)


def test_randomize_is_drawn_once():
  """Calling again (a new epoch, a resumed run) gives the same data."""
  train, test = _pair()
  for name in corruption.RANDOMIZATIONS:
    first, _ = corruption.randomize(train, test, name, seed=1, p=_p_for(name))
    second, _ = corruption.randomize(train, test, name, seed=1,
                                     p=_p_for(name))
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.manifest == second.manifest


def test_randomize_seeds_differ():
  train, test = _pair(n_train=1000)
  a, _ = corruption.randomize(train, test, "random_labels", seed=0)
  b, _ = corruption.randomize(train, test, "random_labels", seed=1)
  assert a.manifest["labels_sha256"] != b.manifest["labels_sha256"]


def test_randomize_streams_are_distinct():
  """Each kind has its own key, so draws of one seed do not correlate."""
  keys = {kind: jax.random.key_data(corruption.randomization_key(4, kind))
          for kind in corruption.KEY_STREAMS}
  assert len({np.asarray(k).tobytes() for k in keys.values()}) == len(keys)
  train, test = _pair(n_train=2000, n_test=2000)
  test = test.replace(labels=train.labels, true_labels=train.true_labels)
  new_train, new_test = corruption.randomize(train, test, "random_labels",
                                             seed=4, corrupt_test_labels=True)
  # Same true labels, same indices, independent draws: agree ~1/K of the time.
  agree = np.mean(new_train.labels == new_test.labels)
  assert abs(agree - 0.1) < Z * math.sqrt(0.1 * 0.9 / 2000)


def test_randomize_matches_the_functions_with_randomization_key():
  """A streamed data set reproduces randomize() with the public keys."""
  train, test = _pair()
  seed = 11
  labels, _ = corruption.corrupt_labels(
      corruption.randomization_key(seed, "train_labels"), train.labels, 0.5,
      10)
  got, _ = corruption.randomize(train, test, "partially_corrupted_labels",
                                seed=seed, p=0.5)
  np.testing.assert_array_equal(got.labels, labels)
  for name, function in (("random_pixels", corruption.randomize_pixels),
                         ("shuffled_pixels", corruption.shuffle_pixels)):
    got, _ = corruption.randomize(train, test, name, seed=seed)
    np.testing.assert_array_equal(
        got.images, function(corruption.randomization_key(seed, name),
                             train.images))
  got, _ = corruption.randomize(train, test, "gaussian", seed=seed,
                                statistics="per_channel")
  np.testing.assert_array_equal(got.images, corruption.gaussian_images(
      corruption.randomization_key(seed, "gaussian"), train.images,
      statistics="per_channel"))


def test_corrupt_test_labels_when_asked():
  train, test = _pair(n_train=500, n_test=2000)
  new_train, new_test = corruption.randomize(train, test, "random_labels",
                                             seed=0, corrupt_test_labels=True)
  assert new_test.manifest["labels_corrupted"] is True
  np.testing.assert_array_equal(new_test.true_labels, test.labels)
  fraction = new_test.manifest["changed_label_fraction"]
  assert abs(fraction - 0.9) < Z * math.sqrt(0.9 * 0.1 / 2000)
  assert new_train.manifest["labels_corrupted"] is True


@pytest.mark.parametrize("name", corruption.RANDOMIZATIONS)
def test_randomize_manifest(name):
  train, test = _pair()
  new_train, new_test = corruption.randomize(train, test, name, seed=2,
                                             p=_p_for(name))
  for split, data in (("train", new_train), ("test", new_test)):
    manifest = data.manifest
    assert json.loads(json.dumps(manifest)) == manifest
    assert manifest["randomization"] == name
    assert manifest["seed"] == 2
    assert manifest["p"] == {"true_labels": 0.0, "random_labels": 1.0,
                             "partially_corrupted_labels": 0.5}.get(name)
    assert manifest["dataset"] == "synthetic"
    assert manifest["split"] == split
    assert manifest["num_examples"] == len(data)
    assert manifest["num_classes"] == 10
    changed = int((data.labels != data.true_labels).sum())
    assert manifest["num_changed_labels"] == changed
    assert manifest["changed_label_fraction"] == changed / len(data)
    assert manifest["labels_sha256"] == corruption.sha256(
        data.labels.astype("<i4"))
    assert manifest["rethink_jax_version"] == rethink_jax.__version__
    assert manifest["jax_version"] == jax.__version__
    assert manifest["jax_prng_impl"] == jax.config.jax_default_prng_impl
    assert (manifest["jax_threefry_partitionable"]
            == jax.config.jax_threefry_partitionable)
    assert (manifest["permutation_sha256"] is None) == (
        name != "shuffled_pixels")
    if manifest["images_randomized"]:
      assert manifest["images_sha256"] == corruption.sha256(data.images)
    else:
      assert manifest["images_sha256"] is None
    assert (manifest["statistics"] == "global") == (name == "gaussian")
  assert new_train.manifest["images_randomized"] == (
      name in corruption.PIXEL_RANDOMIZATIONS)
  assert new_test.manifest["images_randomized"] == (name == "shuffled_pixels")
  if name == "gaussian":
    stats = corruption.pixel_stats(train.images)
    assert new_train.manifest["pixel_mean"] == pytest.approx(float(stats.mean))
    assert new_train.manifest["pixel_std"] == pytest.approx(float(stats.std))


def test_randomize_manifest_split_falls_back_to_role():
  rng = np.random.default_rng(0)
  train = from_arrays(_uint8_images(10), rng.integers(0, 3, 10), 3)
  test = from_arrays(_uint8_images(5), rng.integers(0, 3, 5), 3)
  new_train, new_test = corruption.randomize(train, test, "true_labels",
                                             seed=0)
  assert new_train.manifest["split"] == "train"
  assert new_test.manifest["split"] == "test"


def test_sha256_is_the_hash_of_little_endian_bytes():
  import hashlib  # pylint: disable=import-outside-toplevel
  labels = np.array([1, 2, 3], np.int32)
  expected = hashlib.sha256(b"\x01\0\0\0\x02\0\0\0\x03\0\0\0").hexdigest()
  assert corruption.sha256(labels) == expected
  assert corruption.sha256(labels.astype(">i4")) == expected
  assert corruption.sha256(jnp.asarray(labels)) == expected


_TRAIN, _TEST = _pair(n_train=20, n_test=5)


@pytest.mark.parametrize("name, kwargs, error, fragment", [
    ("random_label", {}, ValueError,
     "choose one of true_labels, partially_corrupted_labels, random_labels"),
    ("partially_corrupted_labels", {}, ValueError, "requires p"),
    ("partially_corrupted_labels", {"p": 1.2}, ValueError, "[0, 1]"),
    ("random_labels", {"p": 0.5}, ValueError,
     "random_labels is p=1 already"),
    ("true_labels", {"p": 0.0}, ValueError,
     "only used by partially_corrupted_labels"),
    ("shuffled_pixels", {"p": 0.1}, ValueError,
     "only used by partially_corrupted_labels"),
    ("random_labels", {"statistics": "global"}, ValueError,
     "only used by the gaussian randomization"),
    ("gaussian", {"statistics": "pixel"}, ValueError,
     "unknown statistics 'pixel'"),
    ("random_pixels", {"corrupt_test_labels": True}, ValueError,
     "corrupt_test_labels=True only applies to"),
    ("random_labels", {"seed": 1.5}, ValueError, "seed must be an integer"),
    ("random_labels", {"seed": -1}, ValueError, "seed must lie in"),
])
def test_randomize_argument_errors(name, kwargs, error, fragment):
  kwargs = {"seed": 0, **kwargs}
  with pytest.raises(error) as raised:
    corruption.randomize(_TRAIN, _TEST, name, **kwargs)
  assert fragment in str(raised.value)


@pytest.mark.parametrize("train, test, fragment", [
    (_TRAIN, _TEST.replace(num_classes=11), "train has 10 classes but test"),
    (_TRAIN, _pair(shape=(2, 2, 3))[1], "both splits must have the same"),
    (corruption.randomize(_TRAIN, _TEST, "random_labels", seed=0)[0], _TEST,
     "already randomized ('random_labels')"),
])
def test_randomize_data_errors(train, test, fragment):
  with pytest.raises(DataError) as raised:
    corruption.randomize(train, test, "shuffled_pixels", seed=0)
  assert fragment in str(raised.value)


def test_randomize_rejects_plain_arrays():
  with pytest.raises(TypeError) as raised:
    corruption.randomize(_TRAIN.images, _TEST, "random_labels", seed=0)
  assert "from_arrays" in str(raised.value)


def test_train_label_key_is_the_randomize_label_stream():
  np.testing.assert_array_equal(
      jax.random.key_data(corruption.train_label_key(8)),
      jax.random.key_data(corruption.randomization_key(8, "train_labels")))


def test_randomization_key_rejects_unknown_kind():
  with pytest.raises(ValueError) as raised:
    corruption.randomization_key(0, "labels")
  assert "train_labels" in str(raised.value)


# ---------------------------------------------------------------------------
# Golden values
# ---------------------------------------------------------------------------
# These pin the actual draws of fixed seeds on fixed inputs. They protect
# "the same experiment" (same seed, same config) from silently becoming a
# different one when JAX changes its PRNG (threefry implementation,
# jax_threefry_partitionable default, fold_in/split/randint/uniform
# algorithms) or when this module changes a stream constant or the
# permutation construction. If one fails after an upgrade, results from
# before and after are not comparable: record the change, do not just
# update the string. Computed with jax 0.10.2, threefry2x32,
# jax_threefry_partitionable=True.

GOLDEN_LABELS = np.arange(10_000) % 10


def test_golden_corrupt_labels():
  new, changed = corruption.corrupt_labels(jax.random.key(0), GOLDEN_LABELS,
                                           0.5, 10)
  assert corruption.sha256(new) == (
      "d1b18384231e0546f2b120bc266dceb0b79778897a306701c89b166f0564c111")
  assert changed.sum() > 0


def test_golden_randomize_labels():
  train = from_arrays(np.zeros((10_000, 1, 1, 1), np.uint8), GOLDEN_LABELS,
                      10, name="golden", split="train")
  test = from_arrays(np.zeros((10, 1, 1, 1), np.uint8), np.arange(10), 10,
                     name="golden", split="test")
  partial, _ = corruption.randomize(train, test, "partially_corrupted_labels",
                                    seed=0, p=0.5)
  assert partial.manifest["labels_sha256"] == (
      "924a111172ce19c2997c361fd89338016e5dfc35d9e5ea70c982b9175f716581")
  assert partial.manifest["num_changed_labels"] == 4452
  random, _ = corruption.randomize(train, test, "random_labels", seed=0)
  assert random.manifest["labels_sha256"] == (
      "18c89f2378e1b19365891a2232a3cf802a8ec43e067e1f5beca7c8b2377ecaef")
  assert random.manifest["num_changed_labels"] == 9026


def test_golden_permutations():
  assert corruption.sha256(corruption.pixel_permutation(
      jax.random.key(0), 32, 32)) == (
          "f53af70d1c59fbfde50c634a4f2398fc89d16628545d7d79cd1f6215c472e4a8")
  images = (np.arange(8 * 32 * 32 * 3) % 251).astype(np.uint8).reshape(
      8, 32, 32, 3)
  train = from_arrays(images, np.arange(8), 10, name="golden", split="train")
  test = from_arrays(images[:2], np.arange(2), 10, name="golden",
                     split="test")
  shuffled, _ = corruption.randomize(train, test, "shuffled_pixels", seed=0)
  assert shuffled.manifest["permutation_sha256"] == (
      "32b14e48799bc648db0d6140f29af1e46003edf82c9a5261f2cfe49748be0200")
  randomized, _ = corruption.randomize(train, test, "random_pixels", seed=0)
  assert randomized.manifest["images_sha256"] == (
      "77527884d714a6c74e2f64e435df9047e241e9779b0913d3d166cb688e82f83d")


def test_golden_gaussian():
  # Floating point (the normal transform) may differ in the last bits across
  # CPUs, so these are compared with a tolerance instead of hashed.
  noise = corruption.gaussian_images(
      jax.random.key(0),
      corruption.PixelStats(mean=100.0, std=50.0, image_shape=(4, 4, 3)),
      indices=[0, 1])
  np.testing.assert_allclose(noise.reshape(2, -1)[:, :4], [
      [150.20071, 54.68314, 62.59139, 41.431652],
      [-22.122786, -1.7840322, 110.277214, 82.32249]], rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------------
# Real data: CIFAR-10 (fixtures cifar10_train / cifar10_test, tests/conftest.py)
# ---------------------------------------------------------------------------
# Known CIFAR-10 training-set statistics, in 0..255 space: the per-channel
# mean (0.4914, 0.4822, 0.4465) and std (0.2470, 0.2435, 0.2616) widely
# quoted on the 0..1 scale, times 255. The global values follow from them:
# mean = average of the channel means, var = average of the channel variances
# plus the variance of the channel means.
CIFAR_CHANNEL_MEAN = 255 * np.array([0.4914, 0.4822, 0.4465])
CIFAR_CHANNEL_STD = 255 * np.array([0.2470, 0.2435, 0.2616])
CIFAR_GLOBAL_MEAN = CIFAR_CHANNEL_MEAN.mean()
CIFAR_GLOBAL_STD = math.sqrt((CIFAR_CHANNEL_STD**2).mean()
                             + CIFAR_CHANNEL_MEAN.var())


@pytest.mark.slow
def test_cifar10_pixel_stats(cifar10_train):
  """Statistics in 0..255 space match the known values (pitfall 4)."""
  assert len(cifar10_train) == 50_000
  assert cifar10_train.images.dtype == np.uint8
  per_channel = corruption.pixel_stats(cifar10_train.images, "per_channel")
  np.testing.assert_allclose(per_channel.mean, CIFAR_CHANNEL_MEAN, atol=0.5)
  np.testing.assert_allclose(per_channel.std, CIFAR_CHANNEL_STD, atol=0.5)
  overall = corruption.pixel_stats(cifar10_train.images)
  assert float(overall.mean) == pytest.approx(CIFAR_GLOBAL_MEAN, abs=0.5)
  assert float(overall.std) == pytest.approx(CIFAR_GLOBAL_STD, abs=0.5)


@pytest.mark.slow
def test_cifar10_random_labels(cifar10_train, cifar10_test):
  train, test = corruption.randomize(cifar10_train, cifar10_test,
                                     "random_labels", seed=0)
  n, k = len(train), train.num_classes
  fraction = train.manifest["changed_label_fraction"]
  expected = 1 - 1 / k
  assert abs(fraction - expected) <= Z * math.sqrt(expected * (1 - expected)
                                                   / n)
  table = np.zeros((k, k))
  np.add.at(table, (train.true_labels, train.labels), 1)
  stat, _, dof, _ = scipy_stats.chi2_contingency(table)
  assert stat < _chi2_bound(dof)
  np.testing.assert_array_equal(train.true_labels, cifar10_train.labels)
  np.testing.assert_array_equal(test.labels, cifar10_test.labels)
  np.testing.assert_array_equal(test.images, cifar10_test.images)


@pytest.mark.slow
@pytest.mark.parametrize("statistics", ["global", "per_channel"])
def test_cifar10_gaussian(cifar10_train, statistics):
  source = corruption.pixel_stats(cifar10_train.images, statistics)
  count = 2000
  noise = corruption.gaussian_images(corruption.randomization_key(0,
                                                                  "gaussian"),
                                     source, indices=np.arange(count))
  drawn = corruption.pixel_stats(noise, statistics)
  values = noise.size if statistics == "global" else noise.size // 3
  np.testing.assert_array_less(np.abs(drawn.mean - source.mean),
                               Z * source.std / math.sqrt(values))
  np.testing.assert_array_less(np.abs(drawn.std - source.std),
                               Z * source.std / math.sqrt(2 * values))


@pytest.mark.slow
def test_cifar10_shuffled_pixels(cifar10_train, cifar10_test):
  train, test = corruption.randomize(cifar10_train.take(5000), cifar10_test,
                                     "shuffled_pixels", seed=0)
  perm = corruption.pixel_permutation(
      corruption.randomization_key(0, "shuffled_pixels"), 32, 32)
  for original, shuffled in ((cifar10_train.images[:5000], train.images),
                             (cifar10_test.images, test.images)):
    np.testing.assert_array_equal(
        shuffled.reshape(-1, 1024, 3), original.reshape(-1, 1024, 3)[:, perm])
  np.testing.assert_array_equal(test.labels, cifar10_test.labels)


@pytest.mark.slow
def test_cifar10_random_pixels(cifar10_train, cifar10_test):
  train, test = corruption.randomize(cifar10_train.take(5000), cifar10_test,
                                     "random_pixels", seed=0)
  np.testing.assert_array_equal(
      np.sort(_packed_pixels(train.images), axis=1),
      np.sort(_packed_pixels(cifar10_train.images[:5000]), axis=1))
  np.testing.assert_array_equal(test.images, cifar10_test.images)
  np.testing.assert_array_equal(train.labels, cifar10_train.labels[:5000])

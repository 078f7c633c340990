"""The randomization tests of Section 2.1, as pure functions of a PRNG key.

Zhang et al. (2017), Section 2.1, train the same models on copies of the data
set in which the labels or the images have been randomized:

* ``true_labels``: the unmodified data.
* ``partially_corrupted_labels``: each training label independently, with
  probability p, is replaced by a class drawn uniformly at random from all K
  classes (it may equal the original one, so the expected fraction of labels
  that actually change is ``(1 - 1/K) p``; 0.9p on CIFAR-10).
* ``random_labels``: the p = 1 case of the same procedure.
* ``shuffled_pixels``: one random permutation of the pixel positions, applied
  to every image of the training **and** the test set.
* ``random_pixels``: an independent random permutation for each image.
* ``gaussian``: every image is replaced by Gaussian noise whose mean and
  variance match those of the original image data set.

All randomizations are drawn once and kept fixed across epochs (Section
2.1). Here this holds by construction: everything random about example ``i``
is a function of ``jax.random.fold_in(key, i)`` only, so example ``i`` gets
the same corruption whether the data set is held in memory or streamed, in
any order, with any batching, on any number of devices, and after a resume;
calling a function twice gives bit-identical output.

Every function accepts a new-style typed key (``jax.random.key(seed)``) or a
raw ``uint32`` key (``jax.random.PRNGKey(seed)``); the two give identical
results. All functions return **numpy** arrays: the corrupted data set lives
in host memory (:class:`rethink_jax.dataset.ArrayDataset`) and is moved to the
device by the training loop. The random draws themselves run under
``jax.jit`` + ``jax.vmap`` in fixed-size chunks.

:func:`randomize` applies one named test to a train/test pair and records a
JSON-serializable manifest (hashes, versions) in both returned data sets.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import numbers
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rethink_jax.dataset import ArrayDataset, DataError

RANDOMIZATIONS = ("true_labels", "partially_corrupted_labels", "random_labels",
                  "shuffled_pixels", "random_pixels", "gaussian")
"""The settings of Section 2.1 (Fig. 1), in the paper's order."""

LABEL_RANDOMIZATIONS = ("partially_corrupted_labels", "random_labels")
"""Randomizations that change training labels (and may change test labels)."""

PIXEL_RANDOMIZATIONS = ("shuffled_pixels", "random_pixels", "gaussian")
"""Randomizations that change images."""

STATISTICS = ("global", "per_channel")
"""How the ``gaussian`` randomization matches the data set's mean and variance.

``"global"``: one mean and one variance over all pixel values of the data set
(the most literal reading of "matching mean and variance to the original image
dataset"). ``"per_channel"``: one mean and variance per colour channel, as in
most third-party reimplementations (Section 2.1 lists this as uncertain).
"""

KEY_STREAMS = {
    "train_labels": 1,
    "test_labels": 2,
    "shuffled_pixels": 3,
    "random_pixels": 4,
    "gaussian": 5,
}
"""The independent random streams of :func:`randomize`, by kind.

Each kind draws from ``jax.random.fold_in(jax.random.key(seed), constant)``
(see :func:`randomization_key`), so that e.g. the label draw does not
correlate with a pixel draw made from the same seed. The constants are part of
the definition of an experiment: changing one changes every experiment of
that kind (the golden-hash tests in tests/test_corruption.py pin them).
"""

# Examples are drawn in chunks of at most _CHUNK. A shorter request (or the
# last chunk) is padded to the smallest of _IMAGE_BUCKETS that holds it, so
# three compiled shapes per image shape serve every batch size; label draws
# are so cheap that they always use one padded chunk size.
_CHUNK = 4096
_IMAGE_BUCKETS = (64, 512, _CHUNK)
_LABEL_BUCKETS = (_CHUNK,)
_MAX_INDEX = 2**32 - 1  # fold_in folds in a uint32.


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def sha256(array) -> str:
  """SHA-256 hex digest of an array's raw bytes (C order, little-endian).

  Only the bytes are hashed, not the shape or dtype, so the digest can be
  recomputed anywhere with ``hashlib.sha256(x.astype(x.dtype.newbyteorder(
  "<"), order="C").tobytes())``.
  Training labels are hashed as int32 (``sha256(labels.astype(np.int32))``).

  Args:
    array: any array-like (numpy or jax).

  Returns:
    The 64-character lowercase hex digest.
  """
  arr = np.asarray(array)
  if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and
                                    sys.byteorder == "big"):
    arr = arr.astype(arr.dtype.newbyteorder("<"))
  return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


@functools.cache
def _raw_key_shape() -> tuple[int, ...]:
  return tuple(jax.random.key_data(jax.random.key(0)).shape)


def _as_key(key) -> jax.Array:
  """A scalar typed PRNG key from a typed key or a raw uint32 key."""
  if isinstance(key, (bool, numbers.Number)):
    raise TypeError(
        f"expected a JAX PRNG key, got the number {key!r}. Pass "
        f"jax.random.key({key!r}) (or jax.random.PRNGKey({key!r})).")
  if isinstance(key, jax.Array) and jax.dtypes.issubdtype(
      key.dtype, jax.dtypes.prng_key):
    if key.shape != ():
      raise ValueError(
          f"expected a single PRNG key, got an array of keys with shape "
          f"{key.shape}. Pass one key; per-example keys are derived inside "
          f"with jax.random.fold_in(key, index).")
    return key
  raw = jnp.asarray(key)
  if raw.dtype != jnp.uint32 or tuple(raw.shape) != _raw_key_shape():
    raise TypeError(
        f"expected a JAX PRNG key: a typed key from jax.random.key(seed) or a "
        f"raw uint32 key of shape {_raw_key_shape()} from "
        f"jax.random.PRNGKey(seed); got dtype {raw.dtype} and shape "
        f"{tuple(raw.shape)}.")
  return jax.random.wrap_key_data(raw)


def _as_indices(indices, n: int | None, what: str) -> np.ndarray:
  """Validated example indices as uint32 (the data ``fold_in`` folds in).

  Args:
    indices: None (meaning ``arange(n)``) or a 1-D array of non-negative
      integers below 2**32.
    n: the required length, or None when any length is allowed.
    what: what the indices index, for error messages.

  Returns:
    A 1-D uint32 numpy array.
  """
  if indices is None:
    if n is None:
      raise ValueError(f"indices are required for {what}.")
    if n > _MAX_INDEX + 1:
      raise ValueError(f"{n} examples exceed the 2**32 indices fold_in "
                       f"supports; split the data set.")
    return np.arange(n, dtype=np.uint32)
  idx = np.asarray(indices)
  if idx.ndim != 1:
    raise ValueError(f"indices must be a 1-D array of example indices; got "
                     f"shape {idx.shape}. Pass one index per example.")
  if idx.size and not np.issubdtype(idx.dtype, np.integer):
    raise ValueError(f"indices must be integers; got dtype {idx.dtype}. "
                     f"Pass the examples' positions in the full data set.")
  if n is not None and idx.shape[0] != n:
    raise ValueError(
        f"indices has length {idx.shape[0]} but there are {n} {what}; pass "
        f"exactly one index (its position in the full data set) per example.")
  if idx.size:
    low, high = int(idx.min()), int(idx.max())
    if low < 0 or high > _MAX_INDEX:
      raise ValueError(
          f"indices must lie in [0, 2**32); found values in [{low}, {high}]. "
          f"Use each example's position in the full data set.")
  return idx.astype(np.uint32)


def _buckets(n: int, sizes: tuple[int, ...]):
  """Yields ``(start, stop, padded_size)`` chunks covering ``range(n)``."""
  for start in range(0, n, _CHUNK):
    stop = min(start + _CHUNK, n)
    yield start, stop, next(s for s in sizes if s >= stop - start)


def _map_chunks(fn, idx: np.ndarray, outs: tuple[np.ndarray, ...],
                finish=None, sizes: tuple[int, ...] = _IMAGE_BUCKETS
                ) -> tuple[np.ndarray, ...]:
  """Fills ``outs`` chunk by chunk from a jitted per-example function.

  Args:
    fn: jitted function of a padded uint32 index vector, returning a tuple of
      per-example arrays.
    idx: all indices.
    outs: host arrays with one row per index, filled in place.
    finish: ``finish(rows, *host_arrays) -> tuple`` turns the host copies of
      ``fn``'s outputs for ``rows`` (a slice of ``idx``, padding removed)
      into the values stored in ``outs[k][rows]``; by default they are
      stored as they are.
    sizes: the padded chunk sizes to choose from.

  Returns:
    ``outs``. The next chunk is dispatched before the current one is
    finished on the host, so the device work and the numpy work overlap.
  """
  pending = None
  for start, stop, size in _buckets(idx.shape[0], sizes):
    padded = np.zeros(size, np.uint32)
    padded[:stop - start] = idx[start:stop]
    result = fn(padded)
    if pending is not None:
      _finish_chunk(pending, outs, finish)
    pending = (slice(start, stop), result)
  if pending is not None:
    _finish_chunk(pending, outs, finish)
  return outs


def _finish_chunk(pending, outs, finish):
  rows, result = pending
  values = tuple(np.asarray(r)[:rows.stop - rows.start] for r in result)
  if finish is not None:
    values = finish(rows, *values)
  for out, value in zip(outs, values, strict=True):
    out[rows] = value


def _check_images(images, what: str = "images") -> np.ndarray:
  arr = np.asarray(images)
  if arr.ndim != 4:
    raise ValueError(
        f"{what} must have shape (N, H, W, C); got shape {arr.shape}. Add a "
        f"channel axis to gray images with images[..., None].")
  if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
    raise ValueError(f"{what} must be uint8 or floating point pixels; got "
                     f"dtype {arr.dtype}.")
  return arr


def _check_statistics(statistics: str) -> str:
  if statistics not in STATISTICS:
    raise ValueError(f"unknown statistics {statistics!r}; choose one of "
                     f"{STATISTICS} ('global': one mean and variance for the "
                     f"whole data set; 'per_channel': one per colour channel).")
  return statistics


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------


def _check_probability(p) -> float:
  if isinstance(p, bool) or not isinstance(p, numbers.Real):
    raise ValueError(f"p must be a real number in [0, 1]; got {p!r}.")
  p = float(p)
  if not math.isfinite(p) or not 0.0 <= p <= 1.0:
    raise ValueError(f"p must be a corruption probability in [0, 1]; got "
                     f"{p!r}. Use p=1 for random labels and p=0 for the true "
                     f"labels.")
  return float(p)


@jax.jit
def _label_draws(key: jax.Array, indices: jax.Array, p: jax.Array,
                 num_classes: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per example: (replace?, uniform class), from fold_in(key, index)."""

  def one(index):
    k_replace, k_class = jax.random.split(jax.random.fold_in(key, index))
    replace = jax.random.uniform(k_replace, ()) < p
    new_class = jax.random.randint(k_class, (), 0, num_classes, jnp.int32)
    return replace, new_class

  return jax.vmap(one)(indices)


def corrupt_labels(key, labels, p: float, num_classes: int,
                   indices=None) -> tuple[np.ndarray, np.ndarray]:
  """Partially corrupted labels, Section 2.1 ("random labels" when p = 1).

  Each label independently, with probability ``p``, is replaced by a class
  drawn uniformly at random from **all** ``num_classes`` classes, so it may
  equal the original label: the expected fraction of changed labels is
  ``(1 - 1/K) p`` (Section 2.1; the first author's demo code does the
  same). The draw for example ``i`` uses ``jax.random.fold_in(key, i)`` only
  and does not look at the label, so the new label is independent of the
  true one (no fixed class permutation).

  For one key, the corruption levels are coupled: example ``i`` is replaced
  at level p iff its uniform draw ``u_i < p``, and the replacement class does
  not depend on p. Hence the set corrupted at p1 < p2 is a subset of the set
  corrupted at p2, and ``p = 1`` gives the random labels of the same key.

  Args:
    key: a typed key (``jax.random.key``) or a raw uint32 key.
    labels: ``(N,)`` integer labels in ``[0, num_classes)``.
    p: corruption probability in [0, 1].
    num_classes: number of classes K >= 2.
    indices: ``(N,)`` position of each label in the full data set; defaults
      to ``arange(N)``. Pass it when corrupting a shuffled subset or a batch.

  Returns:
    ``(new_labels, changed_mask)``: an int32 numpy array of the corrupted
    labels and a bool numpy array equal to ``new_labels != labels``.

  Raises:
    ValueError: p outside [0, 1] or not finite, num_classes < 2, a label
      outside [0, num_classes), or indices of the wrong length.
  """
  p = _check_probability(p)
  if (isinstance(num_classes, bool) or not isinstance(num_classes,
                                                      numbers.Integral)):
    raise ValueError(f"num_classes must be an integer; got {num_classes!r}.")
  num_classes = int(num_classes)
  if num_classes < 2:
    raise ValueError(f"num_classes must be >= 2 to draw a random class; got "
                     f"{num_classes}.")
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"labels must be a 1-D array of class ids; got shape "
                     f"{labels.shape}. Convert one-hot labels with "
                     f"labels.argmax(-1).")
  if labels.size and not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be integers; got dtype {labels.dtype}.")
  if labels.size:
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
      raise ValueError(f"labels must be class ids >= 0; found {low}. Map the "
                       f"classes to 0..K-1 first.")
    if high >= num_classes:
      raise ValueError(
          f"num_classes ({num_classes}) is smaller than a label: found label "
          f"{high}, but labels must lie in [0, {num_classes}). Pass "
          f"num_classes={high + 1} or more.")
  idx = _as_indices(indices, labels.shape[0], "labels")
  key = _as_key(key)
  p32, k32 = jnp.float32(p), jnp.int32(num_classes)
  replace, new_class = _map_chunks(
      lambda chunk: _label_draws(key, chunk, p32, k32), idx,
      (np.empty(idx.shape[0], bool), np.empty(idx.shape[0], np.int32)),
      sizes=_LABEL_BUCKETS)
  labels32 = labels.astype(np.int32)
  new_labels = np.where(replace, new_class, labels32).astype(np.int32)
  return new_labels, new_labels != labels32


# ---------------------------------------------------------------------------
# Pixel permutations
# ---------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("num_positions",))
def _sort_keys(key: jax.Array, num_positions: int) -> jax.Array:
  """One random uint32 sort key per pixel position."""
  return jax.random.bits(key, (num_positions,), jnp.uint32)


@functools.partial(jax.jit, static_argnames=("num_positions",))
def _batched_sort_keys(key: jax.Array, indices: jax.Array,
                       num_positions: int) -> tuple[jax.Array]:
  keys = jax.vmap(lambda i: _sort_keys(jax.random.fold_in(key, i),
                                       num_positions))(indices)
  return (keys,)


def _permutations_from_sort_keys(sort_keys: np.ndarray) -> np.ndarray:
  """Permutations of ``range(n)`` from ``(..., n)`` uint32 random sort keys.

  The permutation lists the positions in increasing order of their keys,
  ties broken by position: the stable argsort of the keys, as in each
  sorting round of ``jax.random.permutation``. It is uniform up to ties,
  which have probability below ``n**2 / 2**33`` per permutation (1.2e-4 for
  32x32 images). Each ``(key, position)`` pair is packed into one uint64 and
  sorted with numpy, which is several times faster than a batched
  ``jnp.argsort`` on CPU.
  """
  n = sort_keys.shape[-1]
  packed = np.empty(sort_keys.shape + (2,), np.uint32)
  if sys.byteorder == "little":
    packed[..., 0] = np.arange(n, dtype=np.uint32)
    packed[..., 1] = sort_keys
  else:
    packed[..., 0] = sort_keys
    packed[..., 1] = np.arange(n, dtype=np.uint32)
  pairs = packed.view(np.uint64)[..., 0]
  pairs.sort(axis=-1)
  return packed[..., 0 if sys.byteorder == "little" else 1].astype(np.int32)


def _gather_pixels(flat: np.ndarray, perms: np.ndarray) -> np.ndarray:
  """Moves whole pixels of ``(N, P, C)`` images.

  Args:
    flat: ``(N, P, C)`` images with P = H*W positions.
    perms: ``(P,)`` one permutation for every image, or ``(N, P)`` one per
      image.

  Returns:
    ``out[i, j] = flat[i, perms[j]]`` (or ``flat[i, perms[i, j]]``). Each
    pixel is moved as one ``C * itemsize``-byte unit, so its channels stay
    together.
  """
  n, positions, c = flat.shape
  pixel = np.dtype((np.void, c * flat.dtype.itemsize))
  as_pixels = np.ascontiguousarray(flat).view(pixel).reshape(n, positions)
  if perms.ndim == 1:
    out = np.take(as_pixels, perms, axis=1)
  else:
    out = np.take_along_axis(as_pixels, perms, axis=1)
  return out.view(flat.dtype).reshape(n, positions, c)


def _check_size(height, width) -> int:
  for name, value in (("height", height), ("width", width)):
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
        or value < 1):
      raise ValueError(f"{name} must be a positive integer; got {value!r}.")
  n = int(height) * int(width)
  if n >= 2**31:
    raise ValueError(f"{height}x{width} images have too many pixels ({n}) "
                     f"for an int32 permutation.")
  return n


def pixel_permutation(key, height: int, width: int) -> np.ndarray:
  """The one permutation of pixel positions of "shuffled pixels" (Section 2.1).

  A uniformly random permutation of the ``height * width`` spatial positions
  (row-major), drawn from ``key`` only. :func:`shuffle_pixels` applies it to
  every image; the caller applies the same key to the test set, which then
  gets the same permutation, as the paper states.

  Args:
    key: a typed key (``jax.random.key``) or a raw uint32 key.
    height: image height H.
    width: image width W.

  Returns:
    An int32 numpy array of shape ``(H*W,)``: shuffled position ``j`` takes
    the pixel at original position ``perm[j]``.
  """
  n = _check_size(height, width)
  return _permutations_from_sort_keys(
      np.asarray(_sort_keys(_as_key(key), n)))


def shuffle_pixels(key, images) -> np.ndarray:
  """Shuffled pixels (Section 2.1): one permutation for every image.

  The spatial positions are permuted with :func:`pixel_permutation` ``(key,
  H, W)``; the channels of a pixel move together (an RGB triple stays
  intact), and every image gets the same permutation. Use the same key for
  the training and the test set (as :func:`randomize` does).

  Args:
    key: a typed key (``jax.random.key``) or a raw uint32 key.
    images: ``(N, H, W, C)`` uint8 or float images.

  Returns:
    A numpy array of the same shape and dtype.
  """
  images = _check_images(images)
  n, h, w, c = images.shape
  perm = pixel_permutation(key, h, w)
  return _gather_pixels(images.reshape(n, h * w, c), perm).reshape(
      images.shape)


def randomize_pixels(key, images, indices=None) -> np.ndarray:
  """Random pixels (Section 2.1): an independent permutation for each image.

  Image ``i`` has its spatial positions permuted by
  ``pixel_permutation(jax.random.fold_in(key, i), H, W)``; the channels of a
  pixel move together and each image keeps its own multiset of pixels.

  Args:
    key: a typed key (``jax.random.key``) or a raw uint32 key.
    images: ``(N, H, W, C)`` uint8 or float images.
    indices: ``(N,)`` position of each image in the full data set; defaults
      to ``arange(N)``. Pass it when randomizing a shuffled subset or a batch.

  Returns:
    A numpy array of the same shape and dtype.

  Raises:
    ValueError: badly shaped images or indices of the wrong length.
  """
  images = _check_images(images)
  n, h, w, c = images.shape
  idx = _as_indices(indices, n, "images")
  positions = _check_size(h, w)
  key = _as_key(key)
  flat = images.reshape(n, positions, c)
  out = np.empty_like(flat)

  def permute(rows, sort_keys):
    perms = _permutations_from_sort_keys(sort_keys)
    return (_gather_pixels(flat[rows], perms),)

  _map_chunks(lambda chunk: _batched_sort_keys(key, chunk, positions),
              idx, (out,), permute)
  return out.reshape(images.shape)


# ---------------------------------------------------------------------------
# Gaussian images
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class PixelStats:
  """Mean and standard deviation of a data set's pixels (Section 2.1).

  The statistics are taken in the 0..255 pixel space of the stored images,
  the space the Gaussian images are drawn in: "matching mean and variance to
  the original image dataset". The Gaussian images then go through the same
  input pipeline as real ones (divide by 255, crop, per-image whitening).

  Attributes:
    mean: float64 array of shape ``()`` (``"global"``) or ``(C,)``
      (``"per_channel"``).
    std: population standard deviation, same shape as ``mean``.
    image_shape: ``(H, W, C)`` of the images.
  """

  mean: np.ndarray
  std: np.ndarray
  image_shape: tuple[int, int, int]

  def __post_init__(self):
    mean = np.array(self.mean, dtype=np.float64)
    std = np.array(self.std, dtype=np.float64)
    shape = tuple(int(s) for s in self.image_shape)
    if len(shape) != 3 or min(shape) < 1:
      raise ValueError(f"image_shape must be (H, W, C) with positive sizes; "
                       f"got {self.image_shape!r}.")
    if mean.shape != std.shape or mean.shape not in ((), (shape[2],)):
      raise ValueError(
          f"mean and std must both have shape () (global) or ({shape[2]},) "
          f"(per channel, C={shape[2]}); got {mean.shape} and {std.shape}.")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))
            and np.all(std >= 0)):
      raise ValueError(f"mean must be finite and std finite and >= 0; got "
                       f"mean={mean}, std={std}.")
    mean.flags.writeable = False
    std.flags.writeable = False
    object.__setattr__(self, "mean", mean)
    object.__setattr__(self, "std", std)
    object.__setattr__(self, "image_shape", shape)

  @property
  def statistics(self) -> str:
    """``"global"`` or ``"per_channel"``, from the shape of ``mean``."""
    return "global" if self.mean.ndim == 0 else "per_channel"

  def to_dict(self) -> dict[str, Any]:
    """JSON-serializable form, as recorded in a manifest."""
    return {"statistics": self.statistics,
            "mean": self.mean.tolist(), "std": self.std.tolist(),
            "image_shape": list(self.image_shape)}


def pixel_stats(images, statistics: str = "global") -> PixelStats:
  """Mean and variance of a data set's pixels, in 0..255 space (Section 2.1).

  uint8 images are summarized exactly from per-channel histograms; float
  images (already on the 0..255 scale) in float64 with two chunked passes.

  Args:
    images: ``(N, H, W, C)`` uint8 pixels, or floats on the 0..255 scale.
    statistics: ``"global"`` (one mean and variance over all values, the
      default) or ``"per_channel"`` (one per colour channel).

  Returns:
    The :class:`PixelStats`; ``std`` is the population standard deviation.

  Raises:
    ValueError: an unknown ``statistics`` name, badly shaped, empty or
      non-finite images.
  """
  _check_statistics(statistics)
  images = _check_images(images)
  if images.shape[0] == 0:
    raise ValueError("cannot take pixel statistics of an empty data set.")
  c = images.shape[-1]
  if images.dtype == np.uint8:
    values = np.arange(256, dtype=np.float64)
    hist = np.stack([np.bincount(images[..., k].ravel(), minlength=256)
                     for k in range(c)]).astype(np.float64)  # (C, 256)
    if statistics == "global":
      hist = hist.sum(0, keepdims=True)
    count = hist.sum(-1)
    mean = hist @ values / count
    var = (hist * (values - mean[:, None])**2).sum(-1) / count
  else:
    flat = images.reshape(-1, c)
    rows = _CHUNK * math.prod(images.shape[1:3])
    chunks = [flat[s:s + rows] for s in range(0, flat.shape[0], rows)]
    axis = None if statistics == "global" else 0
    total = sum(np.sum(x, axis=axis, dtype=np.float64) for x in chunks)
    count = flat.shape[0] * (c if axis is None else 1)
    mean = np.asarray(total / count)
    if not np.all(np.isfinite(mean)):
      raise ValueError("images contain NaN or infinite values.")
    var = sum(np.sum((x.astype(np.float64) - mean)**2, axis=axis)
              for x in chunks) / count
  if statistics == "global":
    mean, var = np.asarray(mean).reshape(()), np.asarray(var).reshape(())
  return PixelStats(mean=mean, std=np.sqrt(var),
                    image_shape=tuple(images.shape[1:]))


@functools.partial(jax.jit, static_argnames=("image_shape",))
def _gaussian_draws(key: jax.Array, indices: jax.Array, mean: jax.Array,
                    std: jax.Array,
                    image_shape: tuple[int, int, int]) -> tuple[jax.Array]:

  def one(index):
    noise = jax.random.normal(jax.random.fold_in(key, index), image_shape,
                              jnp.float32)
    return mean + std * noise

  return (jax.vmap(one)(indices),)


def gaussian_images(key, images_or_stats, indices=None,
                    statistics: str | None = None) -> np.ndarray:
  """Gaussian images (Section 2.1) matching the data set's mean and variance.

  Image ``i`` is ``mean + std * jax.random.normal(jax.random.fold_in(key, i),
  (H, W, C))`` in float32 on the 0..255 scale, **not** rounded or clipped
  (the pipeline divides by 255 and whitens it like a real image).

  Args:
    key: a typed key (``jax.random.key``) or a raw uint32 key.
    images_or_stats: the original ``(N, H, W, C)`` images, whose statistics
      are matched (computed with :func:`pixel_stats`), or a
      :class:`PixelStats` computed beforehand (e.g. once for a streamed data
      set).
    indices: which examples to make. With images it defaults to
      ``arange(N)`` (one Gaussian image per original image); with a
      :class:`PixelStats` it is required and ``len(indices)`` images are made.
      ``gaussian_images(key, x, indices=idx)`` equals
      ``gaussian_images(key, x)[idx]``.
    statistics: ``"global"`` or ``"per_channel"``; with images it defaults
      to ``"global"``. A :class:`PixelStats` already fixes it, so a value
      given with one must agree with it.

  Returns:
    A float32 numpy array of shape ``(len(indices), H, W, C)``.

  Raises:
    ValueError: an unknown or conflicting ``statistics``, missing indices
      with a :class:`PixelStats`, or bad indices.
  """
  if isinstance(images_or_stats, PixelStats):
    stats = images_or_stats
    if statistics is not None and _check_statistics(
        statistics) != stats.statistics:
      raise ValueError(
          f"statistics={statistics!r} conflicts with the given PixelStats, "
          f"which are {stats.statistics!r}; drop the argument or recompute "
          f"the stats with pixel_stats(images, {statistics!r}).")
    if indices is None:
      raise ValueError(
          "indices are required with a PixelStats: pass the positions of the "
          "examples to make, e.g. np.arange(num_examples).")
    idx = _as_indices(indices, None, "Gaussian images")
  else:
    stats = pixel_stats(images_or_stats, statistics or "global")
    idx = _as_indices(indices, None if indices is not None else
                      np.shape(images_or_stats)[0], "images")
  key = _as_key(key)
  # Global statistics are broadcast to one value per channel, so that both
  # kinds share one compiled function (the values are the same).
  channels = stats.image_shape[-1]
  mean = jnp.broadcast_to(jnp.asarray(stats.mean, jnp.float32), (channels,))
  std = jnp.broadcast_to(jnp.asarray(stats.std, jnp.float32), (channels,))
  out = np.empty((idx.shape[0],) + stats.image_shape, np.float32)
  _map_chunks(
      lambda chunk: _gaussian_draws(key, chunk, mean, std, stats.image_shape),
      idx, (out,))
  return out


# ---------------------------------------------------------------------------
# One randomization test applied to a train/test pair
# ---------------------------------------------------------------------------


def randomization_key(seed: int, kind: str) -> jax.Array:
  """The key :func:`randomize` uses for one kind of draw (Section 2.1).

  A streamed data set (e.g. ImageNet) reproduces exactly what
  :func:`randomize` does in memory by passing this key and each example's
  index to :func:`corrupt_labels`, :func:`shuffle_pixels`,
  :func:`randomize_pixels` or :func:`gaussian_images`.

  Args:
    seed: the integer seed of the randomization, in [0, 2**32).
    kind: one of the keys of :data:`KEY_STREAMS`.

  Returns:
    ``jax.random.fold_in(jax.random.key(seed), KEY_STREAMS[kind])``, a typed
    key.

  Raises:
    ValueError: an unknown kind or a bad seed.
  """
  if kind not in KEY_STREAMS:
    raise ValueError(f"unknown key stream {kind!r}; choose one of "
                     f"{', '.join(KEY_STREAMS)}.")
  if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
    raise ValueError(f"seed must be an integer; got {seed!r}.")
  if not 0 <= int(seed) < 2**32:
    raise ValueError(f"seed must lie in [0, 2**32); got {seed}.")
  return jax.random.fold_in(jax.random.key(int(seed)), KEY_STREAMS[kind])


def train_label_key(seed: int) -> jax.Array:
  """``randomization_key(seed, "train_labels")``: the training-label key.

  Streamed data sets (:mod:`rethink_jax.streaming`) pass it with each
  example's index to :func:`corrupt_labels`, which reproduces the labels
  :func:`randomize` gives an in-memory copy of the same split.

  Args:
    seed: the integer seed of the randomization, in [0, 2**32).

  Returns:
    A typed key.
  """
  return randomization_key(seed, "train_labels")


def environment_manifest() -> dict[str, Any]:
  """Versions and RNG settings that determine the random draws.

  Part of every manifest :func:`randomize` writes; other producers of
  randomized data (streamed data sets) can add it to theirs.

  Returns:
    ``rethink_jax_version``, ``jax_version``, ``jax_prng_impl`` (the default
    PRNG implementation) and ``jax_threefry_partitionable``.
  """
  from rethink_jax import __version__  # pylint: disable=import-outside-toplevel
  return {
      "rethink_jax_version": __version__,
      "jax_version": jax.__version__,
      "jax_prng_impl": str(jax.config.values["jax_default_prng_impl"]),
      "jax_threefry_partitionable": bool(
          jax.config.values["jax_threefry_partitionable"]),
  }


def _manifest(data: ArrayDataset, role: str, *, name: str, p: float | None,
              seed: int,
              stats: PixelStats | None, labels_corrupted: bool,
              images_randomized: bool, permutation: np.ndarray | None
              ) -> dict[str, Any]:
  changed = int(np.count_nonzero(data.labels != data.true_labels))
  return {
      "randomization": name,
      "p": p,
      "seed": seed,
      "statistics": None if stats is None else stats.statistics,
      "pixel_mean": None if stats is None else stats.mean.tolist(),
      "pixel_std": None if stats is None else stats.std.tolist(),
      "dataset": data.name,
      "split": data.split or role,
      "num_examples": len(data),
      "num_classes": data.num_classes,
      "labels_corrupted": labels_corrupted,
      "num_changed_labels": changed,
      "changed_label_fraction": changed / len(data) if len(data) else 0.0,
      "labels_sha256": sha256(data.labels.astype(np.int32)),
      "images_randomized": images_randomized,
      "permutation_sha256": (None if permutation is None
                             else sha256(permutation.astype(np.int32))),
      "images_sha256": sha256(data.images) if images_randomized else None,
      **environment_manifest(),
  }


def _check_pair(train: ArrayDataset, test: ArrayDataset) -> None:
  for split, data in (("train", train), ("test", test)):
    if not isinstance(data, ArrayDataset):
      raise TypeError(f"{split} must be an ArrayDataset; got "
                      f"{type(data).__name__}. Wrap arrays with "
                      f"rethink_jax.dataset.from_arrays.")
    if data.manifest is not None:
      raise DataError(
          f"the {split} set ({data.name}/{data.split}) is already randomized "
          f"({data.manifest.get('randomization')!r}); apply randomize() to "
          f"the clean data set.")
  if train.num_classes != test.num_classes:
    raise DataError(f"train has {train.num_classes} classes but test has "
                    f"{test.num_classes}; pass num_classes explicitly to "
                    f"from_arrays so that both agree.")
  if train.image_shape != test.image_shape:
    raise DataError(f"train images are {train.image_shape} but test images "
                    f"are {test.image_shape}; both splits must have the same "
                    f"image shape.")


def randomize(train: ArrayDataset, test: ArrayDataset, name: str, *,
              seed: int, p: float | None = None,
              statistics: str | None = None,
              corrupt_test_labels: bool = False,
              train_indices=None, test_indices=None
              ) -> tuple[ArrayDataset, ArrayDataset]:
  """Applies one randomization test of Section 2.1 to a train/test pair.

  * ``true_labels``: nothing changes (both sets still get a manifest).
  * ``partially_corrupted_labels`` (requires ``p``) and ``random_labels``
    (p = 1): the training labels are corrupted with :func:`corrupt_labels`;
    ``labels`` holds the corrupted labels and ``true_labels`` the originals.
    Both use the same label stream, so ``random_labels`` equals
    ``partially_corrupted_labels`` at p = 1 for the same seed, and the sets of
    corrupted examples are nested across p.
  * ``shuffled_pixels``: one permutation of pixel positions, applied to the
    training **and** the test images (the paper states this explicitly).
  * ``random_pixels`` / ``gaussian``: only the training images change; the
    test images stay clean. The paper reports only the training loss for
    these two (Fig. 1a) and does not say what happens to the test set, so
    evaluating on them measures how the network does on real images.
    ``gaussian`` matches the mean and variance of the training images in
    0..255 space (``statistics``: ``"global"`` by default, or
    ``"per_channel"``).

  The test labels are never corrupted unless ``corrupt_test_labels=True``
  (the paper evaluates on the clean test labels, Fig. 1c). Every draw comes
  from ``jax.random.key(seed)`` folded with a fixed constant per kind
  (training labels, test labels, shuffled pixels, random pixels, Gaussian),
  so the streams are independent, and example ``i`` of a split uses
  ``fold_in(stream, i)``.

  Args:
    train: the clean training set.
    test: the clean test set.
    name: one of :data:`RANDOMIZATIONS`.
    seed: the integer seed of the randomization (one fixed draw per seed).
    p: corruption probability; required for ``partially_corrupted_labels``
      and not accepted for any other randomization.
    statistics: ``"global"`` (default) or ``"per_channel"``; only accepted
      for ``gaussian``.
    corrupt_test_labels: also corrupt the test labels, with an independent
      draw; only for ``partially_corrupted_labels`` and ``random_labels``.
      Off by default, as in the paper.
    train_indices, test_indices: the position of each example in its full
      split (default ``arange``). A subset randomized with its examples'
      original positions gets exactly the draws those examples get in the
      full split, so a run on a subset is the same experiment on fewer
      examples. (The Gaussian statistics are those of the images passed.)

  Returns:
    ``(train, test)``: new :class:`ArrayDataset` objects whose ``manifest``
    describes the randomization (name, p, seed, statistics, data set name
    and split, example count, changed labels, ``labels_sha256``,
    ``permutation_sha256``, ``images_sha256``, library and JAX versions, the
    PRNG implementation and ``jax_threefry_partitionable``).

  Raises:
    ValueError: unknown name, p missing or not allowed, statistics or
      corrupt_test_labels not allowed, a bad seed; ``DataError`` (a
      ValueError) for mismatched or already randomized data sets.
  """
  if name not in RANDOMIZATIONS:
    raise ValueError(f"unknown randomization {name!r}; choose one of "
                     f"{', '.join(RANDOMIZATIONS)}.")
  randomization_key(seed, "train_labels")  # Validates the seed.
  seed = int(seed)
  if name == "partially_corrupted_labels":
    if p is None:
      raise ValueError("partially_corrupted_labels requires p, the corruption "
                       "probability in [0, 1] (e.g. p=0.5).")
    p = _check_probability(p)
  elif p is not None:
    hint = (" random_labels is p=1 already; use partially_corrupted_labels to "
            "choose p." if name == "random_labels" else "")
    raise ValueError(f"p={p!r} is only used by partially_corrupted_labels, "
                     f"not by {name}; drop it.{hint}")
  if statistics is not None:
    if name != "gaussian":
      raise ValueError(f"statistics={statistics!r} is only used by the "
                       f"gaussian randomization, not by {name}; drop it.")
    _check_statistics(statistics)
  if corrupt_test_labels and name not in LABEL_RANDOMIZATIONS:
    raise ValueError(f"corrupt_test_labels=True only applies to "
                     f"{' and '.join(LABEL_RANDOMIZATIONS)}, not to {name}.")
  _check_pair(train, test)

  stats = None
  permutation = None
  label_p = {"true_labels": 0.0, "random_labels": 1.0,
             "partially_corrupted_labels": p}.get(name)
  new_train, new_test = train, test
  train_idx = _as_indices(train_indices, len(train), "training examples")
  test_idx = _as_indices(test_indices, len(test), "test examples")
  if name in LABEL_RANDOMIZATIONS:
    assert label_p is not None
    labels, _ = corrupt_labels(
        randomization_key(seed, "train_labels"), train.true_labels,
        label_p, train.num_classes, indices=train_idx)
    new_train = train.replace(labels=labels)
    if corrupt_test_labels:
      labels, _ = corrupt_labels(
          randomization_key(seed, "test_labels"), test.true_labels,
          label_p, test.num_classes, indices=test_idx)
      new_test = test.replace(labels=labels)
  elif name == "shuffled_pixels":
    key = randomization_key(seed, "shuffled_pixels")
    permutation = pixel_permutation(key, *train.image_shape[:2])
    new_train = train.replace(images=shuffle_pixels(key, train.images))
    new_test = test.replace(images=shuffle_pixels(key, test.images))
  elif name == "random_pixels":
    new_train = train.replace(images=randomize_pixels(
        randomization_key(seed, "random_pixels"), train.images,
        indices=train_idx))
  elif name == "gaussian":
    stats = pixel_stats(train.images, statistics or "global")
    new_train = train.replace(images=gaussian_images(
        randomization_key(seed, "gaussian"), stats, indices=train_idx))

  common: dict[str, Any] = {"name": name, "p": label_p, "seed": seed, "stats": stats,
            "permutation": permutation}
  new_train = new_train.replace(manifest=_manifest(
      new_train, "train", labels_corrupted=name in LABEL_RANDOMIZATIONS,
      images_randomized=name in PIXEL_RANDOMIZATIONS, **common))
  new_test = new_test.replace(manifest=_manifest(
      new_test, "test", labels_corrupted=corrupt_test_labels,
      images_randomized=name == "shuffled_pixels", **common))
  return new_train, new_test

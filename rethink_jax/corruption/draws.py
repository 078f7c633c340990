"""Keys, example indices and the chunked draw engine of the randomizations.

Everything random about example ``i`` is a function of
``jax.random.fold_in(key, i)`` only (Section 2.1's "drawn once and fixed"),
evaluated under ``jax.jit`` + ``jax.vmap`` in fixed-size padded chunks.
"""

from __future__ import annotations

import functools
import hashlib
import numbers
import sys

import jax
import jax.numpy as jnp
import numpy as np

KEY_STREAMS = {
    "train_labels": 1,
    "test_labels": 2,
    "shuffled_pixels": 3,
    "random_pixels": 4,
    "gaussian": 5,
}
"""The independent random streams of the randomizations, by kind.

Each kind draws from ``jax.random.fold_in(jax.random.key(seed), constant)``
(see :func:`randomization_key`), so that e.g. the label draw does not
correlate with a pixel draw made from the same seed. The constants are part of
the definition of an experiment: changing one changes every experiment of
that kind (the golden-hash tests in tests/test_corruption.py pin them).
"""

# Examples are drawn in chunks of at most CHUNK. A shorter request (or the
# last chunk) is padded to the smallest of IMAGE_BUCKETS that holds it, so
# three compiled shapes per image shape serve every batch size; label draws
# are so cheap that they always use one padded chunk size.
CHUNK = 4096
IMAGE_BUCKETS = (64, 512, CHUNK)
LABEL_BUCKETS = (CHUNK,)
_MAX_INDEX = 2**32 - 1  # fold_in folds in a uint32.

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


def as_key(key) -> jax.Array:
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


def as_indices(indices, n: int | None, what: str) -> np.ndarray:
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
  for start in range(0, n, CHUNK):
    stop = min(start + CHUNK, n)
    yield start, stop, next(s for s in sizes if s >= stop - start)


def map_chunks(fn, idx: np.ndarray, outs: tuple[np.ndarray, ...],
                finish=None, sizes: tuple[int, ...] = IMAGE_BUCKETS
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


def check_images(images, what: str = "images") -> np.ndarray:
  arr = np.asarray(images)
  if arr.ndim != 4:
    raise ValueError(
        f"{what} must have shape (N, H, W, C); got shape {arr.shape}. Add a "
        f"channel axis to gray images with images[..., None].")
  if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
    raise ValueError(f"{what} must be uint8 or floating point pixels; got "
                     f"dtype {arr.dtype}.")
  return arr


def randomization_key(seed: int, kind: str) -> jax.Array:
  """The key :func:`randomize` uses for one kind of draw (Section 2.1).

  A streamed data set (e.g. ImageNet) reproduces exactly what
  :func:`rethink_jax.corruption.randomize` does in memory by passing this key
  and each example's index to the functions of
  :mod:`rethink_jax.corruption`.

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

  Passed with each example's index to
  :func:`rethink_jax.corruption.corrupt_labels`, it reproduces the training
  labels :func:`rethink_jax.corruption.randomize` gives.

  Args:
    seed: the integer seed of the randomization, in [0, 2**32).

  Returns:
    A typed key.
  """
  return randomization_key(seed, "train_labels")


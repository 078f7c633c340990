"""Pixel randomizations of Section 2.1: shuffled pixels and random pixels.

``shuffled_pixels``: one random permutation of the pixel positions, applied
to every training **and** test image. ``random_pixels``: an independent
random permutation for each training image (example ``i``'s from
``fold_in(key, i)``). Channels move together with their pixel.
"""

from __future__ import annotations

import functools
import numbers
import sys

import jax
import jax.numpy as jnp
import numpy as np

from rethink_jax.corruption import draws
from rethink_jax.corruption import registry
from rethink_jax.data.dataset import ArrayDataset


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
      np.asarray(_sort_keys(draws.as_key(key), n)))


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
  images = draws.check_images(images)
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
  images = draws.check_images(images)
  n, h, w, c = images.shape
  idx = draws.as_indices(indices, n, "images")
  positions = _check_size(h, w)
  key = draws.as_key(key)
  flat = images.reshape(n, positions, c)
  out = np.empty_like(flat)

  def permute(rows, sort_keys):
    perms = _permutations_from_sort_keys(sort_keys)
    return (_gather_pixels(flat[rows], perms),)

  draws.map_chunks(lambda chunk: _batched_sort_keys(key, chunk, positions),
              idx, (out,), permute)
  return out.reshape(images.shape)



def _shuffled(train: ArrayDataset, test: ArrayDataset,
              context: registry.Context):
  key = draws.randomization_key(context.seed, "shuffled_pixels")
  permutation = pixel_permutation(key, *train.image_shape[:2])
  return (train.replace(images=shuffle_pixels(key, train.images)),
          test.replace(images=shuffle_pixels(key, test.images)),
          {"permutation": permutation})


def _random(train: ArrayDataset, test: ArrayDataset,
            context: registry.Context):
  key = draws.randomization_key(context.seed, "random_pixels")
  images = randomize_pixels(key, train.images, indices=context.train_indices)
  return train.replace(images=images), test, {}


registry.register(registry.Randomization(
    "shuffled_pixels", "one pixel permutation for every training and test "
    "image", images=_shuffled))
registry.register(registry.Randomization(
    "random_pixels", "an independent pixel permutation for each training "
    "image", images=_random))

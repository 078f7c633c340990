"""Fixed feature maps for the Section 5 kernel experiments.

Section 5 of the paper (arXiv 1611.03530) solves Eq. 3 not only on raw
pixels: on MNIST after "a Gabor wavelet transform" (1.2% -> 0.6% test error),
on CIFAR-10 after "a random convolutional neural net with 32,000 random
filters" (17%, 15% with l2 regularization). The paper gives no further detail
of either map; the readings implemented here are stated in
docs/ambiguities.md:

* :func:`preprocess`: what is done to the pixels before any map or kernel
  (``"scale"``: pixels / 255, the paper's and the first author's sample;
  ``"center"``: minus the mean training image, a no-op for a Gaussian kernel,
  kept to show it; ``"per_image_centering"``; ``"per_image_standardization"``
  as ``tf.image.per_image_standardization``).
* :func:`gabor_features`: the complex moduli of a bank of Gabor wavelets
  (orientations x wavelengths), average-pooled.
* :class:`RandomConvNet`: one random convolutional layer in the manner of
  Coates & Ng (2011): 6 x 6 patches, per-patch contrast normalization and ZCA
  whitening, random unit-norm filters, a ReLU, sum pooling over the four
  image quadrants (4 features per filter). Its features are produced one
  block of filters at a time, so the Gram matrix of 32,000 filters
  (128,000 features) can be accumulated without ever holding the features
  (:class:`rethink_jax.theory.kernels.GramAccumulator`).

Everything is a deterministic function of the images, the options and a JAX
PRNG key.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from rethink_jax.data import preprocessing as data_preprocessing
from rethink_jax.registry import Registry

PREPROCESSING: Registry = Registry(
    "pixel preprocessing", "see rethink_jax.theory.features")


def _scale(images: np.ndarray, train_mean: np.ndarray) -> np.ndarray:
  del train_mean
  return images


def _center(images: np.ndarray, train_mean: np.ndarray) -> np.ndarray:
  return images - train_mean


def _per_image_centering(images: np.ndarray, train_mean: np.ndarray
                         ) -> np.ndarray:
  del train_mean
  flat = images.reshape(len(images), -1)
  return (flat - flat.mean(axis=1, keepdims=True)).reshape(images.shape)


def _per_image_standardization(images: np.ndarray, train_mean: np.ndarray
                               ) -> np.ndarray:
  del train_mean
  # The training pipeline's own whitening (Appendix A), in float32.
  return np.concatenate([
      np.asarray(data_preprocessing.per_image_standardization(
          jnp.asarray(images[s:s + 4096], jnp.float32)), np.float64)
      for s in range(0, len(images), 4096)])


PREPROCESSING.register("scale", _scale)
PREPROCESSING.register("center", _center)
PREPROCESSING.register("per_image_centering", _per_image_centering)
PREPROCESSING.register("per_image_standardization",
                       _per_image_standardization)


def preprocess(images, mode: str, *, train_images=None) -> np.ndarray:
  """Pixels / 255 in float64, then the named preprocessing.

  Args:
    images: ``(n, h, w, c)`` uint8 (or float on the 0..255 scale) images.
    mode: a name in :data:`PREPROCESSING`: ``"scale"`` (nothing more),
      ``"center"`` (minus the mean image of ``train_images``),
      ``"per_image_centering"`` (each image minus its own mean) or
      ``"per_image_standardization"`` (each image minus its mean, divided by
      ``max(std, 1/sqrt(num_values))``, as
      ``tf.image.per_image_standardization``: the training pipeline's
      :func:`rethink_jax.data.preprocessing.per_image_standardization`).
    train_images: the training images whose mean ``"center"`` subtracts
      (default: ``images``).

  Returns:
    ``(n, h, w, c)`` float64 array.
  """
  fn = PREPROCESSING.get(mode)
  scaled = np.asarray(images, np.float64) / 255.0
  reference = scaled if train_images is None else (
      np.asarray(train_images, np.float64) / 255.0)
  return fn(scaled, reference.mean(axis=0))


# The default Gabor bank (our reading; the paper gives none).
GABOR_SIZE = 11
GABOR_WAVELENGTHS = (3.0, 6.0, 12.0)
GABOR_ORIENTATIONS = 8


def gabor_bank(size: int = GABOR_SIZE, wavelengths=GABOR_WAVELENGTHS,
               num_orientations: int = GABOR_ORIENTATIONS,
               bandwidth: float = 1.0) -> np.ndarray:
  """Complex Gabor wavelets ``(size, size, len(wavelengths) * orientations)``.

  ``g(x, y) = exp(-(x'^2 + y'^2) / (2 sigma^2)) exp(2 pi i x' / lambda)`` with
  ``x'`` the coordinate along the orientation ``theta = pi k / K``; sigma
  follows the wavelength for a ``bandwidth``-octave filter
  (``sigma = lambda / pi sqrt(ln 2 / 2) (2^b + 1) / (2^b - 1)``, 0.56 lambda
  at one octave). Each wavelet has zero mean (the DC response is removed)
  and unit l1 norm.
  """
  half = size // 2
  y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
  ratio = (2.0**bandwidth + 1) / (2.0**bandwidth - 1)
  filters = []
  for wavelength in wavelengths:
    sigma = wavelength / np.pi * np.sqrt(np.log(2) / 2) * ratio
    for k in range(num_orientations):
      theta = np.pi * k / num_orientations
      along = x * np.cos(theta) + y * np.sin(theta)
      envelope = np.exp(-(x**2 + y**2) / (2 * sigma**2))
      wave = envelope * np.exp(2j * np.pi * along / wavelength)
      wave -= envelope * (wave.sum() / envelope.sum())
      filters.append(wave / np.abs(wave).sum())
  return np.stack(filters, axis=-1)


@functools.partial(jax.jit, static_argnames=("pool",))
def _gabor_moduli(images: jax.Array, bank_real: jax.Array,
                  bank_imag: jax.Array, pool: int) -> jax.Array:
  def conv(kernel):
    return jax.lax.conv_general_dilated(
        images, kernel, (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  modulus = jnp.sqrt(conv(bank_real)**2 + conv(bank_imag)**2)
  pooled = jax.lax.reduce_window(modulus, 0.0, jax.lax.add,
                                 (1, pool, pool, 1), (1, pool, pool, 1),
                                 "VALID") / pool**2
  return pooled.reshape(images.shape[0], -1)


def gabor_features(images, *, size: int = GABOR_SIZE,
                   wavelengths=GABOR_WAVELENGTHS,
                   num_orientations: int = GABOR_ORIENTATIONS, pool: int = 2,
                   batch_size: int = 1000) -> np.ndarray:
  """The Gabor wavelet transform of grayscale images (Section 5, MNIST).

  Each grayscale image is convolved ('SAME') with every complex wavelet of
  :func:`gabor_bank`; the modulus is average-pooled over ``pool x pool``
  windows. A 28 x 28 image with the default 24 wavelets
  and ``pool=2`` gives 14 * 14 * 24 = 4,704 features.

  Args:
    images: ``(n, h, w, 1)`` float images (e.g. :func:`preprocess` output).
    size, wavelengths, num_orientations: the bank (:func:`gabor_bank`).
    pool: side of the average-pooling window (and its stride).
    batch_size: images transformed per call.

  Returns:
    ``(n, (h // pool) * (w // pool) * num_wavelets)`` float32 features.
  """
  images = np.asarray(images, np.float32)
  if images.ndim != 4 or images.shape[-1] != 1:
    raise ValueError(f"gabor_features takes (n, h, w, 1) grayscale images; "
                     f"got shape {images.shape}.")
  bank = gabor_bank(size, wavelengths, num_orientations)[:, :, None, :]
  real = jnp.asarray(bank.real, jnp.float32)
  imag = jnp.asarray(bank.imag, jnp.float32)
  out = [np.asarray(_gabor_moduli(jnp.asarray(images[s:s + batch_size]),
                                  real, imag, pool))
         for s in range(0, len(images), batch_size)]
  return np.concatenate(out)


@dataclasses.dataclass(frozen=True)
class RandomConvNet:
  """One random convolutional layer, the CIFAR-10 features of Section 5.

  The paper's only description is "a random convolutional neural net with
  32,000 random filters"; this reading follows Coates & Ng's single-layer
  networks (AISTATS 2011) with random instead of learned filters:

  1. every ``patch_size`` x ``patch_size`` x channels patch (stride
     ``stride``) is contrast-normalized (minus its mean, divided by
     ``sqrt(var + contrast_epsilon)``, on the 0..1 scale) and ZCA-whitened
     (covariance of ``whitening_patches`` random training patches, plus
     ``whitening_epsilon``);
  2. ``num_filters`` filters drawn i.i.d. from a standard normal and scaled
     to unit norm are applied, followed by ``max(0, . - threshold)``;
  3. the responses are summed over a ``pool_grid`` x ``pool_grid`` grid of
     image regions (the four quadrants by default), giving
     ``pool_grid**2 * num_filters`` features.

  The default stride is Coates & Ng's 1; ``experiments/kernel_features.py``
  runs stride 2 (``--stride``), a quarter of the cost, on all 50,000
  CIFAR-10 images (docs/ambiguities.md).
  """

  num_filters: int = 32_000
  patch_size: int = 6
  stride: int = 1
  pool_grid: int = 2
  threshold: float = 0.0
  contrast_epsilon: float = 0.01
  whitening_epsilon: float = 0.1
  whitening_patches: int = 100_000

  @property
  def features_per_filter(self) -> int:
    return self.pool_grid**2

  @property
  def num_features(self) -> int:
    return self.num_filters * self.features_per_filter

  def filters(self, key: jax.Array, patch_dim: int) -> np.ndarray:
    """The ``(patch_dim, num_filters)`` unit-norm random filters.

    Filter ``j`` depends only on ``(key, j)`` (drawn from
    ``fold_in(key, j // 1024)`` in blocks of 1024), so a block of filters is
    the same whichever blocks are computed around it.
    """
    columns = []
    for block in range(0, self.num_filters, 1024):
      width = min(1024, self.num_filters - block)
      draw = jax.random.normal(jax.random.fold_in(key, block // 1024),
                               (patch_dim, 1024), jnp.float32)
      columns.append(np.asarray(draw)[:, :width])
    w = np.concatenate(columns, axis=1)
    return w / np.linalg.norm(w, axis=0, keepdims=True)

  def whitening(self, images: np.ndarray, key: jax.Array
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, W)`` of the ZCA whitening, estimated on random patches."""
    n, h, w, _ = images.shape
    p = self.patch_size
    count = self.whitening_patches
    keys = jax.random.split(key, 3)
    idx = np.asarray(jax.random.randint(keys[0], (count,), 0, n))
    rows = np.asarray(jax.random.randint(keys[1], (count,), 0, h - p + 1))
    cols = np.asarray(jax.random.randint(keys[2], (count,), 0, w - p + 1))
    offsets = np.arange(p)
    patches = images[idx[:, None, None], rows[:, None, None]
                     + offsets[None, :, None], cols[:, None, None]
                     + offsets[None, None, :]]
    patches = _contrast_normalize(patches.reshape(count, -1),
                                  self.contrast_epsilon)
    mean = patches.mean(axis=0)
    cov = np.cov(patches - mean, rowvar=False)
    eigval, eigvec = np.linalg.eigh(cov)
    zca = eigvec @ np.diag(1.0 / np.sqrt(eigval + self.whitening_epsilon)
                           ) @ eigvec.T
    return mean.astype(np.float32), zca.astype(np.float32)

  def blocks(self, images, key: jax.Array, *, filters_per_block: int = 2048,
             batch_size: int = 250, fit_images=None, start: int = 0
             ) -> Iterator[tuple[slice, np.ndarray]]:
    """Yields ``(filter slice, (n, pool_grid**2 * block) features)`` blocks.

    Args:
      images: ``(n, h, w, c)`` float images on the 0..1 scale.
      key: PRNG key of the whitening sample and the filters.
      filters_per_block: filters per yielded block.
      batch_size: images per compiled call.
      fit_images: images the whitening is estimated on (default ``images``;
        pass the training images when featurizing test images).
      start: first filter (blocks before it are skipped, e.g. on resume).
    """
    images = np.asarray(images, np.float32)
    whiten_key, filter_key = jax.random.split(key)
    mean, zca = self.whitening(
        images if fit_images is None else np.asarray(fit_images, np.float32),
        whiten_key)
    patch_dim = self.patch_size**2 * images.shape[-1]
    filters = self.filters(filter_key, patch_dim)
    # Whitening and filtering are both linear: fold them into one matrix.
    combined = jnp.asarray(zca @ filters)
    shift = jnp.asarray(mean @ zca @ filters)
    for f0 in range(start, self.num_filters, filters_per_block):
      f1 = min(self.num_filters, f0 + filters_per_block)
      out = [np.asarray(_random_conv_block(
          jnp.asarray(images[s:s + batch_size]), combined[:, f0:f1],
          shift[f0:f1], self)) for s in range(0, len(images), batch_size)]
      yield slice(f0, f1), np.concatenate(out)


def _contrast_normalize(patches, epsilon: float):
  xp = jnp if isinstance(patches, jax.Array) else np
  centered = patches - patches.mean(axis=-1, keepdims=True)
  return centered / xp.sqrt(centered.var(axis=-1, keepdims=True) + epsilon)


@functools.partial(jax.jit, static_argnames=("net",))
def _random_conv_block(images: jax.Array, combined: jax.Array,
                       shift: jax.Array, net: RandomConvNet) -> jax.Array:
  """Pooled responses of one block of filters, without forming patches.

  With ``c = Z f`` (whitening folded into the filter) the response to a
  patch ``x`` with mean ``mu`` and ``sigma = sqrt(var + eps)`` is
  ``(c.x - mu sum(c)) / sigma - c.m``: one convolution of the raw images with
  ``c`` and two box filters for ``mu`` and ``var``, which XLA runs far faster
  than a product with extracted patches.
  """
  p, c = net.patch_size, images.shape[-1]
  kernel = combined.reshape(p, p, c, -1)
  dims = ("NHWC", "HWIO", "NHWC")
  strides = (net.stride, net.stride)

  def conv(x, k):
    return jax.lax.conv_general_dilated(x, k, strides, "VALID",
                                        dimension_numbers=dims)

  box = jnp.full((p, p, c, 1), 1.0 / (p * p * c), images.dtype)
  mean = conv(images, box)
  var = jnp.maximum(conv(images * images, box) - mean * mean, 0.0)
  inv = jax.lax.rsqrt(var + net.contrast_epsilon)
  response = jax.nn.relu((conv(images, kernel) - mean * combined.sum(axis=0))
                         * inv - shift - net.threshold)
  b, oh, ow, k = response.shape
  g = net.pool_grid
  if oh % g == 0 and ow % g == 0:  # Equal regions: one reshape and sum.
    pooled = response.reshape(b, g, oh // g, g, ow // g, k).sum(axis=(2, 4))
    return pooled.transpose(0, 3, 1, 2).reshape(b, -1)
  rows = np.array_split(np.arange(oh), g)
  cols = np.array_split(np.arange(ow), g)
  regions = [response[:, r[0]:r[-1] + 1, q[0]:q[-1] + 1].sum(axis=(1, 2))
             for r in rows for q in cols]
  # (batch, filter, region) -> one row, the regions of each filter together
  # (so consecutive blocks concatenate to the features of their union).
  return jnp.stack(regions, axis=2).reshape(b, -1)

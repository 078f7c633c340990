"""Input pipelines of the paper, as jit-able functions that run on the device.

CIFAR-10 (Appendix A, Appendix A): divide by 255, take the centre 28x28
crop, then per-image whitening with TensorFlow's formula
``(x - mean) / max(std, 1/sqrt(N))``. Training-time augmentation (Table 1's
"random crop", Table 4's flip + rotation) replaces the centre crop.

Inception V3 on ImageNet (Appendix B): the images arrive already cropped and
resized on the host (see :mod:`rethink_jax.streaming`) and are scaled to
[-1, 1] here, as in the TF-slim reference pipeline.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

CIFAR_CROP = 28
MAX_ROTATION_DEGREES = 25.0  # Table 4 "augmentation" (Appendix A).


def to_unit_range(images: jax.Array) -> jax.Array:
  """uint8 (or float on the 0..255 scale) pixels divided by 255."""
  return images.astype(jnp.float32) / 255.0


def center_crop(images: jax.Array, size: int = CIFAR_CROP) -> jax.Array:
  """The centre ``size`` x ``size`` crop of a batch ``(N, H, W, C)``."""
  h, w = images.shape[1], images.shape[2]
  if size > h or size > w:
    raise ValueError(f"crop size {size} is larger than the images ({h}x{w}).")
  top, left = (h - size) // 2, (w - size) // 2
  return images[:, top:top + size, left:left + size, :]


def per_image_standardization(images: jax.Array) -> jax.Array:
  """TensorFlow's ``per_image_standardization`` on a batch ``(N, H, W, C)``.

  ``(x - mean(x)) / max(std(x), 1/sqrt(N))`` with the mean and population std
  over all ``N = H*W*C`` values of each image (Appendix A).
  """
  x = images.astype(jnp.float32)
  n = math.prod(x.shape[1:])
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  std = jnp.std(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) / jnp.maximum(std, 1.0 / math.sqrt(n))


def cifar_eval(images: jax.Array, crop: int = CIFAR_CROP) -> jax.Array:
  """The paper's deterministic CIFAR-10 pipeline: /255, centre crop, whiten."""
  return per_image_standardization(center_crop(to_unit_range(images), crop))


def random_crop(key: jax.Array, images: jax.Array,
                size: int = CIFAR_CROP) -> jax.Array:
  """An independent random ``size`` x ``size`` crop of each image."""
  n, h, w, _ = images.shape
  ky, kx = jax.random.split(key)
  tops = jax.random.randint(ky, (n,), 0, h - size + 1)
  lefts = jax.random.randint(kx, (n,), 0, w - size + 1)

  def crop_one(image, top, left):
    return jax.lax.dynamic_slice(image, (top, left, 0),
                                 (size, size, image.shape[-1]))

  return jax.vmap(crop_one)(images, tops, lefts)


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
  """Left-right flip of each image with probability 1/2."""
  flip = jax.random.bernoulli(key, 0.5, (images.shape[0],))
  return jnp.where(flip[:, None, None, None], images[:, :, ::-1, :], images)


def random_rotation(key: jax.Array, images: jax.Array,
                    max_degrees: float = MAX_ROTATION_DEGREES) -> jax.Array:
  """Rotates each image by a uniform angle in [-max, max] degrees.

  Bilinear interpolation about the image centre; pixels from outside the
  image are filled with zeros (Keras' RandomRotation ``fill_mode="constant"``).
  """
  n, h, w, _ = images.shape
  angles = jax.random.uniform(key, (n,), minval=-max_degrees,
                              maxval=max_degrees) * (jnp.pi / 180.0)
  ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32),
                        jnp.arange(w, dtype=jnp.float32), indexing="ij")
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0

  def rotate_one(image, angle):
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    src_y = cos * (ys - cy) - sin * (xs - cx) + cy
    src_x = sin * (ys - cy) + cos * (xs - cx) + cx
    channels = [
        jax.scipy.ndimage.map_coordinates(image[..., c], [src_y, src_x],
                                          order=1, mode="constant", cval=0.0)
        for c in range(image.shape[-1])
    ]
    return jnp.stack(channels, axis=-1)

  return jax.vmap(rotate_one)(images.astype(jnp.float32), angles)


def cifar_train(key: jax.Array, images: jax.Array, *, random_crop_on: bool,
                flip_and_rotate: bool, crop: int = CIFAR_CROP) -> jax.Array:
  """CIFAR-10 training pipeline with the augmentation switches of the paper.

  Args:
    key: PRNG key for this batch (only used when an augmentation is on).
    images: ``(N, 32, 32, C)`` pixels on the 0..255 scale.
    random_crop_on: Table 1's "random crop": a random 28x28 crop instead of
      the centre crop.
    flip_and_rotate: Table 4's "augmentation": random left-right flip and a
      random rotation of up to 25 degrees.
    crop: crop size (28 in the paper).

  Returns:
    Whitened ``(N, crop, crop, C)`` float32 images.
  """
  x = to_unit_range(images)
  k_crop, k_flip, k_rot = jax.random.split(key, 3)
  if flip_and_rotate:
    x = random_rotation(k_rot, random_flip(k_flip, x))
  x = random_crop(k_crop, x, crop) if random_crop_on else center_crop(x, crop)
  return per_image_standardization(x)


def inception_scale(images: jax.Array) -> jax.Array:
  """Inception V3 input scaling: pixels 0..255 mapped to [-1, 1]."""
  return images.astype(jnp.float32) / 127.5 - 1.0

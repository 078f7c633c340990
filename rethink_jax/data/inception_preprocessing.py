"""TF-slim's Inception preprocessing, the ImageNet pipeline the paper reused.

Appendix B trains Inception V3 with the reference input pipeline; this is
TF-slim's ``inception_preprocessing`` (full mode), as TensorFlow graph ops
over a whole batch of JPEG bytes, compiled once per image size:

* training (:func:`train_batch`): a distorted bounding-box crop
  (``sample_distorted_bounding_box``: object covered >= 0.1, aspect ratio
  in [3/4, 4/3], area in [5%, 100%], 100 attempts, the whole image if none
  fits) decoded straight from the JPEG (``decode_and_crop_jpeg``); a resize
  to ``size`` x ``size`` with one of bilinear, nearest, bicubic or area
  chosen at random; a random left-right flip; colour distortion in one of
  TF-slim's four orders of brightness (32/255), saturation [0.5, 1.5], hue
  (0.2) and contrast [0.5, 1.5], clipped to [0, 1].
* evaluation (:func:`eval_batch`): the central 87.5% crop resized
  (bilinear) to ``size``.

Every random draw is a stateless op seeded by ``(seed, epoch, index)``, so
an example's augmentation is a pure function of those three numbers: the
same in any batch, order or process, and after a resume.

Differences from TF-slim, all small: images are returned as uint8 (the
[0, 1] floats rounded to 1/255; the trainer maps them to [-1, 1] as TF-slim
does) so that a quarter of the bytes travel to the device; TF 2's resize
uses half-pixel centres where TF 1's ``resize_images`` did not.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

EVAL_CENTRAL_FRACTION = 0.875
_MIN_OBJECT_COVERED = 0.1
_ASPECT_RATIO_RANGE = (0.75, 1.33)
_AREA_RANGE = (0.05, 1.0)
_MAX_ATTEMPTS = 100


def example_seeds(indices: np.ndarray, *, seed: int, epoch: int
                  ) -> np.ndarray:
  """The ``(N, 2)`` int64 stateless seeds of examples ``indices``.

  ``[seed, epoch * 2**32 + index]``: distinct for every (seed, epoch, index)
  with index < 2**32.
  """
  indices = np.asarray(indices, np.int64)
  return np.stack([np.full_like(indices, int(seed)),
                   int(epoch) * 2**32 + indices], axis=1)


def _tf():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf


def _distort_color(tf, image, ordering, seeds):
  """TF-slim's ``distort_color`` (full mode) in order ``ordering`` (0-3)."""
  def brightness(x):
    return tf.image.stateless_random_brightness(x, 32.0 / 255.0, seeds[0])

  def saturation(x):
    return tf.image.stateless_random_saturation(x, 0.5, 1.5, seeds[1])

  def hue(x):
    return tf.image.stateless_random_hue(x, 0.2, seeds[2])

  def contrast(x):
    return tf.image.stateless_random_contrast(x, 0.5, 1.5, seeds[3])

  orders = ((brightness, saturation, hue, contrast),
            (saturation, brightness, contrast, hue),
            (contrast, hue, brightness, saturation),
            (hue, saturation, contrast, brightness))

  def apply(ops):
    def run():
      x = image
      for op in ops:
        x = op(x)
      return x
    return run

  image = tf.switch_case(ordering, [apply(ops) for ops in orders])
  return tf.clip_by_value(image, 0.0, 1.0)


def _resize(tf, image, size: int, method):
  methods = (tf.image.ResizeMethod.BILINEAR,
             tf.image.ResizeMethod.NEAREST_NEIGHBOR,
             tf.image.ResizeMethod.BICUBIC, tf.image.ResizeMethod.AREA)
  return tf.switch_case(method, [
      functools.partial(tf.image.resize, image, [size, size], method=m)
      for m in methods])


def _to_uint8(tf, image):
  return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0),
                 tf.uint8)


def example_fn(size: int, train: bool, encoded: bool = True):
  """The per-example TF function ``(image, seed) -> uint8 image``.

  ``image`` is JPEG bytes (``encoded``) or a decoded HWC uint8 tensor;
  ``seed`` a ``[2]`` int64 stateless seed (:func:`example_seeds`).
  """
  tf = _tf()

  def one(image, seed):
    seeds = tf.random.experimental.stateless_split(seed, num=8)
    def decode():  # any format tf.io.decode_image reads (PNG, GIF, BMP)
      return tf.io.decode_image(image, channels=3, expand_animations=False)

    if encoded:
      is_jpeg = tf.io.is_jpeg(image)
      shape = tf.cond(is_jpeg, lambda: tf.image.extract_jpeg_shape(image),
                      lambda: tf.shape(decode()))
    else:
      shape = tf.shape(image)
    if train:
      begin, crop, _ = tf.image.stateless_sample_distorted_bounding_box(
          shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
          seed=seeds[4], min_object_covered=_MIN_OBJECT_COVERED,
          aspect_ratio_range=_ASPECT_RATIO_RANGE, area_range=_AREA_RANGE,
          max_attempts=_MAX_ATTEMPTS, use_image_if_no_bounding_boxes=True)
      if encoded:
        window = tf.stack([begin[0], begin[1], crop[0], crop[1]])
        pixels = tf.cond(
            is_jpeg,
            lambda: tf.image.decode_and_crop_jpeg(image, window, channels=3),
            lambda: tf.slice(decode(), begin, crop))
      else:
        pixels = tf.slice(image, begin, crop)
      x = tf.image.convert_image_dtype(pixels, tf.float32)
      method = tf.random.stateless_uniform([], seeds[5], 0, 4, tf.int32)
      x = _resize(tf, x, size, method)
      x = tf.image.stateless_random_flip_left_right(x, seeds[6])
      ordering = tf.random.stateless_uniform([], seeds[7], 0, 4, tf.int32)
      x = _distort_color(tf, x, ordering, seeds)
    else:
      pixels = decode() if encoded else image
      x = tf.image.convert_image_dtype(pixels, tf.float32)
      x = tf.image.central_crop(x, EVAL_CENTRAL_FRACTION)
      x = tf.image.resize(x, [size, size], method="bilinear")
    return _to_uint8(tf, x)

  return one


@functools.cache
def _compiled(size: int, train: bool, encoded: bool):
  """The batch function for one image size, mode and input kind."""
  tf = _tf()
  one = example_fn(size, train, encoded)
  if not encoded:  # one decoded image at a time (tfds mock data)
    return tf.function(one, input_signature=[
        tf.TensorSpec([None, None, 3], tf.uint8),
        tf.TensorSpec([2], tf.int64)])

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string),
                                tf.TensorSpec([None, 2], tf.int64)])
  def batch(images, seeds):
    return tf.map_fn(lambda args: one(*args), (images, seeds),
                     fn_output_signature=tf.TensorSpec([size, size, 3],
                                                       tf.uint8),
                     parallel_iterations=32)

  return batch


def _run(images: Sequence[Any], seeds: np.ndarray, size: int,
         train: bool) -> np.ndarray:
  if not len(images):
    return np.zeros((0, size, size, 3), np.uint8)
  tf = _tf()
  if isinstance(images[0], (bytes, np.bytes_)):
    fn = _compiled(size, train, True)
    return fn(tf.constant(list(images), tf.string),
              tf.constant(seeds, tf.int64)).numpy()
  # Decoded arrays (e.g. tfds mock data), possibly of several sizes.
  fn = _compiled(size, train, False)
  out = []
  for image, seed in zip(images, seeds):
    image = np.asarray(image, np.uint8)
    if image.ndim == 2:
      image = image[..., None]
    if image.shape[-1] == 1:
      image = np.repeat(image, 3, axis=-1)
    out.append(fn(tf.constant(image), tf.constant(seed, tf.int64)).numpy())
  return np.stack(out)


def train_batch(images: Sequence[Any], indices: np.ndarray, *, size: int,
                seed: int, epoch: int) -> np.ndarray:
  """TF-slim training preprocessing of a batch: ``(N, size, size, 3)`` uint8.

  Args:
    images: JPEG bytes (or decoded HWC uint8 arrays), one per example.
    indices: each example's index in its split (part of its seed).
    size: output side (299 for Inception V3).
    seed, epoch: the run's augmentation seed and the 0-based epoch.
  """
  return _run(images, example_seeds(indices, seed=seed, epoch=epoch), size,
              train=True)


def eval_batch(images: Sequence[Any], *, size: int) -> np.ndarray:
  """TF-slim evaluation preprocessing: the central 87.5%, resized."""
  seeds = np.zeros((len(images), 2), np.int64)
  return _run(images, seeds, size, train=False)

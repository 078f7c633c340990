"""The Gaussian randomization of Section 2.1.

Every training image is replaced by Gaussian noise whose mean and variance
match those of the original image data set (``"global"``: over all pixel
values; ``"per_channel"``: per colour channel, as many reimplementations
do). The test images stay clean.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rethink_jax.corruption import draws
from rethink_jax.corruption import registry
from rethink_jax.data.dataset import ArrayDataset

STATISTICS = ("global", "per_channel")
"""How the ``gaussian`` randomization matches the data set's mean and variance.

``"global"``: one mean and one variance over all pixel values of the data set
(the most literal reading of "matching mean and variance to the original image
dataset"). ``"per_channel"``: one mean and variance per colour channel, as in
most third-party reimplementations (Section 2.1 lists this as uncertain).
"""


def check_statistics(statistics: str) -> str:
  if statistics not in STATISTICS:
    raise ValueError(f"unknown statistics {statistics!r}; choose one of "
                     f"{STATISTICS} ('global': one mean and variance for the "
                     f"whole data set; 'per_channel': one per colour channel).")
  return statistics



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
  check_statistics(statistics)
  images = draws.check_images(images)
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
    rows = draws.CHUNK * math.prod(images.shape[1:3])
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
    if statistics is not None and check_statistics(
        statistics) != stats.statistics:
      raise ValueError(
          f"statistics={statistics!r} conflicts with the given PixelStats, "
          f"which are {stats.statistics!r}; drop the argument or recompute "
          f"the stats with pixel_stats(images, {statistics!r}).")
    if indices is None:
      raise ValueError(
          "indices are required with a PixelStats: pass the positions of the "
          "examples to make, e.g. np.arange(num_examples).")
    idx = draws.as_indices(indices, None, "Gaussian images")
  else:
    stats = pixel_stats(images_or_stats, statistics or "global")
    idx = draws.as_indices(indices, None if indices is not None else
                      np.shape(images_or_stats)[0], "images")
  key = draws.as_key(key)
  # Global statistics are broadcast to one value per channel, so that both
  # kinds share one compiled function (the values are the same).
  channels = stats.image_shape[-1]
  mean = jnp.broadcast_to(jnp.asarray(stats.mean, jnp.float32), (channels,))
  std = jnp.broadcast_to(jnp.asarray(stats.std, jnp.float32), (channels,))
  out = np.empty((idx.shape[0],) + stats.image_shape, np.float32)
  draws.map_chunks(
      lambda chunk: _gaussian_draws(key, chunk, mean, std, stats.image_shape),
      idx, (out,))
  return out



def _gaussian(train: ArrayDataset, test: ArrayDataset,
              context: registry.Context):
  stats = pixel_stats(train.images, context.statistics or "global")
  images = gaussian_images(draws.randomization_key(context.seed, "gaussian"),
                           stats, indices=context.train_indices)
  return train.replace(images=images), test, {"stats": stats}


registry.register(registry.Randomization(
    "gaussian", "each training image replaced by Gaussian noise matching the "
    "data set's pixel mean and variance", images=_gaussian,
    takes_statistics=True))

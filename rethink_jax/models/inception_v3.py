"""Inception V3 (Szegedy et al., 2016) for the ImageNet runs (Appendix B).

The standard architecture as in TF-slim's ``nets/inception_v3.py`` and Keras'
``keras.applications.InceptionV3``: a stem of seven conv layers and two
max-pools, the mixed blocks 5b-5d (35x35), 6a, 6b-6e (17x17), 7a and 7b-7c
(8x8), a global average pool, dropout and a fully connected classifier. Every
conv has no bias and is followed by BatchNorm with a learned shift but no
scale (TF-slim ``scale=False``, Keras ``scale=False``) and ReLU.

With ``num_classes=1000`` and no auxiliary head the ``params`` collection has
23,817,352 entries, equal to Keras' trainable parameter count for
``InceptionV3(weights=None, classes=1000)`` (its total of 23,851,784 adds the
34,432 BatchNorm moving statistics, here in ``batch_stats``).

Module names are TF-slim's scopes (``Conv2d_1a_3x3`` ... ``Mixed_7c``).
BatchNorm uses TF-slim's ``inception_v3_arg_scope`` constants, decay 0.9997
and epsilon 1e-3 (the paper reused the TensorFlow reference Inception
pipeline, Appendix B [M]); Keras uses momentum 0.99. With decay 0.9997
the running averages need about 10k steps to forget their initial values, so
short runs should lower ``bn_momentum``. Pooling inside the mixed blocks is
TF-style: average pools do not count padding. Weights use Flax's default
initializers (the paper does not state them). The network accepts any input
of at least 75x75; 299x299 is the reference size.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from rethink_jax.models import pooling
from rethink_jax.models import registry

MIN_INPUT_SIZE = 75
DEFAULT_INPUT_SIZE = 299

# Keras' ``InceptionV3(weights=None, classes=1000).summary()``: trainable and
# non-trainable (BatchNorm moving mean and variance) parameter counts. A
# reference for tests, not a measurement of this module.
KERAS_TRAINABLE_PARAMS = 23_817_352
KERAS_NON_TRAINABLE_PARAMS = 34_432


class ConvBN(nn.Module):
  """Conv without bias -> BatchNorm (shift, no scale) -> ReLU.

  Attributes:
    features: Number of filters.
    kernel_size: (height, width) of the kernel.
    strides: Stride in both spatial directions.
    padding: "SAME" or "VALID".
    bn_momentum: Decay of BatchNorm's running averages.
    bn_epsilon: BatchNorm's variance epsilon.
    dtype: Computation dtype; parameters stay float32.
  """

  features: int
  kernel_size: tuple[int, int]
  strides: int = 1
  padding: str = "SAME"
  bn_momentum: float = 0.9997
  bn_epsilon: float = 1e-3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Applies conv, BatchNorm and ReLU to an NHWC batch."""
    x = nn.Conv(self.features, self.kernel_size,
                strides=(self.strides, self.strides), padding=self.padding,
                use_bias=False, dtype=self.dtype, name="conv")(x)
    x = nn.BatchNorm(use_running_average=not train, use_scale=False,
                     use_bias=True, momentum=self.bn_momentum,
                     epsilon=self.bn_epsilon, dtype=self.dtype, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
  """3x3 stride-1 SAME average pool that ignores padding, as TF does."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding="SAME",
                     count_include_pad=False)


def _max_pool_3x3_stride2(x: jax.Array) -> jax.Array:
  """3x3 stride-2 VALID max-pool of the stem and the grid reductions."""
  return pooling.max_pool(x, (3, 3), (2, 2), "VALID")


class Mixed35x35(nn.Module):
  """Blocks Mixed_5b, 5c, 5d (Keras mixed0-2): 64 + 64 + 96 + pool_features.

  Attributes:
    pool_features: Filters of the 1x1 conv after the average pool (32 or 64).
    conv: ConvBN constructor with the BatchNorm constants bound.
  """

  pool_features: int
  conv: Callable[..., nn.Module]

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Four-branch block that keeps the 35x35 grid."""
    conv = self.conv
    b0 = conv(64, (1, 1), name="Branch_0_Conv2d_0a_1x1")(x, train)
    b1 = conv(48, (1, 1), name="Branch_1_Conv2d_0a_1x1")(x, train)
    b1 = conv(64, (5, 5), name="Branch_1_Conv2d_0b_5x5")(b1, train)
    b2 = conv(64, (1, 1), name="Branch_2_Conv2d_0a_1x1")(x, train)
    b2 = conv(96, (3, 3), name="Branch_2_Conv2d_0b_3x3")(b2, train)
    b2 = conv(96, (3, 3), name="Branch_2_Conv2d_0c_3x3")(b2, train)
    b3 = conv(self.pool_features, (1, 1),
              name="Branch_3_Conv2d_0b_1x1")(_avg_pool_3x3(x), train)
    return jnp.concatenate([b0, b1, b2, b3], axis=-1)


class Reduction35to17(nn.Module):
  """Block Mixed_6a (Keras mixed3): grid 35 -> 17, 288 -> 768 channels.

  Attributes:
    conv: ConvBN constructor with the BatchNorm constants bound.
  """

  conv: Callable[..., nn.Module]

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Stride-2 conv branches beside a stride-2 max-pool."""
    conv = self.conv
    # TF-slim names this 3x3 conv "Conv2d_1a_1x1"; we keep its scope names.
    b0 = conv(384, (3, 3), strides=2, padding="VALID",
              name="Branch_0_Conv2d_1a_1x1")(x, train)
    b1 = conv(64, (1, 1), name="Branch_1_Conv2d_0a_1x1")(x, train)
    b1 = conv(96, (3, 3), name="Branch_1_Conv2d_0b_3x3")(b1, train)
    b1 = conv(96, (3, 3), strides=2, padding="VALID",
              name="Branch_1_Conv2d_1a_1x1")(b1, train)
    b2 = _max_pool_3x3_stride2(x).astype(b0.dtype)
    return jnp.concatenate([b0, b1, b2], axis=-1)


class Mixed17x17(nn.Module):
  """Blocks Mixed_6b-6e (Keras mixed4-7): factorized 7x7 convolutions.

  Attributes:
    channels_7x7: Width of the 1x7 / 7x1 branches (128, 160, 160, 192).
    conv: ConvBN constructor with the BatchNorm constants bound.
  """

  channels_7x7: int
  conv: Callable[..., nn.Module]

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Four-branch block of 4 x 192 = 768 channels on the 17x17 grid."""
    conv, c = self.conv, self.channels_7x7
    b0 = conv(192, (1, 1), name="Branch_0_Conv2d_0a_1x1")(x, train)
    b1 = conv(c, (1, 1), name="Branch_1_Conv2d_0a_1x1")(x, train)
    b1 = conv(c, (1, 7), name="Branch_1_Conv2d_0b_1x7")(b1, train)
    b1 = conv(192, (7, 1), name="Branch_1_Conv2d_0c_7x1")(b1, train)
    b2 = conv(c, (1, 1), name="Branch_2_Conv2d_0a_1x1")(x, train)
    b2 = conv(c, (7, 1), name="Branch_2_Conv2d_0b_7x1")(b2, train)
    b2 = conv(c, (1, 7), name="Branch_2_Conv2d_0c_1x7")(b2, train)
    b2 = conv(c, (7, 1), name="Branch_2_Conv2d_0d_7x1")(b2, train)
    b2 = conv(192, (1, 7), name="Branch_2_Conv2d_0e_1x7")(b2, train)
    b3 = conv(192, (1, 1),
              name="Branch_3_Conv2d_0b_1x1")(_avg_pool_3x3(x), train)
    return jnp.concatenate([b0, b1, b2, b3], axis=-1)


class Reduction17to8(nn.Module):
  """Block Mixed_7a (Keras mixed8): grid 17 -> 8, 768 -> 1280 channels.

  Attributes:
    conv: ConvBN constructor with the BatchNorm constants bound.
  """

  conv: Callable[..., nn.Module]

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Stride-2 conv branches beside a stride-2 max-pool."""
    conv = self.conv
    b0 = conv(192, (1, 1), name="Branch_0_Conv2d_0a_1x1")(x, train)
    b0 = conv(320, (3, 3), strides=2, padding="VALID",
              name="Branch_0_Conv2d_1a_3x3")(b0, train)
    b1 = conv(192, (1, 1), name="Branch_1_Conv2d_0a_1x1")(x, train)
    b1 = conv(192, (1, 7), name="Branch_1_Conv2d_0b_1x7")(b1, train)
    b1 = conv(192, (7, 1), name="Branch_1_Conv2d_0c_7x1")(b1, train)
    b1 = conv(192, (3, 3), strides=2, padding="VALID",
              name="Branch_1_Conv2d_1a_3x3")(b1, train)
    b2 = _max_pool_3x3_stride2(x).astype(b0.dtype)
    return jnp.concatenate([b0, b1, b2], axis=-1)


class Mixed8x8(nn.Module):
  """Blocks Mixed_7b, 7c (Keras mixed9, mixed10): 2048 channels.

  Attributes:
    conv: ConvBN constructor with the BatchNorm constants bound.
  """

  conv: Callable[..., nn.Module]

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """320 + 768 + 768 + 192 channels with expanded 1x3 / 3x1 branches."""
    conv = self.conv
    b0 = conv(320, (1, 1), name="Branch_0_Conv2d_0a_1x1")(x, train)
    b1 = conv(384, (1, 1), name="Branch_1_Conv2d_0a_1x1")(x, train)
    b1 = jnp.concatenate([
        conv(384, (1, 3), name="Branch_1_Conv2d_0b_1x3")(b1, train),
        conv(384, (3, 1), name="Branch_1_Conv2d_0b_3x1")(b1, train),
    ], axis=-1)
    b2 = conv(448, (1, 1), name="Branch_2_Conv2d_0a_1x1")(x, train)
    b2 = conv(384, (3, 3), name="Branch_2_Conv2d_0b_3x3")(b2, train)
    b2 = jnp.concatenate([
        conv(384, (1, 3), name="Branch_2_Conv2d_0c_1x3")(b2, train),
        conv(384, (3, 1), name="Branch_2_Conv2d_0d_3x1")(b2, train),
    ], axis=-1)
    b3 = conv(192, (1, 1),
              name="Branch_3_Conv2d_0b_1x1")(_avg_pool_3x3(x), train)
    return jnp.concatenate([b0, b1, b2, b3], axis=-1)


class AuxLogits(nn.Module):
  """TF-slim's auxiliary classifier on Mixed_6e.

  5x5 stride-3 VALID average pool, 1x1 conv of 128, a conv of 768 whose
  kernel covers the pooled map (5x5 at 299x299), and a linear 1x1 layer
  (here a Dense on the flattened map). As in TF-slim's
  ``_reduced_kernel_size_for_small_input``, windows shrink to the feature map
  on small inputs, so the head's parameter count depends on the input size
  below 299x299.

  Attributes:
    num_classes: Number of output classes.
    conv: ConvBN constructor with the BatchNorm constants bound.
    dtype: Computation dtype of the final Dense.
  """

  num_classes: int
  conv: Callable[..., nn.Module]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Maps the Mixed_6e features to auxiliary logits ``(N, num_classes)``."""
    window = (min(5, x.shape[1]), min(5, x.shape[2]))
    x = nn.avg_pool(x, window, strides=(3, 3), padding="VALID")
    x = self.conv(128, (1, 1), name="Conv2d_1b_1x1")(x, train)
    x = self.conv(768, (min(5, x.shape[1]), min(5, x.shape[2])),
                  padding="VALID", name="Conv2d_2a_5x5")(x, train)
    x = x.reshape((x.shape[0], -1))
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    name="Conv2d_2b_1x1")(x)


class InceptionV3(nn.Module):
  """Inception V3 (Szegedy et al., 2016; Appendix B, Table 2).

  Attributes:
    num_classes: Size of the classifier (1000 for ImageNet).
    dropout_rate: Dropout on the pooled 2048 features before the classifier
      (TF-slim ``dropout_keep_prob=0.8``); the paper's only dropout (Table 2
      toggles it). Uses the ``dropout`` rng in train mode.
    aux_logits: Add TF-slim's auxiliary head on Mixed_6e; the call then
      returns ``(logits, aux_logits)``.
    bn_momentum: Decay of BatchNorm's running averages (TF-slim 0.9997).
    bn_epsilon: BatchNorm's variance epsilon (TF-slim and Keras 1e-3).
    dtype: Computation dtype; parameters stay float32.
  """

  num_classes: int = 1000
  dropout_rate: float = 0.2
  aux_logits: bool = False
  bn_momentum: float = 0.9997
  bn_epsilon: float = 1e-3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False
               ) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Maps an NHWC batch (at least 75x75) to logits ``(N, num_classes)``.

    Args:
      x: Float input, scaled to [-1, 1] by the reference pipeline.
      train: Batch statistics and dropout if True, running averages if False.

    Returns:
      The logits, or ``(logits, aux_logits)`` when ``aux_logits`` is set.
    """
    if x.shape[1] < MIN_INPUT_SIZE or x.shape[2] < MIN_INPUT_SIZE:
      raise ValueError(f"Inception V3 needs inputs of at least "
                       f"{MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}, got "
                       f"{x.shape[1]}x{x.shape[2]}.")
    conv = functools.partial(ConvBN, bn_momentum=self.bn_momentum,
                             bn_epsilon=self.bn_epsilon, dtype=self.dtype)
    # Stem: 299 -> 149 -> 147 -> 147 -> 73 -> 73 -> 71 -> 35.
    x = conv(32, (3, 3), strides=2, padding="VALID",
             name="Conv2d_1a_3x3")(x, train)
    x = conv(32, (3, 3), padding="VALID", name="Conv2d_2a_3x3")(x, train)
    x = conv(64, (3, 3), name="Conv2d_2b_3x3")(x, train)
    x = _max_pool_3x3_stride2(x)
    x = conv(80, (1, 1), padding="VALID", name="Conv2d_3b_1x1")(x, train)
    x = conv(192, (3, 3), padding="VALID", name="Conv2d_4a_3x3")(x, train)
    x = _max_pool_3x3_stride2(x)
    x = Mixed35x35(32, conv, name="Mixed_5b")(x, train)
    x = Mixed35x35(64, conv, name="Mixed_5c")(x, train)
    x = Mixed35x35(64, conv, name="Mixed_5d")(x, train)
    x = Reduction35to17(conv, name="Mixed_6a")(x, train)
    for name, channels in (("Mixed_6b", 128), ("Mixed_6c", 160),
                           ("Mixed_6d", 160), ("Mixed_6e", 192)):
      x = Mixed17x17(channels, conv, name=name)(x, train)
    aux = None
    if self.aux_logits:
      aux = AuxLogits(self.num_classes, conv, dtype=self.dtype,
                      name="AuxLogits")(x, train).astype(jnp.float32)
    x = Reduction17to8(conv, name="Mixed_7a")(x, train)
    x = Mixed8x8(conv, name="Mixed_7b")(x, train)
    x = Mixed8x8(conv, name="Mixed_7c")(x, train)
    x = jnp.mean(x, axis=(1, 2))
    if self.dropout_rate > 0.0:
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = nn.Dense(self.num_classes, dtype=self.dtype,
                 name="Logits")(x).astype(jnp.float32)
    if self.aux_logits:
      assert aux is not None
      return x, aux
    return x


# The paper gives no ImageNet learning rate; Szegedy et al. (2016)'s initial
# rate (rethink_jax.config.inception_v3_config decays it 0.94 per 2 epochs).
LEARNING_RATE = 0.045

registry.register(registry.ModelSpec(
    name="inception_v3", factory=InceptionV3, learning_rate=LEARNING_RATE,
    batch_norm=True, description="Inception V3 for ImageNet (Table 2)",
    aux_head=True))

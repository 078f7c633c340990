"""The small AlexNet of Table 1 (Appendix A).

Two blocks of conv 5x5 (64 filters, SAME) + ReLU -> max-pool 3x3 stride 2
(SAME) -> local response normalization, then fully connected 384 and 192 ReLU
layers and a linear output. This is the TensorFlow CIFAR-10 tutorial model
(``cifar10.py``) on 28x28 inputs, with the paper's conv -> pool -> LRN order in
both blocks; it has exactly 1,387,786 parameters (Table 1). The LRN constants
are the tutorial's (depth_radius=4, bias=1.0, alpha=0.001/9, beta=0.75); the
paper does not state them. No BatchNorm: LRN has no parameters and no state.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rethink_jax import paper
from rethink_jax.models import pooling
from rethink_jax.models import registry

LRN_DEPTH_RADIUS = 4
LRN_BIAS = 1.0
LRN_ALPHA = 0.001 / 9.0
LRN_BETA = 0.75


def local_response_normalization(x: jax.Array,
                                 depth_radius: int = LRN_DEPTH_RADIUS,
                                 bias: float = LRN_BIAS,
                                 alpha: float = LRN_ALPHA,
                                 beta: float = LRN_BETA) -> jax.Array:
  """TensorFlow's ``tf.nn.local_response_normalization`` over the last axis.

  ``out[..., d] = x[..., d] / (bias + alpha * sum_{|d' - d| <= r} x[..., d']**2)
  ** beta``, where the window of ``2r + 1`` channels is truncated at the edges
  (Appendix A). Computed in float32 whatever the input dtype.

  Args:
    x: Activations whose last axis is the channel axis.
    depth_radius: Half-width ``r`` of the channel window.
    bias: Additive constant (TF's ``bias``).
    alpha: Scale of the squared sum (TF does not divide it by the window size).
    beta: Exponent.

  Returns:
    The normalized activations, in the dtype of ``x``.
  """
  x32 = x.astype(jnp.float32)
  window = (1,) * (x.ndim - 1) + (2 * depth_radius + 1,)
  padding = ((0, 0),) * (x.ndim - 1) + ((depth_radius, depth_radius),)
  square_sum = jax.lax.reduce_window(x32 * x32, 0.0, jax.lax.add, window,
                                     (1,) * x.ndim, padding)
  return (x32 / (bias + alpha * square_sum) ** beta).astype(x.dtype)


class AlexNet(nn.Module):
  """Small AlexNet for 28x28x3 CIFAR-10 crops (Appendix A).

  Attributes:
    num_classes: Size of the linear output layer.
    conv_features: Filters of both conv layers (64 reproduces Table 1).
    dropout_rate: Dropout after each hidden dense layer. The paper uses none
      on CIFAR-10 (Appendix A); 0.0 creates no dropout at all.
    dtype: Computation dtype; parameters stay float32.
  """

  num_classes: int = 10
  conv_features: int = 64
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Maps an NHWC batch to logits of shape ``(N, num_classes)``."""
    for i in range(2):
      x = nn.Conv(self.conv_features, (5, 5), padding="SAME", dtype=self.dtype,
                  name=f"conv{i + 1}")(x)
      x = nn.relu(x)
      x = pooling.max_pool(x, (3, 3), (2, 2), "SAME")
      x = local_response_normalization(x)
    x = x.reshape((x.shape[0], -1))
    for units, name in ((384, "dense1"), (192, "dense2")):
      x = nn.relu(nn.Dense(units, dtype=self.dtype, name=name)(x))
      if self.dropout_rate > 0.0:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(x)
    return x.astype(jnp.float32)


registry.register(registry.ModelSpec(
    name="alexnet", factory=AlexNet,
    learning_rate=paper.INITIAL_LEARNING_RATE["alexnet"], batch_norm=False,
    # The TF CIFAR-10 tutorial model decays only its two hidden dense layers.
    decayed_layers=("dense1", "dense2"),
    description="Table 1's small AlexNet (the TF CIFAR-10 tutorial model)"))

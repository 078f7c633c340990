"""Multilayer perceptrons of Table 1 (Appendix A).

"MLP 1x512" and "MLP 3x512": the 28x28x3 whitened image flattened to 2352
values, one or three fully connected hidden layers of 512 ReLU units, and a
linear 10-way output. Parameter counts on a 28x28x3 input: 1,209,866 and
1,735,178 (Table 1). No BatchNorm, no dropout unless asked for.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rethink_jax import paper
from rethink_jax.models import registry


class MLP(nn.Module):
  """Fully connected ReLU network on the flattened image (Appendix A).

  Attributes:
    num_classes: Size of the linear output layer.
    hidden_layers: Number of hidden layers (1 or 3 in the paper).
    hidden_units: Width of each hidden layer (512 in the paper).
    dropout_rate: Dropout after each hidden layer. The paper uses none on
      CIFAR-10 (Appendix A); 0.0 creates no dropout at all.
    dtype: Computation dtype; parameters stay float32.
  """

  num_classes: int = 10
  hidden_layers: int = 1
  hidden_units: int = 512
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Maps an NHWC batch to logits of shape ``(N, num_classes)``."""
    x = x.reshape((x.shape[0], -1))
    for i in range(self.hidden_layers):
      x = nn.relu(nn.Dense(self.hidden_units, dtype=self.dtype,
                           name=f"hidden{i + 1}")(x))
      if self.dropout_rate > 0.0:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(x)
    return x.astype(jnp.float32)


for _layers in (1, 3):
  registry.register(registry.ModelSpec(
      name=f"mlp_{_layers}x512",
      factory=functools.partial(MLP, hidden_layers=_layers),
      learning_rate=paper.INITIAL_LEARNING_RATE[f"mlp_{_layers}x512"],
      batch_norm=False,
      description=f"Table 1's multi-layer perceptron, {_layers} hidden "
                  f"layer(s) of 512 units"))

"""The small Inception of Table 1 and Figure 3 (Appendix A, Figure 3).

Built from three modules (Appendix A, Figure 3):

* conv module: conv -> BatchNorm -> ReLU;
* inception module(C1, C3): a 1x1 conv module with C1 filters and a 3x3 conv
  module with C3 filters side by side, concatenated along channels;
* downsample module(C3): a 3x3 stride-2 conv module with C3 filters beside a
  3x3 stride-2 max-pool, concatenated.

SAME padding everywhere, so a 28x28 input goes 28 -> 14 -> 7 and the final
mean pool covers the 7x7 map. Each conv module has one learned offset per
filter, which gives Table 1's 1,649,402 parameters for both the network and
its "w/o BatchNorm" variant. With BatchNorm it is BN's shift (beta) and the
conv has no bias, the TF-slim form (``batch_norm(scale=False)``): a bias
before BN would be cancelled by BN's mean subtraction and never learn.
Without BatchNorm the offset is the conv's bias.

Initialization is not in the paper either: Flax's LeCun normal by default;
``kernel_init="he_normal"`` (He et al. 2015, variance 2 / fan-in) for the
convolutions keeps the signal's scale through the ReLUs, which a network
without BatchNorm needs: under LeCun normal the BatchNorm-free network's
initial logits are ~25x smaller than under He normal.

BatchNorm constants are not in the paper. We use momentum 0.99 (the decay of
the running averages; Keras' default) and epsilon 1e-3 (TF-slim's and Keras'
default). TF-slim's decay of 0.999 is unconfirmed for the paper and makes the
running statistics lag the weights for several thousand steps, which matters
for runs of only ~20k steps at learning rate 0.1; both are attributes.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from rethink_jax import paper
from rethink_jax.models import pooling
from rethink_jax.models import registry

# Initializers of the convolution kernels (``kernel_init``).
KERNEL_INITS = {"lecun_normal": nn.initializers.lecun_normal(),
                "he_normal": nn.initializers.he_normal()}

# (kind, arguments) for Figure 3's blocks between the first conv module and
# the mean pool; "inception" takes (C1, C3), "downsample" takes (C3,).
FIGURE3_BLOCKS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("inception", (32, 32)),
    ("inception", (32, 48)),
    ("downsample", (80,)),
    ("inception", (112, 48)),
    ("inception", (96, 64)),
    ("inception", (80, 80)),
    ("inception", (48, 96)),
    ("downsample", (96,)),
    ("inception", (176, 160)),
    ("inception", (176, 160)),
)


class ConvModule(nn.Module):
  """Figure 3's conv module: conv -> BatchNorm (learned shift) -> ReLU.

  Without BatchNorm: conv with a bias -> ReLU.

  Attributes:
    features: Number of filters C.
    kernel_size: Side k of the square kernel.
    strides: Stride s.
    batch_norm: Whether the BatchNorm layer is present ("w/o BatchNorm" in
      Table 1 sets this to False).
    bn_momentum: Decay of BatchNorm's running averages.
    bn_epsilon: BatchNorm's variance epsilon.
    kernel_init: A key of :data:`KERNEL_INITS`.
    dtype: Computation dtype; parameters stay float32.
  """

  features: int
  kernel_size: int
  strides: int = 1
  batch_norm: bool = True
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  kernel_init: str = "lecun_normal"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Applies conv, BatchNorm (if enabled) and ReLU to an NHWC batch."""
    k, s = self.kernel_size, self.strides
    x = nn.Conv(self.features, (k, k), strides=(s, s), padding="SAME",
                use_bias=not self.batch_norm, dtype=self.dtype,
                kernel_init=KERNEL_INITS[self.kernel_init], name="conv")(x)
    if self.batch_norm:
      x = nn.BatchNorm(use_running_average=not train, use_scale=False,
                       use_bias=True, momentum=self.bn_momentum,
                       epsilon=self.bn_epsilon, dtype=self.dtype,
                       name="bn")(x)
    return nn.relu(x)


class InceptionModule(nn.Module):
  """Figure 3's inception module: 1x1 and 3x3 conv modules, concatenated.

  Attributes:
    c1: Filters of the 1x1 branch.
    c3: Filters of the 3x3 branch.
    conv: ConvModule constructor with the BatchNorm switch and constants bound.
  """

  c1: int
  c3: int
  conv: Callable[..., nn.Module]

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Returns the ``C1 + C3`` channel concatenation of both branches."""
    branch1 = self.conv(self.c1, 1, name="branch1x1")(x, train)
    branch3 = self.conv(self.c3, 3, name="branch3x3")(x, train)
    return jnp.concatenate([branch1, branch3], axis=-1)


class DownsampleModule(nn.Module):
  """Figure 3's downsample module: 3x3/2 conv module beside a 3x3/2 max-pool.

  Attributes:
    c3: Filters of the conv branch.
    conv: ConvModule constructor with the BatchNorm switch and constants bound.
  """

  c3: int
  conv: Callable[..., nn.Module]

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Halves the spatial size (SAME padding); ``C3 + C_in`` channels out."""
    conv = self.conv(self.c3, 3, strides=2, name="branch3x3")(x, train)
    pool = pooling.max_pool(x, (3, 3), (2, 2), "SAME")
    return jnp.concatenate([conv, pool.astype(conv.dtype)], axis=-1)


class SmallInception(nn.Module):
  """Small Inception for 28x28x3 CIFAR-10 crops (Figure 3, Appendix A, Figure 3).

  Submodules are named in Figure 3's order: ``conv1``, ``block1`` ...
  ``block10`` (see ``FIGURE3_BLOCKS``) and ``logits``.

  Attributes:
    num_classes: Size of the final fully connected layer.
    batch_norm: False gives Table 1's "Inception w/o BatchNorm".
    dropout_rate: Dropout on the pooled features. The paper uses none on
      CIFAR-10 (Appendix A); 0.0 creates no dropout at all.
    bn_momentum: Decay of BatchNorm's running averages (see module docstring).
    bn_epsilon: BatchNorm's variance epsilon.
    kernel_init: The convolutions' initializer, a key of
      :data:`KERNEL_INITS` (the classifier keeps LeCun normal).
    blocks: The block table; Figure 3 by default.
    dtype: Computation dtype; parameters stay float32.
  """

  num_classes: int = 10
  batch_norm: bool = True
  dropout_rate: float = 0.0
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  kernel_init: str = "lecun_normal"
  blocks: Sequence[tuple[str, tuple[int, ...]]] = FIGURE3_BLOCKS
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Maps an NHWC batch to logits of shape ``(N, num_classes)``."""
    conv = functools.partial(ConvModule, batch_norm=self.batch_norm,
                             bn_momentum=self.bn_momentum,
                             bn_epsilon=self.bn_epsilon,
                             kernel_init=self.kernel_init, dtype=self.dtype)
    x = conv(96, 3, name="conv1")(x, train)
    for i, (kind, args) in enumerate(self.blocks):
      name = f"block{i + 1}"
      if kind == "inception":
        c1, c3 = args
        x = InceptionModule(c1, c3, conv=conv, name=name)(x, train)
      elif kind == "downsample":
        (c3,) = args
        x = DownsampleModule(c3, conv=conv, name=name)(x, train)
      else:
        raise ValueError(f"unknown Figure 3 block kind {kind!r}.")
    x = jnp.mean(x, axis=(1, 2))
    if self.dropout_rate > 0.0:
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(x)
    return x.astype(jnp.float32)


for _name, _batch_norm in (("inception", True), ("inception_no_bn", False)):
  registry.register(registry.ModelSpec(
      name=_name, factory=functools.partial(SmallInception,
                                            batch_norm=_batch_norm),
      learning_rate=paper.INITIAL_LEARNING_RATE[_name],
      batch_norm=_batch_norm, kernel_inits=tuple(KERNEL_INITS),
      description="Table 1's small Inception (Figure 3)" +
                  ("" if _batch_norm else " without BatchNorm")))

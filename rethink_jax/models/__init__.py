"""The paper's models, created by name (Appendix A, Figure 3-2.5, Table 1).

Models are looked up in one registry (:mod:`rethink_jax.models.registry`):
each module of this package registers its own, with its default learning
rate, and :func:`register` adds a user's.

CIFAR-10 (28x28x3 whitened crops): ``mlp_1x512``, ``mlp_3x512``, ``alexnet``,
``inception`` and ``inception_no_bn``; ImageNet: ``inception_v3``. Every
module is called as ``model.apply(variables, x, train=...)`` on a float32 NHWC
batch and returns logits. BatchNorm models keep running statistics in the
``batch_stats`` collection (pass ``mutable=["batch_stats"]`` in train mode);
dropout, where enabled, draws from the ``dropout`` rng.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# Importing a model module registers its models (registry.register): the
# paper's in Table 1's order, then every other module of this package, so a
# new model is one new module.
from rethink_jax.models import registry
from rethink_jax.models.mlp import MLP
from rethink_jax.models.alexnet import AlexNet, local_response_normalization
from rethink_jax.models.inception import SmallInception
from rethink_jax.models.inception_v3 import InceptionV3
from rethink_jax.models.registry import ModelSpec, names, register, spec

for _module in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_module.name}")

MODEL_NAMES: tuple[str, ...] = names()
"""The models this package defines (``names()`` adds those registered since)."""

WEIGHT_DECAY_SCOPES = ("model", "all_kernels")


def create(name: str, num_classes: int = 10, **kwargs: Any) -> nn.Module:
  """Builds the registered model called ``name`` (Table 1 / Table 2).

  Example::

    import jax
    from rethink_jax import models
    model = models.create("alexnet", num_classes=10)
    variables = models.init(model, jax.random.key(0), (28, 28, 3))
    models.count_params(variables)  # 1,387,786 (Table 1)

  Args:
    name: a registered name (:func:`names`).
    num_classes: Number of output logits (10 for CIFAR-10, 1000 for ImageNet).
    **kwargs: Further attributes of the module, e.g. ``dropout_rate``,
      ``dtype``, ``aux_logits`` (Inception V3), ``bn_momentum``.

  Returns:
    An unbound Flax Linen module.

  Raises:
    ValueError: if ``name`` is not a registered model.
  """
  return spec(name).factory(num_classes=num_classes, **kwargs)


def uses_batch_norm(name: str) -> bool:
  """Whether the named model has BatchNorm (and so a ``batch_stats`` state)."""
  return spec(name).batch_norm


def init(model: nn.Module, key: jax.Array,
         input_shape: Sequence[int]) -> dict[str, Any]:
  """Initial variables of ``model`` for inputs of shape ``(H, W, C)``.

  Runs ``model.init`` in eval mode on a float32 zero batch of one example, so
  no dropout rng is needed. Wrap in ``jax.eval_shape`` for shapes only.

  Args:
    model: A module from :func:`create`.
    key: PRNG key for the ``params`` initializers.
    input_shape: Shape of one example, e.g. ``(28, 28, 3)``.

  Returns:
    The variables dict: ``params`` and, for BatchNorm models, ``batch_stats``.
  """
  x = jnp.zeros((1, *input_shape), jnp.float32)
  return dict(model.init({"params": key}, x, train=False))


def weight_decay_mask(name: str, scope: str = "model"
                      ) -> Callable[[Any], Any]:
  """Which parameters an l2 penalty acts on, as an optax mask function.

  Args:
    name: a registered model name.
    scope: ``"model"``: the model's reference regularizer
      (``ModelSpec.decayed_layers``; AlexNet: the kernels of its two hidden
      dense layers, as in the TF CIFAR-10 tutorial; every other model: all
      conv and dense kernels, TF-slim's ``weights_regularizer``);
      ``"all_kernels"``: all conv and dense kernels.
      Biases and BatchNorm shifts are never decayed.

  Returns:
    A function from a params tree to a tree of booleans.
  """
  model = spec(name)
  if scope not in WEIGHT_DECAY_SCOPES:
    raise ValueError(f"unknown weight decay scope {scope!r}; use one of "
                     f"{WEIGHT_DECAY_SCOPES}.")
  layers = model.decayed_layers if scope == "model" else None

  def mask(params):
    def decayed(path, leaf):
      top = getattr(path[0], "key", None)
      return leaf.ndim > 1 and (layers is None or top in layers)
    return jax.tree_util.tree_map_with_path(decayed, params)

  return mask


def count_params(params: Any) -> int:
  """Total number of entries in a pytree of parameter arrays (or shapes).

  Pass ``variables["params"]``; a full variables dict is reduced to its
  ``params`` collection so that BatchNorm statistics are never counted.
  """
  if isinstance(params, dict) and "params" in params:
    params = params["params"]
  leaves = jax.tree_util.tree_leaves(params)
  return sum(math.prod(leaf.shape) for leaf in leaves)


__all__ = [
    "MODEL_NAMES",
    "WEIGHT_DECAY_SCOPES",
    "AlexNet",
    "InceptionV3",
    "MLP",
    "ModelSpec",
    "SmallInception",
    "count_params",
    "create",
    "init",
    "local_response_normalization",
    "names",
    "register",
    "registry",
    "spec",
    "uses_batch_norm",
    "weight_decay_mask",
]

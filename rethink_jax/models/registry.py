"""The one registry of models: name -> how to build it and train it.

Every model module of this package registers its models when it is
imported (``rethink_jax.models`` imports them all), so adding a model is one
module with a :func:`register` call, and its test. A user's own model is
registered the same way from their code::

  from rethink_jax import models

  models.register(models.ModelSpec(
      name="my_cnn", factory=MyCNN, learning_rate=0.05, batch_norm=False,
      description="a 2-layer CNN"))
  # now config.model = "my_cnn" trains it (rethink_jax.train).

The config validation, the trainer (learning rate, weight decay mask,
BatchNorm state) and the experiment suite all read this registry.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import flax.linen as nn

from rethink_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A registered model.

  Attributes:
    name: the name configs use (``config.model``).
    factory: ``factory(num_classes=..., dropout_rate=..., dtype=...)`` (and
      ``bn_momentum=`` for BatchNorm models when the config sets it) -> an
      unbound Flax module; ``module.apply(variables, x, train=...)`` maps a
      float32 NHWC batch to float32 logits. The trainer passes
      ``config.dropout_rate`` and ``config.compute_dtype``.
    learning_rate: its default initial learning rate (Appendix A for the
      paper's models), used when ``config.learning_rate`` is None; None
      makes the config give one.
    batch_norm: whether it keeps BatchNorm statistics (``batch_stats``).
    decayed_layers: the top-level layers whose kernels the model's own
      weight decay acts on; None for every conv and dense kernel.
    description: one line for listings and errors.
    aux_head: the factory takes ``aux_logits=True`` and the module then
      returns ``(logits, aux_logits)`` (``config.aux_loss_weight``).
    kernel_inits: the initializers ``config.kernel_init`` may name; the
      factory takes ``kernel_init=`` if there is more than Flax's default.
  """

  name: str
  factory: Callable[..., nn.Module]
  learning_rate: float | None
  batch_norm: bool
  decayed_layers: tuple[str, ...] | None = None
  description: str = ""
  aux_head: bool = False
  kernel_inits: tuple[str, ...] = ("lecun_normal",)


REGISTRY: Registry[ModelSpec] = Registry(
    "model", "or register your own with rethink_jax.models.register")


def register(spec: ModelSpec) -> ModelSpec:
  """Adds a model; a name can be registered once (ValueError otherwise)."""
  if not isinstance(spec, ModelSpec):
    raise TypeError(f"register takes a ModelSpec; got {type(spec).__name__}.")
  return REGISTRY.register(spec.name, spec)


names = REGISTRY.names
spec = REGISTRY.get

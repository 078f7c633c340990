"""The train state, the optimizer and the learning-rate schedule (Section 3).

The paper trains with SGD, momentum 0.9, an initial learning rate of 0.1
(Inception) or 0.01 (AlexNet, MLPs) multiplied by 0.95 per epoch
(Appendix A). Weight decay, when on, is an l2 penalty on the weights that
reaches the optimizer as ``optax.add_decayed_weights`` before the SGD step.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from rethink_jax import models


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training, and nothing else.

  Attributes:
    step: number of SGD steps taken (int32 scalar); also the index of the
      per-step PRNG key (``fold_in(step_key, step)``).
    params: the model's ``params`` collection.
    batch_stats: BatchNorm running statistics (an empty dict for models
      without BatchNorm).
    opt_state: the optax state (momentum buffers and schedule count).
  """

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def learning_rate_schedule(initial: Any, decay_factor: float,
                           steps_per_epoch: int,
                           staircase: bool = True,
                           decay_epochs: int = 1) -> optax.Schedule:
  """The exponential decay of Section 3 as a function of the step.

  Args:
    initial: learning rate of the first epoch.
    decay_factor: factor applied every ``decay_epochs`` epochs (0.95 every
      epoch in the paper, 0.94 every 2 for Inception V3).
    steps_per_epoch: SGD steps in one epoch.
    staircase: True gives ``initial * decay_factor ** floor(step / (
      decay_epochs * steps_per_epoch))``, constant in between; False the
      continuous ``initial * decay_factor ** (step / (decay_epochs *
      steps_per_epoch))``.
    decay_epochs: epochs between two decays.

  Returns:
    An optax schedule.
  """
  return optax.exponential_decay(init_value=initial,
                                 transition_steps=decay_epochs *
                                 steps_per_epoch,
                                 decay_rate=decay_factor, staircase=staircase)


def _kernel_mask(params: Any) -> Any:
  """True for conv and dense kernels, False for biases (and 1-D leaves)."""
  return jax.tree_util.tree_map(lambda p: p.ndim > 1, params)


# TF's RMSProp as the Inception V3 reference uses it (Szegedy et al. 2016;
# tf.compat.v1.train.RMSPropOptimizer): epsilon inside the square root,
# mean square initialized to 1, momentum applied after the learning rate.
RMSPROP_DECAY = 0.9
RMSPROP_EPSILON = 1.0
RMSPROP_INITIAL_SCALE = 1.0


def optimizer(schedule: optax.Schedule, momentum: float,
              weight_decay: Any,
              mask: Callable[[Any], Any] | None = None,
              kind: str = "sgd") -> optax.GradientTransformation:
  """SGD (or RMSProp) with momentum and an optional l2 penalty on the weights.

  ``weight_decay`` is the coefficient lambda of ``lambda / 2 * ||w||^2``
  summed over the parameters ``mask`` selects (default: the conv and dense
  kernels, not biases, as in TF-slim's ``weights_regularizer``; see
  :func:`rethink_jax.models.weight_decay_mask`). Its gradient ``lambda * w``
  is added to the loss gradient before the momentum SGD step, so the
  learning rate scales it as it scales the loss gradient (Section 3,
  "weight decay"; TF's ``wd * l2_loss(w)`` is the same penalty).

  Args:
    schedule: the learning rate as a function of the step.
    momentum: SGD momentum (0.9 in the paper).
    weight_decay: lambda; a Python 0 leaves the penalty out of the chain
      entirely. It may be a traced array (one value per run of a multi-run
      program, :mod:`rethink_jax.training.multi_run`), as may the
      schedule's initial value.
    mask: params tree -> tree of booleans, the decayed parameters.
    kind: ``"sgd"`` (the paper) or ``"rmsprop"`` (TF's RMSProp with
      :data:`RMSPROP_DECAY`, :data:`RMSPROP_EPSILON`, the mean square
      starting at :data:`RMSPROP_INITIAL_SCALE`, and ``momentum``).

  Returns:
    An optax gradient transformation.
  """
  if kind == "sgd":
    step = optax.sgd(schedule, momentum=momentum)
  elif kind == "rmsprop":
    step = optax.rmsprop(schedule, decay=RMSPROP_DECAY, eps=RMSPROP_EPSILON,
                         initial_scale=RMSPROP_INITIAL_SCALE,
                         eps_in_sqrt=True, momentum=momentum)
  else:
    raise ValueError(f"unknown optimizer {kind!r}; use 'sgd' or 'rmsprop'.")
  if isinstance(weight_decay, (int, float)) and weight_decay == 0.0:
    return step
  return optax.chain(
      optax.add_decayed_weights(weight_decay, mask or _kernel_mask), step)


def create(model: nn.Module, tx: optax.GradientTransformation,
           key: jax.Array, input_shape: tuple[int, ...]) -> TrainState:
  """Initial train state: fresh parameters, zero step and zero momentum.

  Args:
    model: a module from :func:`rethink_jax.models.create`.
    tx: the optimizer.
    key: PRNG key of the parameter initializers.
    input_shape: shape ``(H, W, C)`` of one preprocessed example.

  Returns:
    The initial :class:`TrainState`.
  """
  variables = models.init(model, key, input_shape)
  params = variables["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get("batch_stats", {}),
                    opt_state=tx.init(params))


def initialize(model: nn.Module, tx: optax.GradientTransformation,
               key: jax.Array, input_shape: tuple[int, ...],
               sharding: jax.sharding.Sharding) -> TrainState:
  """:func:`create`, compiled once and placed with ``sharding`` (replicated).

  On CPU the initializer is compiled with ``xla_backend_optimization_level=0``:
  XLA's CPU backend spends about a second optimizing the random-number code
  of every distinct kernel shape (18 s for the small Inception), while the
  unoptimized program still runs once in well under a second. The values
  match the optimized program's up to the last bit of a few percent of them
  (fresh and resumed runs both use this function); other backends use the
  default options.
  """
  fn = jax.jit(functools.partial(create, model, tx, input_shape=input_shape),
               out_shardings=sharding)
  options: dict[str, Any] | None = ({"xla_backend_optimization_level": 0}
             if jax.default_backend() == "cpu" else None)
  return fn.lower(key).compile(compiler_options=options)(key)

"""Compiled training and evaluation steps (paper Section 3 protocol).

Everything here is a pure function of the train state, the data and PRNG
keys, built once per run and compiled with ``jax.jit`` over a one-axis
``("data",)`` device mesh: batches are split over the devices
(``NamedSharding(mesh, P("data"))``), the state is replicated, and XLA
inserts the gradient all-reduce (the data-parallel form of ``pmap``).

Small data sets live on the device; :func:`resident_epoch` takes the epoch's
permutation ``jax.random.permutation(fold_in(shuffle_key, epoch), N)``,
gathers, crops and whitens each batch on the device and runs many SGD steps
inside one ``lax.scan``, so the host only dispatches. The key of step ``t``
is ``fold_in(step_key, t)``, so a resumed run draws the same keys as an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, cast

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from rethink_jax.training.train_state import TrainState

# (key, uint8 or float images on the 0..255 scale) -> float32 model input.
TrainPreprocess = Callable[[jax.Array, jax.Array], jax.Array]
EvalPreprocess = Callable[[jax.Array], jax.Array]
Sums = dict[str, jax.Array]


def running_sums() -> Sums:
  """Zeroed running training metrics of an epoch.

  ``first_nonfinite_step`` is -1 until a step's loss is NaN or infinite and
  then the step index of the first such loss.
  """
  return dict(loss=jnp.zeros((), jnp.float32),
              correct=jnp.zeros((), jnp.int32),
              examples=jnp.zeros((), jnp.int32),
              grad_norm=jnp.zeros((), jnp.float32),
              steps=jnp.zeros((), jnp.int32),
              first_nonfinite_step=jnp.full((), -1, jnp.int32))


def _variables(state: TrainState, params: Any) -> dict[str, Any]:
  if state.batch_stats:
    return {"params": params, "batch_stats": state.batch_stats}
  return {"params": params}


def cross_entropy(logits: jax.Array, labels: jax.Array,
                  label_smoothing: float = 0.0) -> jax.Array:
  """Per-example softmax cross-entropy, with optional label smoothing.

  Smoothing ``a`` trains towards ``(1 - a) * one_hot + a / K`` (Szegedy et
  al. 2016, TF's ``softmax_cross_entropy(label_smoothing=a)``).
  """
  if label_smoothing == 0.0:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  targets = optax.smooth_labels(
      jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype),
      label_smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def train_step(state: TrainState, sums: Sums, images: jax.Array,
               labels: jax.Array, step_key: jax.Array, *, model: nn.Module,
               tx: optax.GradientTransformation,
               preprocess: TrainPreprocess, label_smoothing: float = 0.0,
               aux_loss_weight: float = 0.0) -> tuple[TrainState, Sums]:
  """One optimizer step on the mean softmax cross-entropy of a batch.

  Args:
    state: the train state before the step.
    sums: running metrics of the epoch (see :func:`running_sums`).
    images: the raw batch (uint8, or float32 for Gaussian inputs).
    labels: int32 labels as trained.
    step_key: the run's step key; this step uses ``fold_in(step_key,
      state.step)``, split into augmentation and dropout keys.
    model: the Flax module.
    tx: the optimizer.
    preprocess: the training input pipeline.
    label_smoothing: see :func:`cross_entropy`.
    aux_loss_weight: weight of the auxiliary head's loss; > 0 needs a model
      that returns ``(logits, aux_logits)`` in training.

  Returns:
    The new state and the updated running sums (of the main head's loss).
  """
  # Shapes and dtypes at the boundary; checked once, when jit traces.
  chex.assert_rank(images, 4)
  chex.assert_rank(labels, 1)
  chex.assert_type(labels, jnp.int32)
  chex.assert_equal_shape_prefix([images, labels], 1)
  augment_key, dropout_key = jax.random.split(
      jax.random.fold_in(step_key, state.step))
  x = preprocess(augment_key, images)
  has_batch_stats = bool(state.batch_stats)

  def loss_fn(params):
    if has_batch_stats:
      logits, updates = model.apply(_variables(state, params), x, train=True,
                                    rngs={"dropout": dropout_key},
                                    mutable=["batch_stats"])
      batch_stats = updates["batch_stats"]
    else:
      logits = model.apply(_variables(state, params), x, train=True,
                           rngs={"dropout": dropout_key})
      batch_stats = state.batch_stats
    aux_loss = 0.0
    if isinstance(logits, tuple):
      logits, aux_logits = logits
      aux_loss = cross_entropy(aux_logits, labels, label_smoothing).mean()
    loss = cross_entropy(logits, labels, label_smoothing).mean()
    return loss + aux_loss_weight * aux_loss, (loss, logits, batch_stats)

  (_, (loss, logits, batch_stats)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  new_state = dataclasses.replace(state, step=state.step + 1, params=params,
                            batch_stats=batch_stats, opt_state=opt_state)
  bad = ~jnp.isfinite(loss) & (sums["first_nonfinite_step"] < 0)
  new_sums = dict(
      loss=sums["loss"] + loss,
      correct=sums["correct"] + jnp.sum(jnp.argmax(logits, -1) == labels),
      examples=sums["examples"] + labels.shape[0],
      grad_norm=sums["grad_norm"] + optax.tree.norm(grads),
      steps=sums["steps"] + 1,
      first_nonfinite_step=jnp.where(bad, state.step,
                                     sums["first_nonfinite_step"]))
  return new_state, new_sums


def epoch_order(shuffle_key: jax.Array, epoch: jax.Array, *,
                num_examples: int) -> jax.Array:
  """The order of an epoch: ``permutation(fold_in(shuffle_key, epoch), N)``.

  Computed once per epoch (a sort of N keys) and shared by all the epoch's
  calls, for device-resident and streamed data alike.
  """
  return jax.random.permutation(jax.random.fold_in(shuffle_key, epoch),
                                num_examples)


def resident_epoch(state: TrainState, sums: Sums, images: jax.Array,
                   labels: jax.Array, order: jax.Array, step_key: jax.Array,
                   first_batch: jax.Array, *, num_steps: int, batch_size: int,
                   batch_sharding: jax.sharding.Sharding,
                   step: Callable[..., tuple[TrainState, Sums]]
                   ) -> tuple[TrainState, Sums]:
  """``num_steps`` SGD steps on a device-resident data set, in one scan.

  Runs batches ``first_batch .. first_batch + num_steps - 1`` of the epoch
  order (:func:`epoch_order`); the ``N mod batch_size`` examples at the end
  of the order are not used in that epoch (drop remainder).

  Args:
    state: the train state.
    sums: running metrics of the epoch.
    images: the whole training set on the device (replicated).
    labels: its labels as trained.
    order: the epoch's permutation of the examples.
    step_key: the run's per-step key (see :func:`train_step`).
    first_batch: index within the epoch of the first batch of this call.
    num_steps: static number of steps of this call.
    batch_size: global batch size.
    batch_sharding: ``NamedSharding(mesh, P("data"))``.
    step: :func:`train_step` with its model, optimizer and pipeline bound.

  Returns:
    The new state and running sums.
  """

  def body(carry, i):
    state, sums = carry
    batch = gather_batch(images, labels, order, first_batch + i,
                         batch_size=batch_size, sharding=batch_sharding)
    return step(state, sums, *batch, step_key)

  return scan_steps(body, (state, sums), num_steps)


def gather_batch(images: jax.Array, labels: jax.Array, order: jax.Array,
                 batch: jax.Array, *, batch_size: int,
                 sharding: jax.sharding.Sharding
                 ) -> tuple[jax.Array, jax.Array]:
  """Batch ``batch`` of an epoch order, gathered on the device and split."""
  index = jax.lax.dynamic_slice_in_dim(order, batch * batch_size, batch_size)
  return (jax.lax.with_sharding_constraint(images[index], sharding),
          jax.lax.with_sharding_constraint(labels[index], sharding))


def scan_steps(body: Callable[[Any, jax.Array], Any], carry: Any,
               num_steps: int) -> Any:
  """``carry = body(carry, i)`` for i < num_steps, in one ``lax.scan``.

  One step is no loop at all (see :func:`steps_per_call`).
  """
  if num_steps == 1:
    return body(carry, jnp.zeros((), jnp.int32))
  carry, _ = jax.lax.scan(lambda c, i: (body(c, i), None), carry,
                          jnp.arange(num_steps, dtype=jnp.int32))
  return carry


def steps_per_call(requested: int, steps_per_epoch: int, *,
                   convolutional: bool, backend: str | None = None) -> int:
  """Train steps per compiled call of :func:`resident_epoch`.

  Args:
    requested: ``config.steps_per_call``; 0 asks for a whole epoch per call.
    steps_per_epoch: steps in one epoch.
    convolutional: whether the model has convolutions.
    backend: the JAX backend (default ``jax.default_backend()``).

  Returns:
    ``requested`` if positive (at most an epoch). For 0: a whole epoch, except
    for convolutional models on CPU, which get 1: XLA's CPU backend compiles
    convolution gradients inside a loop body to a generic loop instead of its
    Eigen convolution (measured on 2 cores: one small-Inception step inside a
    ``lax.scan`` took 74 s against 3.6 s as a plain compiled step). With one
    step per call there is no loop, and the host still only dispatches.
  """
  if requested:
    return min(requested, steps_per_epoch)
  if convolutional and (backend or jax.default_backend()) == "cpu":
    return 1
  return steps_per_epoch


def has_convolutions(params: Any) -> bool:
  """Whether a parameter tree holds convolution kernels (4-D leaves)."""
  return any(leaf.ndim == 4 for leaf in jax.tree_util.tree_leaves(params))


def eval_sums() -> Sums:
  """Zeroed evaluation sums (see :func:`eval_batch`)."""
  return dict(loss=jnp.zeros((), jnp.float32),
              correct=jnp.zeros((), jnp.int32),
              top5_correct=jnp.zeros((), jnp.int32),
              true_correct=jnp.zeros((), jnp.int32),
              corrupted=jnp.zeros((), jnp.int32),
              corrupted_correct=jnp.zeros((), jnp.int32),
              examples=jnp.zeros((), jnp.int32))


def eval_batch(state: TrainState, sums: Sums, images: jax.Array,
               labels: jax.Array, true_labels: jax.Array, valid: jax.Array, *,
               model: nn.Module, preprocess: EvalPreprocess,
               per_example: bool = False) -> Any:
  """Adds one evaluation batch to the sums (BatchNorm in inference mode).

  Args:
    state: the train state.
    sums: sums so far (see :func:`eval_sums`).
    images: raw batch.
    labels: labels as trained (the test set's are clean).
    true_labels: the original labels.
    valid: bool mask; False marks padding examples that are not counted.
    model: the Flax module.
    preprocess: the evaluation pipeline (centre crop and whitening).

    per_example: also return each example's outcome.

  Returns:
    The updated sums: loss and correct predictions w.r.t. ``labels``,
    top-5 hits, correct predictions w.r.t. ``true_labels``, the number of
    corrupted examples (``labels != true_labels``) and of those predicted as
    labelled, and the number of examples. With ``per_example``,
    ``(sums, (correct, margin))``: whether each example is predicted as
    labelled, and its margin, the label's logit minus the largest other
    logit (positive when correct).
  """
  chex.assert_rank(images, 4)
  chex.assert_type([labels, true_labels], jnp.int32)
  chex.assert_equal_shape([labels, true_labels, valid])
  chex.assert_equal_shape_prefix([images, labels], 1)
  out = model.apply(_variables(state, state.params), preprocess(images),
                    train=False)
  # A model with an auxiliary head returns (logits, aux_logits); evaluation
  # uses the main head.
  logits = cast(jax.Array, out[0] if isinstance(out, tuple) else out)
  weight = valid.astype(jnp.int32)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  prediction = jnp.argmax(logits, -1)
  hit = (prediction == labels).astype(jnp.int32) * weight
  k = min(5, logits.shape[-1])
  top5 = jnp.any(jax.lax.top_k(logits, k)[1] == labels[:, None], axis=-1)
  corrupted = (labels != true_labels).astype(jnp.int32) * weight
  out_sums = dict(
      loss=sums["loss"] + jnp.sum(jnp.where(valid, loss, 0.0)),
      correct=sums["correct"] + jnp.sum(hit),
      top5_correct=sums["top5_correct"] + jnp.sum(top5 * weight),
      true_correct=sums["true_correct"]
      + jnp.sum((prediction == true_labels) * weight),
      corrupted=sums["corrupted"] + jnp.sum(corrupted),
      corrupted_correct=sums["corrupted_correct"] + jnp.sum(hit * corrupted),
      examples=sums["examples"] + jnp.sum(weight))
  if not per_example:
    return out_sums
  own = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
  others = jnp.where(jax.nn.one_hot(labels, logits.shape[-1], dtype=bool),
                     -jnp.inf, logits)
  return out_sums, (prediction == labels, own - jnp.max(others, axis=-1))


def resident_eval(state: TrainState, images: jax.Array, labels: jax.Array,
                  true_labels: jax.Array, *, eval_batch_size: int,
                  batch_sharding: jax.sharding.Sharding,
                  evaluate: Callable[..., Any],
                  per_example: bool = False) -> Any:
  """Evaluates a whole device-resident data set in batches, in one scan.

  The last batch is padded by repeating the last example, with the padding
  masked out of every sum.

  Args:
    state: the train state.
    images: the data set on the device.
    labels: labels as trained.
    true_labels: original labels.
    eval_batch_size: examples per batch (divisible by the device count).
    batch_sharding: ``NamedSharding(mesh, P("data"))``.
    evaluate: :func:`eval_batch` with its model and pipeline bound.
    per_example: also return every example's outcome (on the device).

  Returns:
    The evaluation sums over the data set; with ``per_example``,
    ``(sums, (correct, margin))`` with one entry per example, in order.
  """
  n = labels.shape[0]
  num_batches = math.ceil(n / eval_batch_size)

  def body(sums, b):
    index = b * eval_batch_size + jnp.arange(eval_batch_size)
    valid = index < n
    index = jnp.minimum(index, n - 1)

    def take(a):
      return jax.lax.with_sharding_constraint(a[index], batch_sharding)

    valid = jax.lax.with_sharding_constraint(valid, batch_sharding)
    out = evaluate(state, sums, take(images), take(labels),
                   take(true_labels), valid, per_example=per_example)
    return out if per_example else (out, None)

  sums, outcomes = jax.lax.scan(body, eval_sums(),
                                jnp.arange(num_batches, dtype=jnp.int32))
  if not per_example:
    return sums
  return sums, jax.tree.map(lambda a: a.reshape(-1)[:n], outcomes)


def compile_fns(model: nn.Module, tx: optax.GradientTransformation, *,
                train_preprocess: TrainPreprocess,
                eval_preprocess: EvalPreprocess, batch_size: int,
                eval_batch_size: int,
                mesh: jax.sharding.Mesh, label_smoothing: float = 0.0,
                aux_loss_weight: float = 0.0
                ) -> dict[str, Callable[..., Any]]:
  """The jit-compiled functions of a run, with donated train state.

  Args:
    model: the Flax module.
    tx: the optimizer.
    train_preprocess: training pipeline.
    eval_preprocess: evaluation pipeline.
    batch_size: global training batch size.
    eval_batch_size: global evaluation batch size.
    mesh: the one-axis ``("data",)`` device mesh.
    label_smoothing, aux_loss_weight: the training loss (:func:`train_step`).

  Returns:
    A dict of jitted functions: ``epoch_order``, ``train_step`` (one step
    on a host-fed sharded batch), ``resident_epoch`` (steps on a
    device-resident data set, ``num_steps`` static), ``eval_batch``,
    ``resident_eval`` and ``resident_eval_examples`` (also every example's
    outcome, :func:`resident_eval`). The train
    state (first argument) of the training functions is donated; every
    output is replicated.
  """
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  batch_sharding = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec("data"))
  step = functools.partial(train_step, model=model, tx=tx,
                           preprocess=train_preprocess,
                           label_smoothing=label_smoothing,
                           aux_loss_weight=aux_loss_weight)
  evaluate = functools.partial(eval_batch, model=model,
                               preprocess=eval_preprocess)
  epoch = functools.partial(resident_epoch, batch_size=batch_size,
                            batch_sharding=batch_sharding, step=step)
  full_eval = functools.partial(resident_eval, eval_batch_size=eval_batch_size,
                                batch_sharding=batch_sharding,
                                evaluate=evaluate)
  return dict(
      train_step=jax.jit(step, donate_argnums=(0,), out_shardings=replicated),
      epoch_order=jax.jit(epoch_order, static_argnames=("num_examples",),
                          out_shardings=replicated),
      resident_epoch=jax.jit(epoch, static_argnames=("num_steps",),
                             donate_argnums=(0,), out_shardings=replicated),
      eval_batch=jax.jit(evaluate, out_shardings=replicated),
      resident_eval=jax.jit(full_eval, out_shardings=replicated),
      resident_eval_examples=jax.jit(
          functools.partial(full_eval, per_example=True),
          out_shardings=replicated),
  )

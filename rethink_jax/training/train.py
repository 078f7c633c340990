"""Training and evaluation with the paper's protocol (Section 3).

:func:`train_and_evaluate` trains one model on one (possibly randomized,
Section 2.1) data set with SGD, momentum 0.9 and a learning rate decayed by
0.95 per epoch (Appendix A), evaluates the training set (labels as
trained, corrupted and clean subsets, true labels) and the clean test set
after every epoch, and writes ``metrics.jsonl``, Orbax checkpoints and
``summary.json`` to its workdir. Running it again on the same workdir
resumes from the latest checkpoint and ends bit-identical to an
uninterrupted run.

Every epoch writes one absl INFO line (epoch, loss, accuracies, learning
rate, images/s, ETA) and a TensorBoard event file beside ``metrics.jsonl``.

Command line (:mod:`rethink_jax.cli`)::

  python -m rethink_jax.train --config=experiments/configs/mlp_1x512.py \\
      --workdir=/tmp/mlp --config.num_epochs=3

(or ``rethink-jax train ...``). Multi-process runs: see
:func:`initialize_distributed` and :mod:`rethink_jax.cli`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import sys
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from rethink_jax.training import checkpoint
from rethink_jax.training import config as config_lib
from rethink_jax.training import example_log
from rethink_jax.training import inputs
from rethink_jax.training import metrics
from rethink_jax import models
from rethink_jax import results
from rethink_jax.data import preprocessing
from rethink_jax.training import steps
from rethink_jax.training import train_state
from rethink_jax.training import workdir as workdir_lib
from rethink_jax.data.dataset import ArrayDataset, DataError

P = jax.sharding.PartitionSpec


SUMMARY_NAME = "summary.json"


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or infinite; the bad state was not saved."""


def data_mesh() -> jax.sharding.Mesh:
  """The one-axis ``("data",)`` mesh over every device of every process.

  The axis is ``Auto``, so XLA propagates the batch sharding through the
  model and inserts the gradient all-reduce itself (big_vision's pattern).
  """
  return jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))


def _pipelines(config: ml_collections.ConfigDict, streamed: bool):
  """Training and evaluation input pipelines (Appendix A / Appendix B)."""
  if streamed:
    return (lambda key, images: preprocessing.inception_scale(images),
            preprocessing.inception_scale)

  def train_pipeline(key, images):
    return preprocessing.cifar_train(key, images,
                                     random_crop_on=config.random_crop,
                                     flip_and_rotate=config.flip_and_rotate)

  return train_pipeline, preprocessing.cifar_eval


def _model(config: ml_collections.ConfigDict, num_classes: int):
  """The model, with the config's dropout rate, dtype and BN momentum."""
  kwargs: dict[str, Any] = {}
  if config.bn_momentum is not None:
    kwargs["bn_momentum"] = config.bn_momentum
  kernel_init = config.kernel_init  # validated against the model's
  if len(models.spec(config.model).kernel_inits) > 1:
    kwargs["kernel_init"] = kernel_init
  if config.aux_loss_weight > 0:
    kwargs["aux_logits"] = True
  try:
    return models.create(config.model, num_classes=num_classes,
                         dropout_rate=config.dropout_rate,
                         dtype=jnp.dtype(config.compute_dtype), **kwargs)
  except TypeError as e:
    raise config_lib.ConfigError(
        f"config.dropout_rate / config.compute_dtype: model {config.model!r} "
        f"does not take them ({e}); leave dropout_rate at 0.") from e


def _check_sizes(config: ml_collections.ConfigDict, train: Any,
                 train_size: int) -> None:
  if train_size < config.batch_size:
    raise config_lib.ConfigError(
        f"config.batch_size: {config.batch_size} is larger than the "
        f"{train_size} training examples, so an epoch would have no step; "
        f"use a batch size of at most {train_size}.")
  if isinstance(train, ArrayDataset) and config.random_crop:
    h, w = train.image_shape[:2]
    if min(h, w) <= preprocessing.CIFAR_CROP:
      raise config_lib.ConfigError(
          f"config.random_crop: the images are {h}x{w}, no larger than the "
          f"{preprocessing.CIFAR_CROP}x{preprocessing.CIFAR_CROP} crop, so a "
          f"random crop would do nothing; set random_crop=False.")


def _check_resume(config: ml_collections.ConfigDict,
                  saved: dict[str, Any], directory: str) -> None:
  current = config.to_dict()
  changed = sorted(k for k in current
                   if k not in config_lib.RESUMABLE_FIELDS
                   and saved.get(k) != current[k])
  if changed:
    diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}"
                      for k in changed)
    raise config_lib.ConfigError(
        f"config fields {changed} differ from the run checkpointed in "
        f"{directory} ({diffs}); use a new workdir, or only change "
        f"{sorted(config_lib.RESUMABLE_FIELDS)} when resuming.")


def _stop_reason(config: ml_collections.ConfigDict,
                 book: dict[str, Any]) -> str | None:
  """Why the run stops after ``book["epoch"]`` epochs, or None to go on."""
  if config.stop_when_fitted and book["steps_to_fit"] is not None:
    return "fitted"
  if config.stop_when_converged and book["steps_to_converge"] is not None:
    return "converged"
  if (config.early_stopping_patience and book["best_epoch"] is not None and
      book["epoch"] - book["best_epoch"] >= config.early_stopping_patience):
    return "early_stopping"
  if book["epoch"] >= config.num_epochs:
    return "num_epochs"
  return None


def train_eval_due(config: ml_collections.ConfigDict, book: dict[str, Any],
                   test_accuracy: float) -> bool:
  """Whether the epoch after ``book["epoch"]``, whose test accuracy is
  ``test_accuracy``, evaluates the training set: every
  ``config.train_eval_every_epochs``-th epoch, and every epoch the run may
  end on, so that a run's last record always has its training metrics."""
  epoch = book["epoch"] + 1
  every = config.per_example_every_epochs
  if epoch % config.train_eval_every_epochs == 0 or (
      epoch >= config.num_epochs) or (every and epoch % every == 0):
    return True
  if not config.early_stopping_patience:
    return False
  best = book["best_test_accuracy"]
  if best is None or test_accuracy > best:
    return False
  return epoch - book["best_epoch"] >= config.early_stopping_patience


def _check_epochs(config: ml_collections.ConfigDict, book: dict[str, Any],
                  directory: str) -> None:
  if book["epoch"] > config.num_epochs:
    raise config_lib.ConfigError(
        f"config.num_epochs: the run checkpointed in {directory} has already "
        f"completed {book['epoch']} epochs, so num_epochs={config.num_epochs} "
        f"cannot be honoured; use num_epochs >= {book['epoch']} (equal "
        f"reports the finished run) or a new workdir.")


def _check_data(book: dict[str, Any], fingerprint: dict[str, Any],
                where: str) -> None:
  changes = inputs.fingerprint_changes(book, fingerprint)
  if changes:
    raise DataError(
        f"the data differ from those of the run in {where} "
        f"({'; '.join(changes)}); a run cannot mix two data sets. Pass the "
        f"same data (and data_seed, subsets and randomization) to resume, or "
        f"use a new workdir.")


def _set_aside_earlier_results(config: ml_collections.ConfigDict,
                               workdir: str, fingerprint: dict[str, Any],
                               writer: bool) -> None:
  """Moves the results of a run with no checkpoint left out of the way.

  A workdir whose checkpoints were deleted (or never written) may still hold
  ``metrics.jsonl`` and ``summary.json``. A run with another config or other
  data is refused; the same run starts over and the earlier files are moved
  to ``earlier/<time>/``, never overwritten.
  """
  names = []
  for name in (metrics.LOG_NAME, SUMMARY_NAME):
    path = os.path.join(workdir, name)
    if os.path.isfile(path) and os.path.getsize(path) > 0:
      names.append(name)
  if not names:
    return
  try:
    with open(os.path.join(workdir, SUMMARY_NAME)) as f:
      earlier = json.load(f)
  except (OSError, ValueError):
    earlier = None
  if isinstance(earlier, dict) and isinstance(earlier.get("config"), dict):
    where = f"{workdir} (its checkpoints are gone, its summary.json remains)"
    _check_resume(config, config_lib.complete(earlier["config"]), where)
    saved = earlier.get("data", {}).get("fingerprint")
    if saved is not None:
      _check_data(saved, fingerprint, where)
  if writer:
    workdir_lib.set_aside(workdir, names, f"{workdir} has results but no "
                          f"checkpoint to resume from, so the run starts over")


def _initial_or_restored(config, model, tx, init_key, input_shape, sharding,
                         checkpoints, fingerprint, writer):
  """A fresh state and bookkeeping, or those of the newest good checkpoint."""
  restored = None
  if checkpoints.all_epochs():
    like = jax.eval_shape(functools.partial(
        train_state.create, model, tx, input_shape=input_shape), init_key)
    restored = checkpoints.restore_latest(like, sharding)
  if restored is None:
    _set_aside_earlier_results(config, checkpoints.workdir, fingerprint,
                               writer)
    state = train_state.initialize(model, tx, init_key, input_shape, sharding)
    book = dict(epoch=0, best_test_accuracy=None, best_epoch=None,
                steps_to_fit=None, fitted_epoch=None,
                steps_to_converge=None, converged_epoch=None, elapsed_s=0.0,
                config=config.to_dict(), data=fingerprint, records=[])
    return state, book
  state, book = restored
  _check_resume(config, config_lib.complete(book["config"]),
                checkpoints.directory)
  _check_epochs(config, book, checkpoints.directory)
  _check_data(book["data"], fingerprint, checkpoints.directory)
  book["config"] = config.to_dict()
  return state, book


def _update_book(config: ml_collections.ConfigDict, book: dict[str, Any],
                 record: dict[str, Any]) -> None:
  """Epoch count, best test accuracy (Figure 2), fit and convergence.

  ``steps_to_fit`` is the step count at the end of the first epoch whose
  evaluation pass reaches ``config.fit_threshold`` training accuracy on the
  labels as trained (Table 1's "fits the training set").
  ``steps_to_converge`` is the step count at the end of the first epoch whose
  evaluation pass has a training loss (labels as trained) of at most
  ``config.converge_loss``: Figure 1b's "time to overfit", which the paper
  does not define. Both are checked at epoch ends only.
  """
  book["epoch"] = record["epoch"]
  if (book["best_test_accuracy"] is None or
      record["test_accuracy"] > book["best_test_accuracy"]):
    book["best_test_accuracy"] = record["test_accuracy"]
    book["best_epoch"] = record["epoch"]
  accuracy = record.get("train_accuracy")  # absent between train evaluations
  if (book["steps_to_fit"] is None and accuracy is not None and
      accuracy >= config.fit_threshold):
    book["steps_to_fit"] = record["step"]
    book["fitted_epoch"] = record["epoch"]
  loss = record.get("train_loss")
  if (book["steps_to_converge"] is None and loss is not None and
      loss <= config.converge_loss):
    book["steps_to_converge"] = record["step"]
    book["converged_epoch"] = record["epoch"]


class _Loop:
  """The compiled functions, data and keys of one run, and its epoch loop."""

  def __init__(self, config, fns, schedule, mesh, train, test, train_ids,
               test_ids, steps_per_epoch, keys, checkpoints):
    self.config = config
    self.fns = fns
    self.schedule = schedule
    self.replicated = jax.sharding.NamedSharding(mesh, P())
    batch_sharding = jax.sharding.NamedSharding(mesh, P("data"))
    self.streamed = inputs.is_streamed(train)
    self.steps_per_epoch = steps_per_epoch
    self.shuffle_key, self.step_key = keys
    self.checkpoints = checkpoints
    self.compile_time = 0.0
    self._compiled = {}
    self.param_norm = jax.jit(optax.tree.norm)
    eval_index = inputs.train_eval_indices(config, train_ids.shape[0])
    if self.streamed:
      self.train_feed = inputs.StreamFeed(train, train_ids, batch_sharding,
                                          config.seed)
      self.test_feed = inputs.StreamFeed(test, test_ids, batch_sharding,
                                         config.seed)
      self.train_eval_index = eval_index
      self.test_index = np.arange(test_ids.shape[0])
    else:
      self.train_data = inputs.to_device(train, train_ids, self.replicated)
      self.test_data = inputs.to_device(test, test_ids, self.replicated)
      self.train_eval_data = (
          self.train_data if eval_index.shape[0] == train_ids.shape[0] else
          inputs.to_device(train, eval_index, self.replicated))
    self.bar = None
    self._reported_steps = 0

  def _put(self, value) -> jax.Array:
    return jax.device_put(value, self.replicated)

  def _compiled_fn(self, name, *args, **static):
    """AOT-compiles a function once per static setting (timed apart)."""
    key = (name, tuple(sorted(static.items())))
    if key not in self._compiled:
      start = time.perf_counter()
      self._compiled[key] = self.fns[name].lower(*args, **static).compile()
      self.compile_time += time.perf_counter() - start
    return self._compiled[key]

  def _check(self, sums, epoch: int) -> None:
    """Reads running sums: raises on a non-finite loss, updates the bar."""
    host = jax.device_get(sums)
    bad_step = int(host["first_nonfinite_step"])
    if bad_step >= 0:
      last = self.checkpoints.latest_epoch()
      # Called between the calls of an epoch, inside its transfer guard.
      with jax.transfer_guard_host_to_device("allow"):
        rate = float(self.schedule(bad_step))
      kept = (f"the last good checkpoint (after epoch {last}) in "
              f"{self.checkpoints.directory} is kept" if last is not None
              else "no checkpoint had been saved yet")
      raise NonFiniteLossError(
          f"training loss became NaN or infinite at step {bad_step} (epoch "
          f"{epoch + 1}, learning rate {rate:.6g});"
          f" the run stopped without saving this state and {kept}. Lower "
          f"config.learning_rate or check the input data.")
    done = int(host["steps"])
    self.bar.update(done - self._reported_steps)
    self._reported_steps = done
    if done:
      self.bar.set_postfix(loss=f"{float(host['loss']) / done:.4f}",
                           epoch=epoch + 1, refresh=False)

  def train_epoch(self, state, epoch: int):
    """Runs one epoch of SGD steps; returns the state and running sums.

    The running sums of a call are read (which waits for it) only after the
    next call has been dispatched, so the device never idles on the host.
    """
    self._reported_steps = 0
    if self.streamed:
      chunk = self.config.steps_per_call or self.steps_per_epoch
      run = self._streamed_steps
    else:
      chunk = steps.steps_per_call(
          self.config.steps_per_call, self.steps_per_epoch,
          convolutional=steps.has_convolutions(state.params))
      run = self._resident_steps
    pending = None
    calls = run(state, self._put(steps.running_sums()), epoch, chunk)
    try:
      for state, sums in calls:  # noqa: B007 (the last state is returned)
        if pending is not None:
          self._check(pending, epoch)
        pending = sums
    finally:
      calls.close()
    self._check(pending, epoch)
    return state, pending

  def _resident_steps(self, state, sums, epoch: int, chunk: int):
    """Yields (state, sums) after each compiled call of ``chunk`` steps."""
    data = self.train_data
    # The data are on the device: the host only dispatches, so an implicit
    # host-to-device copy here would be a bug (explicit puts are allowed).
    with jax.transfer_guard_host_to_device("disallow"):
      order = self.fns["epoch_order"](self.shuffle_key,
                                      self._put(np.int32(epoch)),
                                      num_examples=data.labels.shape[0])
      for first in range(0, self.steps_per_epoch, chunk):
        args = (state, sums, data.images, data.labels, order, self.step_key,
                self._put(np.int32(first)))
        fn = self._compiled_fn("resident_epoch", *args, num_steps=min(
            chunk, self.steps_per_epoch - first))
        state, sums = fn(*args)
        yield state, sums

  def _streamed_steps(self, state, sums, epoch: int, chunk: int):
    """Yields (state, sums) every ``chunk`` host-fed steps and at the end."""
    order = np.asarray(self.fns["epoch_order"](
        self.shuffle_key, self._put(np.int32(epoch)),
        num_examples=self.train_feed.ids.shape[0]))
    batches = self.train_feed.train_batches(
        order, epoch=epoch, num_batches=self.steps_per_epoch,
        batch_size=self.config.batch_size, augment=self.config.random_crop)
    for b, (images, labels) in enumerate(batches):
      args = (state, sums, images, labels, self.step_key)
      state, sums = self._compiled_fn("train_step", *args)(*args)
      if (b + 1) % chunk == 0 or b + 1 == self.steps_per_epoch:
        yield state, sums

  def evaluate(self, state, prefixes=("train", "test"),
               per_example: bool = False) -> tuple[dict[str, Any], Any]:
    """Training-set (labels as trained) and clean test-set metrics, and
    with ``per_example`` the training examples' outcomes (on the device;
    :func:`steps.resident_eval`), else None."""
    result, outcomes = {}, None
    for prefix in prefixes:
      if self.streamed:
        feed = self.train_feed if prefix == "train" else self.test_feed
        index = self.train_eval_index if prefix == "train" else self.test_index
        sums = self._put(steps.eval_sums())
        for batch in feed.eval_batches(index, self.config.eval_batch_size):
          sums = self.fns["eval_batch"](state, sums, *batch)
      elif per_example and prefix == "train":
        sums, outcomes = self.fns["resident_eval_examples"](
            state, self.train_eval_data.images, self.train_eval_data.labels,
            self.train_eval_data.true_labels)
      else:
        data = self.train_eval_data if prefix == "train" else self.test_data
        sums = self.fns["resident_eval"](state, data.images, data.labels,
                                         data.true_labels)
      result.update(metrics.from_eval_sums(jax.device_get(sums), prefix))
    return result, outcomes

  def close(self) -> None:
    if self.streamed:
      self.train_feed.close()
      self.test_feed.close()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       train: ArrayDataset | None = None,
                       test: ArrayDataset | None = None) -> dict[str, Any]:
  """Trains and evaluates one model as in Section 3 of the paper.

  Example::

    from rethink_jax.training import config
    from rethink_jax.training import train
    cfg = config.table1_config("mlp_1x512", "random_labels")
    with cfg.unlocked():
      cfg.num_epochs, cfg.train_examples = 2, 2048
    summary = train.train_and_evaluate(cfg, "/tmp/mlp_random")
    print(summary["final"]["train_accuracy"], summary["stopped"])

  Args:
    config: a config built from :func:`rethink_jax.config.base_config`.
    workdir: where ``metrics.jsonl``, ``checkpoints/`` and ``summary.json``
      go; it holds one run and is locked while the run goes on. If it holds
      checkpoints of the same run (same config and data), training resumes
      from the newest good one.
    train: optional training set replacing ``config.dataset`` (which must
      then be ``"arrays"`` or the data set's own name). It is randomized with
      ``config.randomization`` and ``config.data_seed`` unless it already
      carries a corruption manifest.
    test: the matching test set (with ``train``).

  Returns:
    The summary (also written to ``workdir/summary.json``): the config, the
    data, the corruption manifest, parameter count, devices, the last
    epoch's metrics, ``steps_to_fit``, ``steps_to_converge``, the best test
    accuracy and its epoch,
    why the run stopped, times and library versions.

  Raises:
    config_lib.ConfigError: an invalid config, or one that differs from the
      run already in the workdir in a field that cannot change on resume
      (or asks for fewer epochs than it has done).
    DataError: bad data, or data that differ from the run in the workdir.
    workdir_lib.WorkdirError: the workdir cannot be used, or another
      process is running in it (``WorkdirLockedError``).
    checkpoint.CheckpointError: a checkpoint could not be saved (the last
      good one is kept), or none of the workdir's checkpoints is good.
    NonFiniteLossError: the training loss became NaN or infinite; the
      message names the step and learning rate, and the last good
      checkpoint is kept.

  See docs/reliability.md for what a workdir guarantees.
  """
  start = time.perf_counter()
  if config.distributed:
    initialize_distributed()
  config_lib.validate(config)
  workdir = workdir_lib.prepare(workdir)
  writer = jax.process_index() == 0
  with workdir_lib.Lock(workdir, enabled=writer):
    return _train_and_evaluate(config, workdir, train, test, start=start,
                               writer=writer)


@dataclasses.dataclass
class RunSetup:
  """What one run is made of before training starts: its data and program."""

  config: ml_collections.ConfigDict
  train: Any
  test: Any
  train_ids: np.ndarray
  test_ids: np.ndarray
  fingerprint: dict[str, Any]
  streamed: bool
  train_size: int
  steps_per_epoch: int
  model: Any
  schedule: optax.Schedule
  tx: optax.GradientTransformation
  train_pipeline: Any
  eval_pipeline: Any
  input_shape: tuple[int, ...]
  init_key: jax.Array
  shuffle_key: jax.Array
  step_key: jax.Array


def setup_run(config: ml_collections.ConfigDict, train: Any = None,
              test: Any = None) -> RunSetup:
  """Loads and randomizes a run's data and builds its model and optimizer."""
  train, test, train_ids, test_ids = inputs.load(config, train, test)
  fingerprint = inputs.fingerprint(train, test, train_ids, test_ids)
  streamed = inputs.is_streamed(train)
  train_size = int(train_ids.shape[0])
  _check_sizes(config, train, train_size)
  steps_per_epoch = train_size // config.batch_size  # Drops the remainder.

  model = _model(config, train.num_classes)
  schedule = train_state.learning_rate_schedule(
      config_lib.learning_rate(config), config.lr_decay_factor,
      steps_per_epoch, config.lr_decay_staircase, config.lr_decay_epochs)
  tx = train_state.optimizer(
      schedule, config.momentum, config.weight_decay,
      models.weight_decay_mask(config.model, config.weight_decay_scope),
      kind=config.optimizer)
  train_pipeline, eval_pipeline = _pipelines(config, streamed)
  if streamed:
    input_shape = (config.image_size, config.image_size, 3)
  else:
    input_shape = jax.eval_shape(
        eval_pipeline, jax.ShapeDtypeStruct((1, *train.image_shape),
                                            train.images.dtype)).shape[1:]
  init_key, shuffle_key, step_key = jax.random.split(
      jax.random.key(config.seed), 3)
  return RunSetup(config, train, test, train_ids, test_ids, fingerprint,
                  streamed, train_size, steps_per_epoch, model, schedule, tx,
                  train_pipeline, eval_pipeline, tuple(input_shape), init_key,
                  shuffle_key, step_key)


def open_example_log(config: ml_collections.ConfigDict, workdir: str,
                     s: RunSetup, resume_epoch: int, writer: bool
                     ) -> example_log.ExampleLog | None:
  """The run's per-example records (None when the recorder is off)."""
  if not config.per_example_every_epochs:
    return None
  return example_log.ExampleLog(
      workdir, example_ids=s.train_ids,
      corrupted=np.asarray(s.train.labels) != np.asarray(
          s.train.true_labels), every=config.per_example_every_epochs,
      resume_epoch=resume_epoch, writer=writer)


def record_epoch(config: ml_collections.ConfigDict, book: dict[str, Any],
                 record: dict[str, Any], *, steps_per_epoch: int,
                 train_time: float, eval_time: float,
                 elapsed_s: float) -> dict[str, Any]:
  """Updates the bookkeeping with an epoch's metrics and completes them."""
  _update_book(config, book, record)
  book["elapsed_s"] = elapsed_s
  record.update(
      cumulative_best_test_accuracy=book["best_test_accuracy"],
      steps_to_fit=book["steps_to_fit"],
      steps_to_converge=book["steps_to_converge"],
      images_per_second=steps_per_epoch * config.batch_size / train_time,
      train_time_s=train_time,
      eval_time_s=eval_time,
      wall_time_s=book["elapsed_s"])
  return record


def summarize(s: RunSetup, state: Any, book: dict[str, Any],
              records: list[dict[str, Any]], *, compile_time: float,
              total: float, **extra: Any) -> dict[str, Any]:
  """The run's summary.json (see :func:`train_and_evaluate`)."""
  config = s.config
  return dict(
      config=config.to_dict(),
      learning_rate=config_lib.learning_rate(config),
      data=dict(inputs.describe(s.train, s.test, s.train_ids, s.test_ids),
                image_shape=list(s.input_shape),
                steps_per_epoch=s.steps_per_epoch,
                dropped_per_epoch=s.train_size - s.steps_per_epoch
                * config.batch_size, fingerprint=s.fingerprint),
      corruption=s.train.manifest,
      param_count=models.count_params(state.params),
      devices=dict(count=jax.device_count(),
                   kind=jax.devices()[0].device_kind,
                   platform=jax.devices()[0].platform,
                   processes=jax.process_count()),
      final=records[-1] if records else None,
      epochs_completed=book["epoch"],
      stopped=_stop_reason(config, book),
      steps_to_fit=book["steps_to_fit"],
      fitted_epoch=book["fitted_epoch"],
      steps_to_converge=book["steps_to_converge"],
      converged_epoch=book["converged_epoch"],
      best_test_accuracy=book["best_test_accuracy"],
      best_epoch=book["best_epoch"],
      compile_time_s=compile_time,
      total_time_s=total,
      **extra,
      versions=results.versions(),
      code=results.code())


def _train_and_evaluate(config, workdir, train, test, *, start, writer):
  """train_and_evaluate once the workdir is locked."""
  mesh = data_mesh()
  replicated = jax.sharding.NamedSharding(mesh, P())
  s = setup_run(config, train, test)
  train, test, train_ids, test_ids = s.train, s.test, s.train_ids, s.test_ids
  fingerprint = s.fingerprint
  steps_per_epoch, model, schedule, tx = (s.steps_per_epoch, s.model,
                                          s.schedule, s.tx)
  fns = steps.compile_fns(model, tx, train_preprocess=s.train_pipeline,
                          eval_preprocess=s.eval_pipeline,
                          batch_size=config.batch_size,
                          eval_batch_size=config.eval_batch_size, mesh=mesh,
                          label_smoothing=config.label_smoothing,
                          aux_loss_weight=config.aux_loss_weight)
  input_shape = s.input_shape
  train_size = s.train_size
  init_key, shuffle_key, step_key = s.init_key, s.shuffle_key, s.step_key

  with contextlib.ExitStack() as cleanup:
    checkpoints = checkpoint.Checkpoints(workdir, config.checkpoints_to_keep)
    cleanup.callback(checkpoints.close)
    state, book = _initial_or_restored(config, model, tx, init_key,
                                       input_shape, replicated, checkpoints,
                                       fingerprint, writer)
    elapsed_before = book["elapsed_s"]
    log = metrics.MetricsLog(os.path.join(workdir, metrics.LOG_NAME),
                             book["records"], writer=writer)
    book["records"] = log.records

    loop = _Loop(config, fns, schedule, mesh, train, test, train_ids,
                 test_ids, steps_per_epoch, (shuffle_key, step_key),
                 checkpoints)
    examples = open_example_log(config, workdir, s, book["epoch"], writer)
    cleanup.callback(loop.close)
    loop.bar = metrics.progress_bar(
        config.progress, total=config.num_epochs * steps_per_epoch,
        initial=min(book["epoch"], config.num_epochs) * steps_per_epoch)
    cleanup.callback(loop.bar.close)
    if writer:
      done = f"resuming after epoch {book['epoch']}" if book["epoch"] else (
          "starting")
      logging.info("%s: %s, %d training examples, %d steps per epoch, %d "
                   "%s device(s); %s", workdir, config.model, train_size,
                   steps_per_epoch, jax.device_count(),
                   jax.devices()[0].platform, done)
    loop_start, epochs_here = time.perf_counter(), 0
    while _stop_reason(config, book) is None:
      epoch = book["epoch"]
      epoch_start = time.perf_counter()
      compile_before = loop.compile_time
      state, sums = loop.train_epoch(state, epoch)
      train_time = (time.perf_counter() - epoch_start
                    - (loop.compile_time - compile_before))
      eval_start = time.perf_counter()
      record = dict(epoch=epoch + 1, step=int(state.step),
                    learning_rate=float(schedule(int(state.step) - 1)))
      record.update(metrics.from_running_sums(jax.device_get(sums)))
      record.update(loop.evaluate(state, ("test",))[0])
      outcomes = None
      if train_eval_due(config, book, record["test_accuracy"]):
        train_metrics, outcomes = loop.evaluate(
            state, ("train",), per_example=examples is not None)
        record.update(train_metrics)
      record["param_norm"] = float(loop.param_norm(state.params))
      record_epoch(config, book, record, steps_per_epoch=steps_per_epoch,
                   train_time=train_time,
                   eval_time=time.perf_counter() - eval_start,
                   elapsed_s=elapsed_before + time.perf_counter() - start)
      if outcomes is not None and example_log.due(
          config, book["epoch"], _stop_reason(config, book) is not None):
        examples.record(book["epoch"], *jax.device_get(outcomes))
      log.write(record)
      epochs_here += 1
      if writer:
        remaining = max(config.num_epochs - book["epoch"], 0)
        logging.info("%s", metrics.epoch_line(
            record, config.num_epochs,
            (time.perf_counter() - loop_start) / epochs_here * remaining))
      if (book["epoch"] % config.checkpoint_every_epochs == 0 or
          _stop_reason(config, book) is not None):
        checkpoints.save(book["epoch"], state, metrics.json_safe(book))

  total = elapsed_before + time.perf_counter() - start
  if writer:
    logging.info("%s: stopped (%s) after %d epochs, %s", workdir,
                 _stop_reason(config, book), book["epoch"],
                 metrics.duration(total))
  summary = summarize(s, state, book, log.records,
                      compile_time=loop.compile_time, total=total)
  if writer:
    metrics.write_json(os.path.join(workdir, SUMMARY_NAME), summary)
  return metrics.json_safe(summary)


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Joins a multi-process run (several hosts, or processes on one host).

  Call it, on every process, before any other JAX call. With no arguments,
  ``jax.distributed.initialize`` finds the processes from the cluster
  environment (Cloud TPU metadata, SLURM, Open MPI, Kubernetes); elsewhere
  give the coordinator's ``host:port`` (process 0's host), the number of
  processes and this process's id (0 .. num_processes - 1). The command line
  passes ``--coordinator_address``, ``--num_processes`` and ``--process_id``
  here; ``config.distributed=True`` calls it with no arguments. On CPU the
  processes exchange gradients through Gloo.
  """
  if jax.distributed.is_initialized():
    return
  if jax.config.values["jax_cpu_collectives_implementation"] in (None, "", "none"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes,
                             process_id=process_id)


# Errors whose message says everything a user needs: the command line prints
# the message alone (the traceback with --traceback).
USER_ERRORS = (config_lib.ConfigError, DataError, workdir_lib.WorkdirError,
               checkpoint.CheckpointError, NonFiniteLossError)


if __name__ == "__main__":
  from rethink_jax import cli  # pylint: disable=g-import-not-at-top
  sys.exit(cli.main(["train", *sys.argv[1:]],
                    prog="python -m rethink_jax.train"))

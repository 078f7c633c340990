"""Many runs in one compiled program: seeds and ablations side by side.

:func:`train_and_evaluate_many` trains K independent runs of the Section 3
protocol that share a model, a data set and a step count per epoch, and may
differ in everything that makes an ablation: the seed (initialization,
batch order, augmentation and dropout keys), the data seed, the
randomization of Section 2.1 and its p, the learning rate, the weight
decay coefficient, the number of epochs and the stopping rule. Each step of
the program advances every active run by one SGD step, each on its own
batch; every run keeps its own workdir (lock, ``metrics.jsonl``,
TensorBoard file, Orbax checkpoints, ``summary.json``), so everything
:func:`rethink_jax.train.train_and_evaluate` guarantees for a workdir holds
for each run (docs/reliability.md): kill the process at any moment, run the
same command again, and every run resumes from its own newest checkpoint.

Two ways of laying the runs out in the program (``strategy``):

* ``"vmap"``: the train states are stacked along a leading ``runs`` axis
  and the step is ``jax.vmap``-ped over it, on a two-axis device mesh
  ``("runs", "data")``: runs are split over the devices of the ``runs``
  axis, each run's batch over the ``data`` axis (``vmap(...,
  spmd_axis_name="runs")``). This is what fills an accelerator.
* ``"unroll"``: the program holds one copy of the single-run step per run,
  on the one-axis ``("data",)`` mesh. Every run executes exactly the
  operations it executes alone, so its metrics and parameters are
  bit-identical to a run trained alone (tested). On XLA's CPU backend it
  is also the faster layout: a vmapped convolution is slower there than K
  separate ones (``benchmarks/multi_run.py``).

``"auto"`` picks ``"unroll"`` on CPU and ``"vmap"`` elsewhere. A vmapped run
equals the same run trained alone to float32 rounding (batched matrix
products may sum in another order; ``tests/test_multi_run.py`` states the
tolerance), and its resume is bit-exact as long as the program holds the
same runs, which it does when rerun on the same workdirs.

A run that stops (fitted, converged, early stopping or its epoch count)
leaves the program: the next epoch runs the remaining ones (a program per
number of runs, compiled once), so a finished run costs nothing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import time
from typing import Any, Callable, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from rethink_jax import models
from rethink_jax.training import checkpoint
from rethink_jax.training import config as config_lib
from rethink_jax.training import example_log
from rethink_jax.training import inputs
from rethink_jax.training import metrics
from rethink_jax.training import steps
from rethink_jax.training import train as train_lib
from rethink_jax.training import train_state
from rethink_jax.training import workdir as workdir_lib

P = jax.sharding.PartitionSpec
STRATEGIES = ("auto", "vmap", "unroll")

# Config fields in which the runs of one program may differ. Every other
# field (model, data set and subset sizes, batch size, schedule shape,
# optimizer, regularizer switches, dropout rate, run control) must be equal;
# weight decay may differ in its coefficient but not in being on or off.
PER_RUN_FIELDS = frozenset({
    "seed", "data_seed", "randomization", "corruption_probability",
    "gaussian_statistics", "learning_rate", "weight_decay", "num_epochs",
    "fit_threshold", "stop_when_fitted", "converge_loss",
    "stop_when_converged", "early_stopping_patience",
    "checkpoint_every_epochs", "checkpoints_to_keep",
    "train_eval_every_epochs", "per_example_every_epochs",
})


def program_key(config: ml_collections.ConfigDict) -> str:
  """Configs with equal keys can be trained in one program.

  The key holds every field outside :data:`PER_RUN_FIELDS`, whether weight
  decay is on, and whether the images are float (Gaussian inputs) or uint8.
  """
  fields = {k: v for k, v in config.to_dict().items()
            if k not in PER_RUN_FIELDS}
  fields["weight_decay_on"] = config.weight_decay > 0
  fields["float_images"] = config.randomization == "gaussian"
  return json.dumps(fields, sort_keys=True, default=str)


def check_compatible(configs: Sequence[ml_collections.ConfigDict]) -> None:
  """Raises ConfigError naming the fields that keep configs apart."""
  first = json.loads(program_key(configs[0]))
  for i, config in enumerate(configs[1:], 1):
    other = json.loads(program_key(config))
    differ = sorted(k for k in first if first[k] != other.get(k))
    if differ:
      raise config_lib.ConfigError(
          f"configs 0 and {i} cannot share one program: they differ in "
          f"{differ} ({', '.join(f'{k}: {first[k]!r} vs {other[k]!r}' for k in differ)}); "
          f"runs of one program may differ only in {sorted(PER_RUN_FIELDS)} "
          f"(weight decay: its value, not on vs off). Train them in "
          f"separate programs (rethink_jax.experiments.sweep groups them).")


def resolve_strategy(strategy: str) -> str:
  """``"unroll"`` or ``"vmap"`` for a requested strategy."""
  if strategy not in STRATEGIES:
    raise config_lib.ConfigError(
        f"strategy: unknown {strategy!r}; choose one of {STRATEGIES}.")
  if strategy == "auto":
    return "unroll" if jax.default_backend() == "cpu" else "vmap"
  return strategy


def runs_mesh(num_runs: int) -> jax.sharding.Mesh:
  """The ``("runs", "data")`` mesh for ``num_runs`` vmapped runs.

  The ``runs`` axis takes the largest number of devices that divides both
  the device count and ``num_runs``; the rest split each run's batch.
  """
  return jax.make_mesh(mesh_shape(num_runs, jax.device_count()),
                       ("runs", "data"),
                       axis_types=(jax.sharding.AxisType.Auto,) * 2)


def mesh_shape(num_runs: int, device_count: int) -> tuple[int, int]:
  """``(runs, data)`` axis sizes of :func:`runs_mesh`."""
  runs = math.gcd(num_runs, device_count)
  return runs, device_count // runs


def _hparams(config: ml_collections.ConfigDict) -> dict[str, np.float32]:
  """The per-run hyperparameters that enter the program as values."""
  return dict(learning_rate=np.float32(config_lib.learning_rate(config)),
              weight_decay=np.float32(config.weight_decay))


class _Group:
  """The compiled programs of a set of compatible runs, for any subset."""

  def __init__(self, setups: list[train_lib.RunSetup], strategy: str):
    self.strategy = strategy
    self.base = setups[0]
    self.data_mesh = train_lib.data_mesh()
    self.replicated = jax.sharding.NamedSharding(self.data_mesh, P())
    self.compile_time = 0.0
    self._compiled: dict[Any, Any] = {}
    # Data packed for a set of runs, kept while the set trains (stacking the
    # images of vmapped runs every epoch would copy them every epoch).
    self._packed: dict[Any, tuple[Any, int | None]] = {}
    self._order = jax.jit(steps.epoch_order, static_argnames=("num_examples",),
                          out_shardings=self.replicated)
    self.param_norm = jax.jit(optax.tree.norm)

  # -- the per-run functions, with the run's hyperparameters as values ----

  def _step(self, hparams, state, sums, images, labels, step_key):
    config = self.base.config
    schedule = train_state.learning_rate_schedule(
        hparams["learning_rate"], config.lr_decay_factor,
        self.base.steps_per_epoch, config.lr_decay_staircase,
        config.lr_decay_epochs)
    tx = train_state.optimizer(
        schedule, config.momentum,
        hparams["weight_decay"] if config.weight_decay > 0 else 0.0,
        models.weight_decay_mask(config.model, config.weight_decay_scope),
        kind=config.optimizer)
    return steps.train_step(state, sums, images, labels, step_key,
                            model=self.base.model, tx=tx,
                            preprocess=self.base.train_pipeline,
                            label_smoothing=config.label_smoothing,
                            aux_loss_weight=config.aux_loss_weight)

  def _over_runs(self, fn: Callable[..., Any], args: tuple[Any, ...],
                 axes: tuple[int | None, ...], num_runs: int) -> Any:
    """``fn`` applied to each run's arguments (axis 0: one per run)."""
    if self.strategy == "vmap":
      return jax.vmap(fn, in_axes=axes, spmd_axis_name="runs")(*args)
    return tuple(fn(*(a[r] if ax == 0 else a for a, ax in zip(args, axes)))
                 for r in range(num_runs))

  def _batch_sharding(self, num_runs: int) -> jax.sharding.Sharding:
    mesh = runs_mesh(num_runs) if self.strategy == "vmap" else self.data_mesh
    return jax.sharding.NamedSharding(mesh, P("data"))

  def _epoch_fn(self, hparams, carry, images, labels, orders, keys, first,
                *, num_steps, axes, num_runs):
    config = self.base.config
    sharding = self._batch_sharding(num_runs)
    batch_size = config.batch_size

    if self.strategy == "unroll":
      def one(hp, state_sums, im, lb, order, key, i):
        batch = steps.gather_batch(im, lb, order, first + i,
                                   batch_size=batch_size, sharding=sharding)
        return self._step(hp, *state_sums, *batch, key)

      def body(carry, i):
        return self._over_runs(functools.partial(one, i=i),
                               (hparams, carry, images, labels, orders, keys),
                               (0, 0, *axes, 0, 0), num_runs)
    else:
      # The batches are gathered before the vmapped step: a gather from
      # shared images by a batch of index vectors is a plain gather, where a
      # vmapped one is a general gather that XLA's CPU backend runs slowly.
      split = jax.sharding.NamedSharding(sharding.mesh, P("runs", "data"))

      def take(data, axis, index):
        out = (data[index] if axis is None else
               jnp.take_along_axis(data, index.reshape(
                   index.shape + (1,) * (data.ndim - 2)), axis=1))
        return jax.lax.with_sharding_constraint(out, split)

      def body(carry, i):
        index = jax.lax.dynamic_slice_in_dim(
            orders, (first + i) * batch_size, batch_size, axis=1)
        batch_images = take(images, axes[0], index)
        batch_labels = take(labels, axes[1], index)
        return jax.vmap(lambda hp, c, im, lb, key: self._step(hp, *c, im, lb,
                                                              key),
                        spmd_axis_name="runs")(hparams, carry, batch_images,
                                               batch_labels, keys)

    return steps.scan_steps(body, carry, num_steps)

  def _eval_fn(self, states, images, labels, true_labels, *, axes, num_runs,
               per_example):
    evaluate = functools.partial(steps.eval_batch, model=self.base.model,
                                 preprocess=self.base.eval_pipeline)
    fn = functools.partial(steps.resident_eval,
                           eval_batch_size=self.base.config.eval_batch_size,
                           batch_sharding=self._batch_sharding(num_runs),
                           evaluate=evaluate, per_example=per_example)
    return self._over_runs(fn, (states, images, labels, true_labels),
                           (0, *axes), num_runs)

  def _compiled_fn(self, name, fn, args, **static):
    key = (name, tuple(sorted(static.items())))
    if key not in self._compiled:
      start = time.perf_counter()
      jitted = jax.jit(functools.partial(fn, **static),
                       donate_argnums=(1,) if name == "epoch" else (),
                       out_shardings=self._out_sharding(
                           static["num_runs"]))
      self._compiled[key] = jitted.lower(*args).compile()
      self.compile_time += time.perf_counter() - start
    return self._compiled[key]

  def _out_sharding(self, num_runs: int) -> jax.sharding.Sharding:
    if self.strategy == "vmap":
      return jax.sharding.NamedSharding(runs_mesh(num_runs), P("runs"))
    return self.replicated

  # -- packing per-run values into the program's layout -------------------

  def pack(self, values: list[Any], shareable: bool = False
           ) -> tuple[Any, int | None]:
    """Per-run values as one argument, and its vmap axis (None: shared)."""
    if shareable and all(v is values[0] for v in values):
      return values[0], None
    if self.strategy == "unroll":
      return tuple(values), 0
    key = ("stack", len(values))
    if key not in self._compiled:
      self._compiled[key] = jax.jit(
          lambda *v: jax.tree.map(lambda *x: jnp.stack(x), *v),
          out_shardings=self._out_sharding(len(values)))
    return self._compiled[key](*values), 0

  def unpack(self, packed: Any, num_runs: int) -> list[Any]:
    """The program's per-run outputs as a list (replicated on the mesh)."""
    if self.strategy == "unroll":
      return list(packed)
    if "take" not in self._compiled:
      self._compiled["take"] = jax.jit(
          lambda tree, r: jax.tree.map(lambda x: x[r], tree),
          static_argnums=1, out_shardings=self.replicated)
    return [self._compiled["take"](packed, r) for r in range(num_runs)]

  def pack_data(self, runs: list["_RunState"], role: str, field: str
                ) -> tuple[Any, int | None]:
    """A data field of ``runs`` packed once per set of runs."""
    key = (role, field, tuple(id(r) for r in runs))
    if any(k[2] != key[2] for k in self._packed):
      self._packed.clear()  # A run left the program: pack for the rest.
    if key not in self._packed:
      self._packed[key] = self.pack(
          [getattr(getattr(r, role), field) for r in runs], shareable=True)
    return self._packed[key]

  # -- an epoch and an evaluation of the active runs ----------------------

  def train_epoch(self, runs: list["_RunState"], bar) -> None:
    """One epoch of every run in ``runs`` (each at its own epoch)."""
    k = len(runs)
    config = self.base.config
    spe = self.base.steps_per_epoch
    chunk = steps.steps_per_call(
        config.steps_per_call, spe,
        convolutional=steps.has_convolutions(runs[0].state.params))
    put = functools.partial(jax.device_put, device=self.replicated)
    hparams, _ = self.pack([r.hparams for r in runs])
    images, images_axis = self.pack_data(runs, "data", "images")
    labels, labels_axis = self.pack_data(runs, "data", "labels")
    orders, _ = self.pack([
        self._order(r.setup.shuffle_key, put(np.int32(r.book["epoch"])),
                    num_examples=r.data.labels.shape[0]) for r in runs])
    keys, _ = self.pack([r.setup.step_key for r in runs])
    carry, _ = self.pack([(r.state, put(steps.running_sums()))
                          for r in runs])
    axes = (images_axis, labels_axis)
    for first in range(0, spe, chunk):
      num_steps = min(chunk, spe - first)
      args = (hparams, carry, images, labels, orders, keys,
              put(np.int32(first)))
      fn = self._compiled_fn("epoch", self._epoch_fn, args,
                             num_steps=num_steps, axes=axes, num_runs=k)
      # Waited for so that the bar counts steps done (the carry is donated
      # to the next call, so it cannot be read later); one dispatch gap per
      # call, next to a whole epoch, or a convolutional step on CPU.
      carry = jax.block_until_ready(fn(*args))
      bar.update(num_steps * k)
    for run, (state, sums) in zip(runs, self.unpack(carry, k)):
      run.state, run.sums = state, jax.device_get(sums)

  def evaluate(self, runs: list["_RunState"], prefix: str,
               per_example: bool = False) -> list[tuple[dict[str, Any], Any]]:
    """``prefix`` ("train" or "test") set metrics of every run in ``runs``,
    each with its examples' outcomes when ``per_example`` (else None)."""
    k = len(runs)
    if not k:
      return []
    states, _ = self.pack([r.state for r in runs])
    role = "train_eval_data" if prefix == "train" else "test_data"
    args, axes = [states], []
    for field in ("images", "labels", "true_labels"):
      value, axis = self.pack_data(runs, role, field)
      args.append(value)
      axes.append(axis)
    fn = self._compiled_fn(f"eval_{prefix}", self._eval_fn, tuple(args),
                           axes=tuple(axes), num_runs=k,
                           per_example=per_example)
    out = self.unpack(fn(*args), k)
    if not per_example:
      out = [(sums, None) for sums in out]
    return [(metrics.from_eval_sums(jax.device_get(sums), prefix), outcomes)
            for sums, outcomes in out]


class _RunState:
  """One run of the program: its setup, data, state, log and checkpoints."""

  def __init__(self, setup, workdir, checkpoints, state, book, log, data,
               train_eval_data, test_data, writer):
    self.setup = setup
    self.config = setup.config
    self.workdir = workdir
    self.checkpoints = checkpoints
    self.state = state
    self.book = book
    self.log = log
    self.data = data
    self.train_eval_data = train_eval_data
    self.test_data = test_data
    self.hparams = jax.device_put(_hparams(setup.config), data.images.sharding)
    self.sums: dict[str, Any] = {}
    self.elapsed_before = book["elapsed_s"]
    self.error: str | None = None
    self.examples = train_lib.open_example_log(
        setup.config, workdir, setup, book["epoch"], writer)
    self.outcomes: Any = None  # this epoch's per-example outcomes


def _device_data(setups, group: _Group) -> list[tuple[Any, Any, Any]]:
  """Each run's training, training-evaluation and test data on the device.

  Runs whose arrays are equal (e.g. every label randomization leaves the
  images alone) share one device copy.
  """
  cache: dict[str, Any] = {}

  def put(array: np.ndarray) -> jax.Array:
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(array.tobytes()).hexdigest() + str(array.dtype)
    if digest not in cache:
      cache[digest] = jax.make_array_from_callback(
          array.shape, group.replicated, lambda i: array[i])
    return cache[digest]

  def device(dataset, index) -> inputs.DeviceData:
    return inputs.DeviceData(images=put(dataset.images[index]),
                             labels=put(dataset.labels[index].astype(np.int32)),
                             true_labels=put(
                                 dataset.true_labels[index].astype(np.int32)))

  out = []
  for s in setups:
    train = device(s.train, s.train_ids)
    eval_index = inputs.train_eval_indices(s.config, s.train_ids.shape[0])
    train_eval = (train if eval_index.shape[0] == s.train_ids.shape[0]
                  else device(s.train, eval_index))
    out.append((train, train_eval, device(s.test, s.test_ids)))
  return out


def train_and_evaluate_many(
    configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str], *,
    data: Sequence[tuple[Any, Any]] | None = None, strategy: str = "auto"
) -> list[dict[str, Any]]:
  """Trains K compatible runs in one compiled program (see module doc).

  Example (a 2-seed x 3-p ablation of MLP 1x512 as one program)::

    from rethink_jax import config
    from rethink_jax.training import multi_run
    configs, workdirs = [], []
    for p in (0.0, 0.5, 1.0):
      for seed in (0, 1):
        cfg = config.table1_config("mlp_1x512")
        with cfg.unlocked():
          cfg.randomization = "partially_corrupted_labels"
          cfg.corruption_probability = p
          cfg.seed = cfg.data_seed = seed
          cfg.num_epochs, cfg.train_examples = 20, 10240
        configs.append(cfg)
        workdirs.append(f"/tmp/ablation/p{p}_s{seed}")
    summaries = multi_run.train_and_evaluate_many(configs, workdirs)

  Args:
    configs: one config per run; they must be compatible
      (:func:`program_key`).
    workdirs: one workdir per run (distinct). A workdir that holds
      checkpoints of its run resumes from the newest good one; a finished
      run is reported without training.
    data: optional ``(train, test)`` per run, as ``train=``/``test=`` of
      :func:`rethink_jax.train.train_and_evaluate` (in-memory sets only).
    strategy: ``"auto"``, ``"vmap"`` or ``"unroll"`` (module doc).

  Returns:
    Each run's summary, as :func:`rethink_jax.train.train_and_evaluate`
    returns it, with ``program`` (runs, strategy) added.

  Raises:
    The errors of :func:`rethink_jax.train.train_and_evaluate`, raised
    before any training for a config, data or workdir error;
    NonFiniteLossError after the other runs have finished when a run's loss
    became NaN or infinite (its last good checkpoint is kept).
  """
  start = time.perf_counter()
  if not configs or len(configs) != len(workdirs):
    raise config_lib.ConfigError(
        f"train_and_evaluate_many needs one workdir per config; got "
        f"{len(configs)} configs and {len(workdirs)} workdirs.")
  if data is not None and len(data) != len(configs):
    raise config_lib.ConfigError(
        f"data: one (train, test) pair per config; got {len(data)} for "
        f"{len(configs)} configs.")
  strategy = resolve_strategy(strategy)
  if any(c.distributed for c in configs):
    train_lib.initialize_distributed()
  for config in configs:
    config_lib.validate(config)
  check_compatible(configs)
  paths = [workdir_lib.prepare(w) for w in workdirs]
  if len(set(paths)) != len(paths):
    raise workdir_lib.WorkdirError(
        f"two runs of one program share a workdir ({paths}); give each run "
        f"its own.")
  writer = jax.process_index() == 0
  with contextlib.ExitStack() as locks:
    for path in paths:
      locks.enter_context(workdir_lib.Lock(path, enabled=writer))
    return _train_many(configs, paths, data, strategy, start=start,
                       writer=writer)


def _train_many(configs, paths, data, strategy, *, start, writer):
  """train_and_evaluate_many once every workdir is locked."""
  setups = [train_lib.setup_run(c, *(data[i] if data else (None, None)))
            for i, c in enumerate(configs)]
  for s in setups:
    if s.streamed:
      raise config_lib.ConfigError(
          f"config.dataset: {s.config.dataset!r} is streamed from the host; "
          f"the multi-run program trains in-memory data sets only. Train "
          f"streamed runs one at a time (train_and_evaluate).")
  shapes = {(s.steps_per_epoch, s.input_shape, s.train.num_classes,
             str(s.train.images.dtype)) for s in setups}
  if len(shapes) > 1:
    raise config_lib.ConfigError(
        f"the runs' data differ in (steps per epoch, input shape, classes, "
        f"dtype): {sorted(shapes)}; runs of one program need data of one "
        f"shape.")
  group = _Group(setups, strategy)
  device_data = _device_data(setups, group)

  with contextlib.ExitStack() as cleanup:
    runs = []
    for s, path, (train_data, train_eval, test_data) in zip(
        setups, paths, device_data):
      checkpoints = checkpoint.Checkpoints(path, s.config.checkpoints_to_keep)
      cleanup.callback(checkpoints.close)
      state, book = train_lib._initial_or_restored(  # pylint: disable=protected-access
          s.config, s.model, s.tx, s.init_key, s.input_shape,
          group.replicated, checkpoints, s.fingerprint, writer)
      log = metrics.MetricsLog(os.path.join(path, metrics.LOG_NAME),
                               book["records"], writer=writer)
      book["records"] = log.records
      runs.append(_RunState(s, path, checkpoints, state, book, log,
                            train_data, train_eval, test_data, writer))
    spe = group.base.steps_per_epoch
    bar = metrics.progress_bar(
        group.base.config.progress,
        total=sum(r.config.num_epochs for r in runs) * spe,
        initial=sum(min(r.book["epoch"], r.config.num_epochs)
                    for r in runs) * spe)
    cleanup.callback(bar.close)

    def active():
      return [r for r in runs if r.error is None and
              train_lib._stop_reason(r.config, r.book) is None]  # pylint: disable=protected-access

    if writer:
      logging.info("%d runs of %s in one program (%s, %d %s device(s)), %d "
                   "to train; %d training examples, %d steps per epoch",
                   len(runs), group.base.config.model, strategy,
                   jax.device_count(), jax.devices()[0].platform,
                   len(active()), group.base.train_size, spe)
    most_runs = len(active())
    while todo := active():
      epoch_start = time.perf_counter()
      compile_before = group.compile_time
      group.train_epoch(todo, bar)
      train_time = (time.perf_counter() - epoch_start
                    - (group.compile_time - compile_before))
      eval_start = time.perf_counter()
      evaluations = [m for m, _ in group.evaluate(todo, "test")]
      due = [r for r, e in zip(todo, evaluations) if train_lib.train_eval_due(
          r.config, r.book, e["test_accuracy"])]
      for run in todo:
        run.outcomes = None
      for per_example in (False, True):
        subset = [r for r in due if (r.examples is not None) == per_example]
        for run, (train_metrics, outcomes) in zip(subset, group.evaluate(
            subset, "train", per_example=per_example)):
          evaluations[todo.index(run)].update(train_metrics)
          run.outcomes = outcomes
      for run, evaluation in zip(todo, evaluations):
        evaluation["param_norm"] = float(group.param_norm(run.state.params))
      eval_time = time.perf_counter() - eval_start
      for run, evaluation in zip(todo, evaluations):
        _finish_epoch(run, evaluation, train_time, eval_time, start, writer)

  total = time.perf_counter() - start
  summaries, failed = [], []
  for run in runs:
    if run.error is not None:
      failed.append(run.error)
      summaries.append(None)
      continue
    if writer:
      logging.info("%s: stopped (%s) after %d epochs", run.workdir,
                   train_lib._stop_reason(run.config, run.book),  # pylint: disable=protected-access
                   run.book["epoch"])
    summary = train_lib.summarize(
        run.setup, run.state, run.book, run.log.records,
        compile_time=group.compile_time,
        total=run.elapsed_before + total,
        program=dict(runs=len(runs), trained_together=most_runs,
                     strategy=strategy))
    if writer:
      metrics.write_json(os.path.join(run.workdir, train_lib.SUMMARY_NAME),
                         summary)
    summaries.append(metrics.json_safe(summary))
  if failed:
    raise train_lib.NonFiniteLossError("; ".join(failed))
  return summaries


def _finish_epoch(run: _RunState, evaluation: dict[str, Any],
                  train_time: float, eval_time: float, start: float,
                  writer: bool) -> None:
  """Checks, records, logs and checkpoints one run's finished epoch."""
  epoch = run.book["epoch"]
  bad_step = int(run.sums["first_nonfinite_step"])
  if bad_step >= 0:
    last = run.checkpoints.latest_epoch()
    run.error = (
        f"{run.workdir}: training loss became NaN or infinite at step "
        f"{bad_step} (epoch {epoch + 1}, learning rate "
        f"{float(run.setup.schedule(bad_step)):.6g}); the run stopped "
        f"without saving this state"
        + (f" and its checkpoint after epoch {last} is kept" if last
           is not None else "") + ". Lower its learning_rate or check its "
        "data.")
    logging.error("%s", run.error)
    return
  step = int(run.state.step)
  record = dict(epoch=epoch + 1, step=step,
                learning_rate=float(run.setup.schedule(step - 1)))
  record.update(metrics.from_running_sums(run.sums))
  record.update(evaluation)
  train_lib.record_epoch(
      run.config, run.book, record,
      steps_per_epoch=run.setup.steps_per_epoch, train_time=train_time,
      eval_time=eval_time,
      elapsed_s=run.elapsed_before + time.perf_counter() - start)
  stop = train_lib._stop_reason(run.config, run.book)  # pylint: disable=protected-access
  if run.outcomes is not None and example_log.due(
      run.config, run.book["epoch"], stop is not None):
    run.examples.record(run.book["epoch"], *jax.device_get(run.outcomes))
  run.log.write(record)
  if writer:
    logging.info("%s: %s", run.workdir, metrics.epoch_line(
        record, run.config.num_epochs, None))
  if (run.book["epoch"] % run.config.checkpoint_every_epochs == 0 or
      stop is not None):
    run.checkpoints.save(run.book["epoch"], run.state,
                         metrics.json_safe(run.book))

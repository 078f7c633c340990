r"""Training throughput of the paper's CIFAR-10 models (Section 3 protocol).

Measures, on whatever devices JAX finds, for each model:

* one compiled SGD step (``steps.train_step``) on a batch already on the
  devices: milliseconds per step and images per second, compile excluded,
  after warm-up steps, the median of several timed repeats, each ended by
  ``block_until_ready``;
* a whole epoch of the device-resident path (``steps.resident_epoch``:
  compiled calls that shuffle, gather, crop and whiten on the device, one
  ``lax.scan`` per call) on a synthetic uint8 32x32x3 data set, called as the
  trainer calls it (``steps.steps_per_call``), compile excluded.

Prints one JSON object (and writes it to ``--out``)::

  python benchmarks/train_step.py --models=mlp_1x512,inception \
      --steps=20 --epoch_examples=50000 --out=/tmp/bench.json
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import sys
import time

from absl import flags
import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

import common  # pylint: disable=wrong-import-position

from rethink_jax import cli  # pylint: disable=wrong-import-position
from rethink_jax.training import config as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from rethink_jax.training import inputs  # pylint: disable=wrong-import-position
from rethink_jax import models  # pylint: disable=wrong-import-position
from rethink_jax.data import preprocessing  # pylint: disable=wrong-import-position
from rethink_jax.training import steps  # pylint: disable=wrong-import-position
from rethink_jax.training import train  # pylint: disable=wrong-import-position
from rethink_jax.training import train_state  # pylint: disable=wrong-import-position
from rethink_jax.data.dataset import from_arrays  # pylint: disable=wrong-import-position

_MODELS = flags.DEFINE_list(
    "models", ["mlp_1x512", "mlp_3x512", "alexnet", "inception",
               "inception_no_bn"], "Models to time.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps per repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats (median kept).")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after compiling.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Global batch size.")
_EPOCH_EXAMPLES = flags.DEFINE_integer(
    "epoch_examples", 50_000,
    "Size of the synthetic data set of the whole-epoch measurement "
    "(0 skips it).")
_STEPS_PER_CALL = flags.DEFINE_integer(
    "steps_per_call", 0, "Steps per compiled call in the epoch measurement, "
    "as config.steps_per_call (0: the trainer's default, a whole epoch, or 1 "
    "for convolutional models on CPU).")
_OUT = flags.DEFINE_string("out", None, "Also write the JSON here.")


def _setup(name: str, batch_size: int, train_size: int):
  """State, compiled functions and synthetic data for one model."""
  mesh = train.data_mesh()
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  batch_sharding = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec("data"))
  config = config_lib.base_config()
  config.model = name
  model = models.create(name, num_classes=10)
  steps_per_epoch = max(train_size // batch_size, 1)
  schedule = train_state.learning_rate_schedule(
      config_lib.learning_rate(config), config.lr_decay_factor,
      steps_per_epoch)
  tx = train_state.optimizer(schedule, config.momentum, 0.0)

  def pipeline(key, images):
    return preprocessing.cifar_train(key, images, random_crop_on=False,
                                     flip_and_rotate=False)

  fns = steps.compile_fns(model, tx, train_preprocess=pipeline,
                          eval_preprocess=preprocessing.cifar_eval,
                          batch_size=batch_size, eval_batch_size=batch_size,
                          mesh=mesh)
  keys = jax.random.split(jax.random.key(0), 3)
  state = train_state.initialize(model, tx, keys[0], (28, 28, 3), replicated)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (max(train_size, batch_size), 32, 32, 3),
                        dtype=np.uint8)
  labels = rng.integers(0, 10, images.shape[0])
  data = inputs.to_device(from_arrays(images, labels, 10),
                          np.arange(images.shape[0]), replicated)
  batch = (jax.device_put(data.images[:batch_size], batch_sharding),
           jax.device_put(data.labels[:batch_size], batch_sharding))
  return fns, state, keys, data, batch, replicated


def _time_steps(fns, state, keys, batch, replicated):
  sums = jax.device_put(steps.running_sums(), replicated)
  args = (state, sums, *batch, keys[2])
  compiled = fns["train_step"].lower(*args).compile()
  for _ in range(_WARMUP.value):
    state, sums = compiled(state, sums, *batch, keys[2])
  jax.block_until_ready(state)
  times = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    for _ in range(_STEPS.value):
      state, sums = compiled(state, sums, *batch, keys[2])
    jax.block_until_ready(state)
    times.append((time.perf_counter() - start) / _STEPS.value)
  return state, times


def _time_epoch(fns, state, keys, data, replicated, batch_size):
  """One epoch of the resident path, called as the trainer calls it."""
  steps_per_epoch = data.labels.shape[0] // batch_size
  chunk = steps.steps_per_call(
      _STEPS_PER_CALL.value, steps_per_epoch,
      convolutional=steps.has_convolutions(state.params))
  sums = jax.device_put(steps.running_sums(), replicated)
  put = functools.partial(jax.device_put, device=replicated)
  calls = [(first, min(chunk, steps_per_epoch - first))
           for first in range(0, steps_per_epoch, chunk)]
  order_fn = functools.partial(fns["epoch_order"],
                               num_examples=data.labels.shape[0])
  jax.block_until_ready(order_fn(keys[1], put(np.int32(0))))  # Compiles it.
  compiled = {}
  start = time.perf_counter()
  for first, num_steps in calls:
    if num_steps not in compiled:
      compiled[num_steps] = fns["resident_epoch"].lower(
          state, sums, data.images, data.labels,
          order_fn(keys[1], put(np.int32(0))), keys[2], put(np.int32(first)),
          num_steps=num_steps).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  order = order_fn(keys[1], put(np.int32(1)))
  for first, num_steps in calls:
    state, sums = compiled[num_steps](
        state, sums, data.images, data.labels, order, keys[2],
        put(np.int32(first)))
  jax.block_until_ready(state)
  seconds = time.perf_counter() - start
  return dict(examples=int(data.labels.shape[0]), steps=steps_per_epoch,
              steps_per_call=chunk, seconds=seconds,
              compile_seconds=compile_s,
              images_per_second=steps_per_epoch * batch_size / seconds)


def main(argv):
  del argv
  batch_size = _BATCH.value
  results = []
  for name in _MODELS.value:
    fns, state, keys, data, batch, replicated = _setup(
        name, batch_size, _EPOCH_EXAMPLES.value)
    state, times = _time_steps(fns, state, keys, batch, replicated)
    step_s = statistics.median(times)
    result = dict(model=name, batch_size=batch_size,
                  ms_per_step=1000 * step_s,
                  images_per_second=batch_size / step_s,
                  repeats_ms=[1000 * t for t in times])
    if _EPOCH_EXAMPLES.value:
      result["epoch"] = _time_epoch(fns, state, keys, data, replicated,
                                    batch_size)
    results.append(result)
    print(json.dumps(result), file=sys.stderr)
  common.write_report("benchmarks/train_step.py", _OUT.value,
                      steps=_STEPS.value, repeats=_REPEATS.value, results=results)


if __name__ == "__main__":
  cli.run_script(main)

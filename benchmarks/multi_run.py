r"""Throughput of K runs in one program against K runs one after another.

For each CIFAR-10 model and each K, one process measures, on synthetic
uint8 32x32x3 data with batch 128 (the Section 3 protocol):

* ``sequential``: one run's epoch program (``strategy`` of K = 1), timed
  and multiplied by K: what K runs trained one after another cost;
* ``unroll`` and ``vmap``: K runs in one program
  (:mod:`rethink_jax.training.multi_run`), each epoch advancing all K.

Each timing is an epoch of ``--steps`` steps after a compiling epoch, the
median of ``--repeats``. The ratio is total images/s of the program over
that of the sequential runs (>= 1: the program is faster).

  python benchmarks/multi_run.py --models=mlp_1x512,alexnet --runs=1,2,4,8 \
      --out=results/benchmarks/cpu2_multi_run.json
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from absl import flags
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

import common  # pylint: disable=wrong-import-position

from rethink_jax import cli  # pylint: disable=wrong-import-position
from rethink_jax.training import config as config_lib  # pylint: disable=wrong-import-position
from rethink_jax.training import multi_run  # pylint: disable=wrong-import-position
from rethink_jax.training import train  # pylint: disable=wrong-import-position
from rethink_jax.training import train_state  # pylint: disable=wrong-import-position
from rethink_jax.data.dataset import from_arrays  # pylint: disable=wrong-import-position

_MODELS = flags.DEFINE_list(
    "models", ["mlp_1x512", "mlp_3x512", "alexnet", "inception",
               "inception_no_bn"], "Models to time.")
_RUNS = flags.DEFINE_list("runs", ["1", "2", "4", "8"], "Values of K.")
_STRATEGIES = flags.DEFINE_list("strategies", ["unroll", "vmap"],
                                "Layouts of the K-run program to time.")
_STEPS = flags.DEFINE_integer("steps", 10, "Steps per timed epoch.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed epochs (median kept).")
_OUT = flags.DEFINE_string("out", None, "Also write the JSON here.")

BATCH = 128


def _runs(model: str, k: int, strategy: str):
  """A _Group and K run states on synthetic data, ready to train."""
  rng = np.random.default_rng(0)
  n = BATCH * _STEPS.value
  pair = (from_arrays(rng.integers(0, 256, (n, 32, 32, 3), np.uint8),
                      rng.integers(0, 10, n), 10),
          from_arrays(rng.integers(0, 256, (BATCH, 32, 32, 3), np.uint8),
                      rng.integers(0, 10, BATCH), 10))
  setups = []
  for seed in range(k):
    c = config_lib.base_config()
    c.model, c.dataset, c.seed, c.progress = model, "arrays", seed, "off"
    c.eval_batch_size = BATCH
    c.lock()
    setups.append(train.setup_run(c, *pair))
  group = multi_run._Group(setups, strategy)  # pylint: disable=protected-access
  runs = []
  for s, (data, train_eval, test) in zip(
      setups, multi_run._device_data(setups, group)):  # pylint: disable=protected-access
    state = train_state.initialize(s.model, s.tx, s.init_key, s.input_shape,
                                   group.replicated)
    book = dict(epoch=0, elapsed_s=0.0, records=[])
    runs.append(multi_run._RunState(s, "", None, state, book, None, data,  # pylint: disable=protected-access
                                    train_eval, test, False))
  return group, runs


class _NoBar:
  def update(self, n):
    del n


def _epoch_seconds(model: str, k: int, strategy: str) -> dict[str, float]:
  group, runs = _runs(model, k, strategy)
  start = time.perf_counter()
  group.train_epoch(runs, _NoBar())
  first = time.perf_counter() - start
  times = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    group.train_epoch(runs, _NoBar())
    times.append(time.perf_counter() - start)
  return dict(seconds=statistics.median(times),
              compile_and_first_epoch_s=first)


def main(argv):
  del argv
  rows = []
  for model in _MODELS.value:
    alone = _epoch_seconds(model, 1, "unroll")
    one_run = BATCH * _STEPS.value / alone["seconds"]
    print(f"{model}: one run {one_run:,.0f} img/s", flush=True)
    for k in (int(x) for x in _RUNS.value):
      for strategy in _STRATEGIES.value:
        if k == 1 and strategy == "unroll":
          timing = alone
        else:
          timing = _epoch_seconds(model, k, strategy)
        total = k * BATCH * _STEPS.value / timing["seconds"]
        rows.append(dict(model=model, runs=k, strategy=strategy,
                         images_per_second=total,
                         sequential_images_per_second=one_run,
                         ratio_to_sequential=total / one_run,
                         **timing))
        print(f"{model} K={k} {strategy}: {total:,.0f} img/s, "
              f"{total / one_run:.2f}x sequential", flush=True)
  common.write_report("benchmarks/multi_run.py", _OUT.value,
                      batch_size=BATCH, steps=_STEPS.value,
                      repeats=_REPEATS.value, rows=rows)


if __name__ == "__main__":
  cli.run_script(main)

r"""Forward + backward time of ``models.pooling.max_pool`` vs flax's max_pool.

The two 3x3/2 SAME max-pools of the small Inception (Figure 3's downsample
modules) on a batch of 128, after ReLU as in the network, on whatever device
JAX finds; compile excluded, median of repeats. Prints JSON (and writes it to
``--out``); ``benchmarks/report.py`` turns the files into docs/benchmarks.md.

  python benchmarks/max_pool.py --out=results/benchmarks/cpu2_max_pool.json
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from absl import flags
import flax.linen as nn
import jax

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

import common  # pylint: disable=wrong-import-position

from rethink_jax import cli  # pylint: disable=wrong-import-position
from rethink_jax.models import pooling  # pylint: disable=wrong-import-position

_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls (median kept).")
_OUT = flags.DEFINE_string("out", None, "Also write the JSON here.")

# Inputs of the small Inception's two downsample modules at batch 128.
SHAPES = ((128, 28, 28, 160), (128, 14, 14, 240))


def _time(fn, *args) -> float:
  compiled = jax.jit(fn).lower(*args).compile()
  jax.block_until_ready(compiled(*args))
  times = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main(argv):
  del argv
  impls = {
      "flax.linen.max_pool": lambda x: nn.max_pool(
          x, (3, 3), strides=(2, 2), padding="SAME"),
      "rethink_jax.models.pooling.max_pool": lambda x: pooling.max_pool(
          x, (3, 3), (2, 2), "SAME"),
  }
  results = []
  for shape in SHAPES:
    x = jax.nn.relu(jax.random.normal(jax.random.key(0), shape))
    for name, pool in impls.items():
      g = jax.random.normal(jax.random.key(1), pool(x).shape)
      results.append(dict(
          shape=list(shape), implementation=name,
          forward_ms=1000 * _time(pool, x),
          forward_backward_ms=1000 * _time(
              lambda x, g, pool=pool: jax.vjp(pool, x)[1](g)[0], x, g)))
      print(json.dumps(results[-1]), file=sys.stderr)
  common.write_report("benchmarks/max_pool.py", _OUT.value,
                      repeats=_REPEATS.value, max_pool=results)


if __name__ == "__main__":
  cli.run_script(main)

r"""Training-input throughput of the streamed ImageNet path (Appendix B).

Measures, in one run, on the same records (the first ``--batches`` x
``--batch_size`` of an ArrayRecord-prepared split, Imagenette by default):

* ``rethink_jax``: ``StreamingDataset.batch(..., train=True, augment=True)``
  as the trainer calls it: one batched read, TF-slim's Inception training
  preprocessing at ``--size`` (rethink_jax.data.inception_preprocessing),
  labels as trained;
* ``tf.data``: a plain tf.data pipeline doing the same work: the records'
  JPEG bytes read from the same data source by a generator, a parallel
  ``map`` of the same per-example function
  (``inception_preprocessing.example_fn``: decode-and-crop, resize, flip,
  colour distortion), ``batch``, ``prefetch``;

each with 1 and 2 worker threads (TensorFlow's thread pools limited to that
many, in a fresh process per setting), images/s after one warm-up batch.
Optionally (``--train_step``) the Inception V3 train step's images/s on
whatever devices JAX finds.

  python benchmarks/input_pipeline.py --out=results/benchmarks/cpu2_input_pipeline.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import flags
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

import common  # noqa: E402  # pylint: disable=wrong-import-position

from rethink_jax import cli  # noqa: E402  # pylint: disable=wrong-import-position

_DATASET = flags.DEFINE_string("dataset", "imagenette", "Streamed data set.")
_SIZE = flags.DEFINE_integer("size", 299, "Output image side.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Images per batch.")
_BATCHES = flags.DEFINE_integer("batches", 8, "Timed batches per pipeline.")
_WORKERS = flags.DEFINE_list("workers", ["1", "2"], "Worker thread counts.")
_ONE = flags.DEFINE_integer("one", 0, "Internal: measure with this many "
                            "workers in this process and print JSON.")
_TRAIN_STEP = flags.DEFINE_bool("train_step", False, "Also time one "
                                "Inception V3 train step.")
_STEP_BATCH = flags.DEFINE_integer("step_batch_size", 8, "Batch of the "
                                   "train-step measurement.")
_OUT = flags.DEFINE_string("out", None, "Where to write the JSON report.")


def _measure(workers: int) -> dict:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.config.threading.set_inter_op_parallelism_threads(workers)
  tf.config.threading.set_intra_op_parallelism_threads(workers)
  from rethink_jax import data  # pylint: disable=import-outside-toplevel
  from rethink_jax.data import inception_preprocessing  # pylint: disable=import-outside-toplevel
  stream = data.load_stream(_DATASET.value, "train", image_size=_SIZE.value)
  batch, batches = _BATCH.value, _BATCHES.value
  ids = np.arange((batches + 1) * batch)
  out = {"workers": workers}

  stream.batch(ids[:batch], epoch=0, train=True, augment=True)  # warm-up
  start = time.perf_counter()
  for b in range(1, batches + 1):
    stream.batch(ids[b * batch:(b + 1) * batch], epoch=0, train=True,
                 augment=True)
  out["rethink_jax_images_per_second"] = (
      batches * batch / (time.perf_counter() - start))

  source = stream._source  # pylint: disable=protected-access
  seeds = inception_preprocessing.example_seeds(ids, seed=0, epoch=0)

  def jpegs():
    for i in ids.tolist():
      yield source[i]["image"], seeds[i]

  options = tf.data.Options()
  options.threading.private_threadpool_size = workers
  ds = (tf.data.Dataset.from_generator(
      jpegs, output_signature=(tf.TensorSpec([], tf.string),
                               tf.TensorSpec([2], tf.int64)))
        .map(inception_preprocessing.example_fn(_SIZE.value, train=True),
             num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch).prefetch(tf.data.AUTOTUNE).with_options(options))
  iterator = iter(ds)
  next(iterator)  # warm-up
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  out["tf_data_images_per_second"] = (
      batches * batch / (time.perf_counter() - start))
  out["ratio"] = (out["rethink_jax_images_per_second"] /
                  out["tf_data_images_per_second"])
  return out


def _train_step() -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  from rethink_jax import models  # pylint: disable=import-outside-toplevel
  from rethink_jax.data import preprocessing  # pylint: disable=import-outside-toplevel
  from rethink_jax.training import steps, train_state  # pylint: disable=import-outside-toplevel
  size, n = _SIZE.value, _STEP_BATCH.value
  model = models.create("inception_v3", num_classes=1000)
  tx = optax.sgd(0.045, momentum=0.9)
  state = train_state.create(model, tx, jax.random.key(0), (size, size, 3))
  step = jax.jit(lambda s, sums, x, y, k: steps.train_step(
      s, sums, x, y, k, model=model, tx=tx,
      preprocess=lambda key, images: preprocessing.inception_scale(images)))
  images = np.zeros((n, size, size, 3), np.uint8)
  labels = np.zeros((n,), np.int32)
  start = time.perf_counter()
  state, sums = step(state, steps.running_sums(), images, labels,
                     jax.random.key(1))
  jax.block_until_ready(state)
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(2):
    state, sums = step(state, sums, images, labels, jax.random.key(1))
  jax.block_until_ready(state)
  seconds = (time.perf_counter() - start) / 2
  return dict(batch_size=n, image_size=size, seconds_per_step=seconds,
              images_per_second=n / seconds, first_call_seconds=compile_s)


def main(argv: list[str]) -> None:
  del argv
  if _ONE.value:
    print(json.dumps(_measure(_ONE.value)))
    return
  rows = []
  for workers in map(int, _WORKERS.value):
    flags_now = [f"--{name}={flags.FLAGS[name].value}" for name in
                 ("dataset", "size", "batch_size", "batches")]
    result = subprocess.run(
        [sys.executable, __file__, f"--one={workers}", *flags_now],
        capture_output=True, text=True, check=True)
    rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print(json.dumps(rows[-1]), file=sys.stderr)
  report = dict(dataset=_DATASET.value, size=_SIZE.value,
                batch_size=_BATCH.value, batches=_BATCHES.value,
                input_pipeline=rows)
  if _TRAIN_STEP.value:
    report["inception_v3_train_step"] = _train_step()
  common.write_report("benchmarks/input_pipeline.py", _OUT.value, **report)


if __name__ == "__main__":
  cli.run_script(main)

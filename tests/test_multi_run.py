"""Many runs in one program (rethink_jax.training.multi_run).

Each run of a K-run program must end where the same config trained alone
ends (bit for bit in the unrolled layout, to float32 rounding when
vmapped), keep its own workdir, and resume bit-exactly after a kill, on one
device and on eight (``--xla_force_host_platform_device_count=8``, in a
subprocess).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from rethink_jax.training import config as config_lib
from rethink_jax.training import multi_run
from rethink_jax.training import train
from conftest import synthetic, tiny_config
import test_reliability as rel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.usefixtures("persistent_compilation_cache")


def data(n=128):
  """Small gray 28 x 28 images: the runs' steps, not their size, are tested."""
  return (synthetic(n, 4, shape=(28, 28, 1)),
          synthetic(32, 5, shape=(28, 28, 1), split="test"))


def ablation(**common):
  """Four runs that differ in every per-run field an ablation varies."""
  rows = [dict(seed=0),
          dict(seed=1, randomization="partially_corrupted_labels",
               corruption_probability=0.5, learning_rate=0.02),
          dict(seed=2, data_seed=3, randomization="random_labels",
               num_epochs=1),
          dict(seed=3, randomization="shuffled_pixels",
               train_eval_every_epochs=2)]
  return [tiny_config(**{"num_epochs": 3, "eval_batch_size": 16, **common,
                         **row}) for row in rows]


def train_alone(configs, root, pairs):
  for i, (config, pair) in enumerate(zip(configs, pairs)):
    train.train_and_evaluate(config, os.path.join(root, f"alone{i}"), *pair)


def train_together(configs, root, pairs, strategy):
  return multi_run.train_and_evaluate_many(
      configs, [os.path.join(root, f"run{i}") for i in range(len(configs))],
      data=pairs, strategy=strategy)


def assert_close_run(a, b, rtol):
  ra, rb = (rel.without_timing(rel.read_metrics(w)) for w in (a, b))
  assert len(ra) == len(rb)
  for x, y in zip(ra, rb):
    assert x.keys() == y.keys()
    for key in x:
      if isinstance(x[key], float):
        assert x[key] == pytest.approx(y[key], rel=rtol, abs=rtol), key
      else:
        assert x[key] == y[key], key
  for u, v in zip(rel.final_state(a), rel.final_state(b)):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol,
                               atol=rtol)


def test_unrolled_runs_are_bit_identical_to_runs_trained_alone(tmp_path):
  configs = ablation()
  pairs = [data()] * len(configs)
  summaries = train_together(configs, tmp_path, pairs, "unroll")
  train_alone(configs, tmp_path, pairs)
  for i, summary in enumerate(summaries):
    rel.assert_same_run(tmp_path / f"run{i}", tmp_path / f"alone{i}")
    assert summary["program"] == dict(runs=4, trained_together=4,
                                      strategy="unroll")
  # The one-epoch run left the program after its epoch; the others went on.
  assert [s["epochs_completed"] for s in summaries] == [3, 3, 1, 3]


def test_one_step_per_call_is_bit_identical_too(tmp_path):
  """The path convolutional models take on CPU: a compiled call per step."""
  configs = ablation(steps_per_call=1, num_epochs=2)[:2]
  pairs = [data(64)] * 2
  train_together(configs, tmp_path, pairs, "unroll")
  train_alone(configs, tmp_path, pairs)
  for i in range(2):
    rel.assert_same_run(tmp_path / f"run{i}", tmp_path / f"alone{i}")


# Vmapped matrix products may sum in another order than unbatched ones.
VMAP_RTOL = 2e-5


def test_vmapped_runs_equal_runs_trained_alone_to_rounding(tmp_path):
  configs = ablation(weight_decay=5e-4)
  with configs[1].unlocked():
    configs[1].weight_decay = 1e-3  # A coefficient of its own.
  pairs = [data()] * len(configs)
  train_together(configs, tmp_path, pairs, "vmap")
  train_alone(configs, tmp_path, pairs)
  for i in range(len(configs)):
    assert_close_run(tmp_path / f"run{i}", tmp_path / f"alone{i}", VMAP_RTOL)


def test_finished_runs_are_reported_not_retrained(tmp_path):
  configs = ablation()[:2]
  pairs = [data()] * 2
  first = train_together(configs, tmp_path, pairs, "auto")
  def saved():
    return [(rel.read_metrics(tmp_path / f"run{i}"),
             sorted(os.listdir(tmp_path / f"run{i}" / "checkpoints")))
            for i in range(2)]

  before = saved()
  again = train_together(configs, tmp_path, pairs, "auto")
  assert saved() == before
  assert [s["final"]["train_accuracy"] for s in again] == [
      s["final"]["train_accuracy"] for s in first]


def test_incompatible_runs_are_refused_naming_the_fields(tmp_path):
  a = tiny_config()
  b = tiny_config(batch_size=32, dropout_rate=0.1)
  with pytest.raises(config_lib.ConfigError,
                     match=r"differ in \['batch_size', 'dropout_rate'\]"):
    multi_run.train_and_evaluate_many([a, b], [tmp_path / "a", tmp_path / "b"],
                                      data=[data()] * 2)
  on = tiny_config(weight_decay=1e-4)
  with pytest.raises(config_lib.ConfigError, match="weight_decay_on"):
    multi_run.check_compatible([a, on])
  with pytest.raises(train.workdir_lib.WorkdirError, match="its own"):
    multi_run.train_and_evaluate_many([a, a], [tmp_path / "x"] * 2,
                                      data=[data()] * 2)
  with pytest.raises(config_lib.ConfigError, match="strategy"):
    multi_run.resolve_strategy("pmap")


def test_a_diverging_run_fails_alone(tmp_path):
  good = tiny_config(num_epochs=2, eval_batch_size=16)
  bad = tiny_config(num_epochs=2, eval_batch_size=16, learning_rate=1e30)
  with pytest.raises(train.NonFiniteLossError, match="run1.*NaN"):
    train_together([good, bad], tmp_path, [data()] * 2, "auto")
  assert rel.read_metrics(tmp_path / "run0")[-1]["epoch"] == 2
  assert os.path.isfile(tmp_path / "run0" / "summary.json")
  assert not os.path.isfile(tmp_path / "run1" / "summary.json")


# A K-run program in a subprocess: argv = root, strategy, mode (together or
# alone), number of devices is set by the caller's XLA_FLAGS.
PROGRAM = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    import test_multi_run as t
    root, strategy, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    configs = t.ablation(num_epochs=3, batch_size=64, eval_batch_size=32)
    pairs = [t.data(n)] * len(configs)
    if mode == "alone":
      t.train_alone(configs, root, pairs)
    else:
      t.train_together(configs, root, pairs, strategy)
""")


def _program(root, strategy, mode, n, devices, **popen):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=os.environ.get(
      "XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}")
  command = [sys.executable, "-c",
             PROGRAM.format(tests=os.path.join(REPO, "tests")), str(root),
             strategy, mode, str(n)]
  if popen:
    return subprocess.Popen(command, cwd=REPO, env=env, **popen)
  done = subprocess.run(command, cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  return done


@pytest.mark.parametrize("devices,strategy", [(1, "unroll"), (8, "vmap")])
def test_killed_program_resumes_every_run_bit_exactly(tmp_path, devices,
                                                      strategy):
  """SIGKILL twice mid-run, then to the end: equal to an uninterrupted run."""
  n = 1024  # 16 steps per epoch: a kill lands inside an epoch or its save.
  _program(tmp_path / "straight", strategy, "together", n, devices)
  killed = tmp_path / "killed"
  for after_lines in (1, 2):
    proc = _program(killed, strategy, "together", n, devices,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while (proc.poll() is None and rel.log_lines(killed / "run0") <
           after_lines and time.monotonic() < deadline):
      time.sleep(0.01)
    assert proc.poll() is None, "the program ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=300)
  _program(killed, strategy, "together", n, devices)
  for i in range(4):
    rel.assert_same_run(killed / f"run{i}", tmp_path / "straight" / f"run{i}")
    with open(killed / f"run{i}" / "summary.json") as f:
      assert json.load(f)["devices"]["count"] == devices


@pytest.mark.parametrize("strategy", ["unroll", "vmap"])
def test_eight_devices_equal_runs_trained_alone(tmp_path, strategy):
  """4 runs on 8 devices: vmapped runs split 4 x 2 over ("runs", "data")."""
  _program(tmp_path, strategy, "together", 128, 8)
  _program(tmp_path, strategy, "alone", 128, 8)
  for i in range(4):
    if strategy == "unroll":
      rel.assert_same_run(tmp_path / f"run{i}", tmp_path / f"alone{i}")
    else:
      assert_close_run(tmp_path / f"run{i}", tmp_path / f"alone{i}",
                       VMAP_RTOL)


def test_runs_mesh_splits_runs_then_batches():
  assert multi_run.mesh_shape(8, 8) == (8, 1)
  assert multi_run.mesh_shape(64, 8) == (8, 1)
  assert multi_run.mesh_shape(4, 8) == (4, 2)
  assert multi_run.mesh_shape(3, 8) == (1, 8)
  assert multi_run.mesh_shape(6, 1) == (1, 1)

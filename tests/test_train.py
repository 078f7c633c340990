"""Tests of the training loop (paper Section 3 protocol) on small data.

Synthetic data sets go through exactly the library pipeline
(``dataset.from_arrays``); the real-data tests use the shared CIFAR-10 and
Imagenette fixtures of conftest.py.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from rethink_jax.training import config as config_lib
from rethink_jax import paper
from rethink_jax.training import train
from conftest import synthetic, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING_FIELDS = ("images_per_second", "train_time_s", "eval_time_s",
                 "wall_time_s")


pytestmark = pytest.mark.usefixtures("persistent_compilation_cache")
make_config = tiny_config


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def final_state(workdir):
  """The latest checkpointed train state, as a dict of numpy arrays."""
  with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as m:
    restored = m.restore(m.latest_step(), args=ocp.args.Composite(
        state=ocp.args.StandardRestore()))
  return restored.state


def assert_trees_equal(a, b):
  chex.assert_trees_all_equal(a, b, strict=True)


@pytest.mark.parametrize("model", sorted(paper.PARAM_COUNTS))
def test_one_step_of_every_cifar_model(model, tmp_path):
  # Train and test sets of one shape, so one evaluation program serves both.
  config = make_config(model=model, batch_size=8, eval_batch_size=8)
  summary = train.train_and_evaluate(config, str(tmp_path),
                                     synthetic(8, 0), synthetic(8, 1))
  assert summary["param_count"] == paper.PARAM_COUNTS[model]
  final = summary["final"]
  assert final["step"] == 1 and final["epoch"] == 1
  assert np.isfinite(final["train_loss"]) and np.isfinite(final["test_loss"])
  assert final["train_examples"] == 8 and final["test_examples"] == 8
  assert summary["learning_rate"] == paper.INITIAL_LEARNING_RATE[model]


def test_metrics_corrupted_and_clean_subsets_and_steps_to_fit(tmp_path):
  config = make_config(randomization="partially_corrupted_labels",
                       corruption_probability=0.5, learning_rate=0.05,
                       num_epochs=40, stop_when_fitted=True, data_seed=3)
  train_set, test_set = synthetic(64, 0), synthetic(40, 1, split="test")
  summary = train.train_and_evaluate(config, str(tmp_path), train_set,
                                     test_set)
  records = read_metrics(tmp_path)
  assert [r["epoch"] for r in records] == list(range(1, len(records) + 1))
  last = records[-1]
  # Stopped at the first epoch whose evaluation fits the labels as trained.
  assert summary["stopped"] == "fitted"
  assert last["train_accuracy"] == 1.0
  assert all(r["train_accuracy"] < 1.0 for r in records[:-1])
  assert summary["steps_to_fit"] == last["step"] == 4 * len(records)
  assert [r["steps_to_fit"] for r in records[:-1]] == [None] * (
      len(records) - 1)
  # Corrupted and clean subsets, by the labels != true_labels mask.
  manifest = summary["corruption"]
  assert manifest["randomization"] == "partially_corrupted_labels"
  corrupted = last["corrupted_examples"]
  assert corrupted == manifest["num_changed_labels"]
  assert 0 < corrupted < 64
  assert last["corrupted_accuracy"] == 1.0 and last["clean_accuracy"] == 1.0
  assert last["train_true_label_accuracy"] == pytest.approx(
      (64 - corrupted) / 64)
  for r in records:
    total = (r["corrupted_accuracy"] * corrupted
             + r["clean_accuracy"] * (64 - corrupted))
    assert total == pytest.approx(r["train_accuracy"] * 64)
    # Learning rate of the epoch: staircase decay by 0.95 per epoch.
    assert r["learning_rate"] == pytest.approx(0.05 * 0.95**(r["epoch"] - 1))
    assert r["test_examples"] == 40 and r["train_examples"] == 64
    for key in ("train_loss", "train_loss_running", "test_loss",
                "test_accuracy", "grad_norm", "param_norm",
                "images_per_second", "wall_time_s"):
      assert r[key] is not None and np.isfinite(r[key]), key
  best = np.maximum.accumulate([r["test_accuracy"] for r in records])
  assert [r["cumulative_best_test_accuracy"] for r in records] == list(best)
  assert summary["best_test_accuracy"] == best[-1]
  assert summary["data"]["dropped_per_epoch"] == 0
  assert summary["devices"]["count"] == jax.device_count()
  assert set(summary["versions"]) >= {"jax", "flax", "optax"}
  with open(tmp_path / "summary.json") as f:
    assert json.load(f) == summary


def test_convergence_is_the_first_epoch_at_the_loss_threshold(tmp_path):
  """Figure 1b's time to overfit: steps until the training loss <= 0.05."""
  config = make_config(randomization="random_labels", learning_rate=0.05,
                       num_epochs=60, converge_loss=0.05,
                       stop_when_converged=True)
  summary = train.train_and_evaluate(config, str(tmp_path), synthetic(64),
                                     synthetic(16, 1))
  records = read_metrics(tmp_path)
  assert summary["stopped"] == "converged"
  assert records[-1]["train_loss"] <= 0.05
  assert all(r["train_loss"] > 0.05 for r in records[:-1])
  assert summary["steps_to_converge"] == records[-1]["step"] == 4 * len(
      records)
  assert summary["converged_epoch"] == len(records)
  assert [r["steps_to_converge"] for r in records] == [None] * (
      len(records) - 1) + [summary["steps_to_converge"]]


def test_clean_labels_have_no_corrupted_subset(tmp_path):
  config = make_config()
  summary = train.train_and_evaluate(config, str(tmp_path), synthetic(20),
                                     synthetic(8, 1))
  final = summary["final"]
  assert final["corrupted_examples"] == 0
  assert final["corrupted_accuracy"] is None
  assert final["clean_accuracy"] == final["train_accuracy"]
  assert summary["corruption"] is None
  # 20 examples, batch 16: one step, the last 4 examples dropped.
  assert final["step"] == 1 and summary["data"]["dropped_per_epoch"] == 4
  assert final["train_examples"] == 20


def test_training_labels_are_randomized_once_and_test_labels_stay_clean():
  from rethink_jax.training import inputs  # pylint: disable=g-import-not-at-top
  config = make_config(randomization="random_labels", data_seed=7,
                       train_examples=100, test_examples=50)
  train_set, test_set = synthetic(200), synthetic(80, 1, split="test")
  a_train, a_test, _, _ = inputs.load(config, train_set, test_set)
  b_train, _, _, _ = inputs.load(config, train_set, test_set)
  assert len(a_train) == 100 and len(a_test) == 50
  np.testing.assert_array_equal(a_test.labels, a_test.true_labels)
  np.testing.assert_array_equal(a_train.labels, b_train.labels)  # Fixed draw.
  assert np.mean(a_train.labels != a_train.true_labels) > 0.7
  # Data sets that carry a manifest are used as they are, if they agree.
  c_train, _, _, _ = inputs.load(config, a_train, a_test)
  np.testing.assert_array_equal(c_train.labels, a_train.labels)
  with pytest.raises(config_lib.ConfigError, match="config.randomization"):
    inputs.load(make_config(randomization="shuffled_pixels"), a_train, a_test)


@pytest.mark.parametrize("randomization, changes", [
    ("random_labels", {}),
    ("partially_corrupted_labels", {"corruption_probability": 0.4}),
    ("random_pixels", {}),
])
def test_a_subset_is_randomized_as_in_the_full_run(randomization, changes):
  """Example i gets the same draw in a subset run as in the full run."""
  from rethink_jax.training import inputs  # pylint: disable=g-import-not-at-top
  train_set, test_set = synthetic(300), synthetic(80, 1, split="test")
  full, _, _, _ = inputs.load(
      make_config(randomization=randomization, data_seed=3, **changes),
      train_set, test_set)
  config = make_config(randomization=randomization, data_seed=3,
                       train_examples=60, **changes)
  subset, _, _, _ = inputs.load(config, train_set, test_set)
  ids = inputs.subset_indices(300, 60, 3, inputs._TRAIN_SUBSET)
  assert not np.array_equal(ids, np.arange(60))
  np.testing.assert_array_equal(subset.true_labels, full.true_labels[ids])
  np.testing.assert_array_equal(subset.labels, full.labels[ids])
  np.testing.assert_array_equal(subset.images, full.images[ids])


def test_early_stopping_reports_the_best_epoch(tmp_path):
  config = make_config(num_epochs=30, early_stopping_patience=2,
                       learning_rate=0.05)
  summary = train.train_and_evaluate(config, str(tmp_path), synthetic(32),
                                     synthetic(32, 1))
  records = read_metrics(tmp_path)
  best_epoch = summary["best_epoch"]
  assert summary["stopped"] == "early_stopping"
  assert len(records) == best_epoch + 2
  assert summary["best_test_accuracy"] == max(
      r["test_accuracy"] for r in records)
  assert records[best_epoch - 1]["test_accuracy"] == summary[
      "best_test_accuracy"]


def test_resume_is_bit_identical_and_never_duplicates_epochs(tmp_path):
  # Augmentation and dropout on, two calls per epoch, so every source of
  # randomness must be a function of the step.
  config = dict(num_epochs=3, steps_per_call=2, random_crop=True,
                dropout_rate=0.2,
                randomization="random_labels", checkpoint_every_epochs=1)
  data = (synthetic(64), synthetic(16, 1))
  straight, stopped = str(tmp_path / "straight"), str(tmp_path / "stopped")
  train.train_and_evaluate(make_config(**config), straight, *data)
  first = train.train_and_evaluate(
      make_config(**{**config, "num_epochs": 1}), stopped, *data)
  assert first["epochs_completed"] == 1
  summary = train.train_and_evaluate(make_config(**config), stopped, *data)
  assert summary["epochs_completed"] == 3
  assert_trees_equal(final_state(straight), final_state(stopped))

  def without_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS}
            for r in records]

  assert without_timing(read_metrics(stopped)) == without_timing(
      read_metrics(straight))

  # A run killed after writing epoch 3's metrics but before saving its
  # checkpoint resumes from epoch 2 and rewrites epoch 3 once.
  shutil.rmtree(os.path.join(stopped, "checkpoints", "3"))
  train.train_and_evaluate(make_config(**config), stopped, *data)
  assert [r["epoch"] for r in read_metrics(stopped)] == [1, 2, 3]
  assert_trees_equal(final_state(straight), final_state(stopped))

  # Resuming with a different protocol is an error naming the field.
  with pytest.raises(config_lib.ConfigError, match="learning_rate"):
    train.train_and_evaluate(
        make_config(**{**config, "learning_rate": 0.5}), stopped, *data)


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch):
  # Epoch 2 runs on other data, which a resume refuses (test_reliability.py);
  # here the data check is switched off to reach a NaN after a checkpoint.
  monkeypatch.setattr(train.inputs, "fingerprint", lambda *args: {})
  config = make_config(num_epochs=1)
  good, test_set = synthetic(64), synthetic(16, 1)
  train.train_and_evaluate(config, str(tmp_path), good, test_set)
  # Finite pixels whose per-image whitening overflows (sum > float32 max):
  # non-finite pixels themselves are refused before training.
  bad = good.replace(images=np.full(good.images.shape, 3e38, np.float32))
  with pytest.raises(train.NonFiniteLossError) as e:
    train.train_and_evaluate(make_config(num_epochs=2), str(tmp_path), bad,
                             test_set)
  message = str(e.value)
  assert "step 4 " in message  # The first step of epoch 2 (4 steps/epoch).
  assert f"learning rate {0.01 * 0.95:.6g}" in message
  assert "after epoch 1" in message
  assert ocp.CheckpointManager(
      os.path.join(tmp_path, "checkpoints")).all_steps() == [1]
  assert [r["epoch"] for r in read_metrics(tmp_path)] == [1]


@pytest.mark.parametrize("steps_per_call", [0, 1])
def test_huge_learning_rate_is_reported_with_step_and_rate(tmp_path,
                                                           steps_per_call):
  # One call per step (a convolutional model's on CPU) checks the loss
  # between the calls of an epoch, inside its host-to-device guard.
  config = make_config(learning_rate=1e12, num_epochs=3,
                       steps_per_call=steps_per_call)
  with pytest.raises(train.NonFiniteLossError, match=r"at step \d+ .*"
                     r"learning rate 1e\+12"):
    train.train_and_evaluate(config, str(tmp_path), synthetic(64),
                             synthetic(16, 1))


def test_data_errors_name_the_field(tmp_path):
  with pytest.raises(config_lib.ConfigError, match="config.batch_size"):
    train.train_and_evaluate(make_config(batch_size=32), str(tmp_path),
                             synthetic(16), synthetic(16, 1))
  with pytest.raises(config_lib.ConfigError, match="config.random_crop"):
    train.train_and_evaluate(
        make_config(random_crop=True), str(tmp_path),
        synthetic(16, shape=(28, 28, 1)), synthetic(16, 1, shape=(28, 28, 1)))
  with pytest.raises(config_lib.ConfigError, match="config.dataset"):
    train.train_and_evaluate(make_config(dataset="cifar10"), str(tmp_path),
                             synthetic(16), synthetic(16, 1))
  with pytest.raises(config_lib.ConfigError, match="config.dataset"):
    train.train_and_evaluate(make_config(), str(tmp_path))
  with pytest.raises(config_lib.ConfigError, match="both train= and test="):
    train.train_and_evaluate(make_config(), str(tmp_path), synthetic(16))


def test_every_config_field_is_read_during_a_run(tmp_path, monkeypatch):
  """Style pitfall 6, at run time: validation aside, every field is read."""

  class Recorder:
    """A config that records which fields the trainer reads."""

    def __init__(self, config):
      object.__setattr__(self, "config", config)
      object.__setattr__(self, "read", set())

    def __getattr__(self, name):
      self.read.add(name)
      return getattr(self.config, name)

    def to_dict(self):
      return self.config.to_dict()

  validate = config_lib.validate
  monkeypatch.setattr(config_lib, "validate",
                      lambda c, device_count=None: validate(c.config))
  recorder = Recorder(make_config(
      randomization="partially_corrupted_labels",
      corruption_probability=0.2, train_examples=24, test_examples=12))
  train.train_and_evaluate(recorder, str(tmp_path), synthetic(32),
                           synthetic(16, 1))
  unread = set(config_lib.base_config()) - recorder.read
  # Read only when the trainer loads a named data set (test_command_line and
  # the Imagenette test cover that path); image_size is validated to be None
  # for small data sets.
  assert unread <= {"image_size", "data_dir"}, unread


SUBPROCESS_RUN = textwrap.dedent("""
    import functools
    import sys
    import flax.linen as nn
    import jax
    import numpy as np
    import optax
    import orbax.checkpoint as ocp
    sys.path.insert(0, {repo!r})
    from rethink_jax.training import config as config_lib
    from rethink_jax.training import inputs
    from rethink_jax.data import preprocessing
    from rethink_jax.training import steps
    from rethink_jax.training import train
    from rethink_jax.training import train_state
    from rethink_jax.data.dataset import from_arrays
    assert jax.device_count() == {devices}, jax.devices()
    workdir = {workdir!r}
    rng = np.random.default_rng(0)
    def data(n):
      return from_arrays(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                         rng.integers(0, 10, n), 10)
    train_set, test_set = data(64), data(24)

    # The whole loop on an MLP: two epochs of four steps, random crops.
    c = config_lib.base_config()
    c.model, c.dataset, c.num_epochs = "mlp_1x512", "arrays", 2
    c.batch_size, c.eval_batch_size, c.progress = 16, 8, "off"
    c.random_crop = True
    c.lock()
    train.train_and_evaluate(c, workdir + "/mlp", train_set, test_set)
    with ocp.CheckpointManager(workdir + "/mlp/checkpoints") as m:
      state = m.restore(m.latest_step(), args=ocp.args.Composite(
          state=ocp.args.StandardRestore())).state
    np.savez(workdir + "/mlp.npz",
             *map(np.asarray, jax.tree_util.tree_leaves(state)))

    # BatchNorm statistics over the global batch: a small BN network through
    # the compiled scan, eight steps.
    class SmallBatchNormNet(nn.Module):
      @nn.compact
      def __call__(self, x, train=False):
        x = nn.Conv(16, (3, 3))(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.relu(x).mean((1, 2))
        return nn.Dense(10)(x)

    model = SmallBatchNormNet()
    mesh = train.data_mesh()
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    tx = optax.sgd(0.1, momentum=0.9)
    fns = steps.compile_fns(
        model, tx, train_preprocess=functools.partial(
            preprocessing.cifar_train, random_crop_on=True,
            flip_and_rotate=False),
        eval_preprocess=preprocessing.cifar_eval, batch_size=16,
        eval_batch_size=8, mesh=mesh)
    state = train_state.initialize(model, tx, jax.random.key(0), (28, 28, 3),
                                   replicated)
    device_data = inputs.to_device(train_set, np.arange(64), replicated)
    sums = jax.device_put(steps.running_sums(), replicated)
    shuffle_key, step_key = jax.random.split(jax.random.key(1))
    for epoch in range(2):
      order = fns["epoch_order"](shuffle_key,
                                 jax.device_put(np.int32(epoch), replicated),
                                 num_examples=64)
      state, sums = fns["resident_epoch"](
          state, sums, device_data.images, device_data.labels, order,
          step_key, jax.device_put(np.int32(0), replicated), num_steps=4)
    np.savez(workdir + "/batch_norm.npz",
             *map(np.asarray, jax.tree_util.tree_leaves(state)))
""")


def run_with_devices(devices, workdir):
  env = dict(os.environ, XLA_FLAGS=(
      os.environ.get("XLA_FLAGS", "") +
      f" --xla_force_host_platform_device_count={devices}"),
             JAX_PLATFORMS="cpu")
  script = SUBPROCESS_RUN.format(repo=REPO, devices=devices, workdir=workdir)
  result = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]


def test_eight_devices_match_one_device(tmp_path):
  """Data parallelism over a ("data",) mesh changes nothing but rounding."""
  one, eight = str(tmp_path / "one"), str(tmp_path / "eight")
  run_with_devices(1, one)
  run_with_devices(8, eight)
  for name in ("mlp", "batch_norm"):
    a, b = np.load(f"{one}/{name}.npz"), np.load(f"{eight}/{name}.npz")
    assert a.files == b.files
    for leaf in a.files:
      np.testing.assert_allclose(a[leaf], b[leaf], rtol=1e-4, atol=1e-5,
                                 err_msg=f"{name} {leaf}")
  assert read_metrics(f"{one}/mlp")[-1]["step"] == 8
  with open(f"{eight}/mlp/summary.json") as f:
    assert json.load(f)["devices"]["count"] == 8


@pytest.mark.real_data("cifar10")
def test_command_line(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  command = [sys.executable, "-m", "rethink_jax.train",
             "--config=experiments/configs/mlp_1x512.py:random_labels",
             f"--workdir={tmp_path}", "--config.num_epochs=1",
             "--config.train_examples=256", "--config.test_examples=128",
             "--config.eval_batch_size=128"]
  result = subprocess.run(command, env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  # Output to a pipe, not a terminal: still one INFO line per epoch.
  assert "] epoch 1/1  step 2  loss " in result.stderr, result.stderr[-3000:]
  with open(tmp_path / "summary.json") as f:
    summary = json.load(f)
  assert summary["config"]["randomization"] == "random_labels"
  assert summary["data"]["name"] == "cifar10"
  assert summary["data"]["train_examples"] == 256
  assert summary["corruption"]["randomization"] == "random_labels"
  misspelt = subprocess.run(command[:3] + [f"--workdir={tmp_path}/x",
                                           "--config.num_epoch=3"],
                            env=env, cwd=REPO, capture_output=True,
                            text=True, timeout=600)
  assert misspelt.returncode != 0
  assert "num_epoch" in misspelt.stderr


@pytest.mark.slow
def test_fits_random_labels_of_real_cifar10(cifar10_train, cifar10_test,
                                            tmp_path):
  """Section 2.1 in miniature: random labels are fitted, test is at chance."""
  config = make_config(randomization="random_labels", train_examples=256,
                       test_examples=2000, batch_size=32,
                       eval_batch_size=250, num_epochs=100,
                       stop_when_fitted=True, dataset="cifar10")
  summary = train.train_and_evaluate(config, str(tmp_path), cifar10_train,
                                     cifar10_test)
  final = summary["final"]
  assert summary["stopped"] == "fitted", final
  assert final["train_accuracy"] == 1.0
  assert final["corrupted_accuracy"] == 1.0
  # About 90% of the random labels differ from the truth (Section 2.1).
  assert 0.8 * 256 < final["corrupted_examples"] < 256
  # Chance on 2,000 clean test images is 10% (binomial sd 0.7%).
  assert 0.06 < final["test_accuracy"] < 0.14


@pytest.mark.slow
@pytest.mark.real_data("imagenette")
def test_one_step_of_inception_v3_on_real_imagenette(tmp_path):
  """The streamed ImageNet path: host-fed batches, Inception V3."""
  config = config_lib.base_config()
  config.model = "inception_v3"
  config.dataset = "imagenette"
  config.image_size = 75
  config.learning_rate = 0.045
  config.randomization = "random_labels"
  config.train_examples, config.test_examples = 16, 8
  config.batch_size, config.eval_batch_size = 16, 8
  config.num_epochs, config.progress = 1, "off"
  config.lock()
  summary = train.train_and_evaluate(config, str(tmp_path))
  final = summary["final"]
  assert summary["data"]["streamed"] and final["step"] == 1
  assert final["train_examples"] == 16 and final["test_examples"] == 8
  assert np.isfinite(final["train_loss_running"])
  assert summary["corruption"]["randomization"] == "random_labels"


@pytest.mark.real_data("imagenette")
def test_streamed_resume_is_bit_exact(tmp_path):
  """The streamed path with augmentation: 1 + 1 epochs equal 2 epochs."""
  def config(epochs):
    c = config_lib.base_config()
    c.model, c.dataset, c.image_size = "mlp_1x512", "imagenette", 32
    c.random_crop = True  # TF-slim's training augmentation
    c.randomization = "random_labels"
    c.train_examples, c.test_examples = 64, 32
    c.batch_size, c.eval_batch_size = 16, 32
    c.num_epochs, c.progress = epochs, "off"
    c.lock()
    return c

  straight = str(tmp_path / "straight")
  resumed = str(tmp_path / "resumed")
  train.train_and_evaluate(config(2), straight)
  train.train_and_evaluate(config(1), resumed)
  train.train_and_evaluate(config(2), resumed)
  assert_trees_equal(final_state(straight), final_state(resumed))
  assert ([r["train_loss"] for r in read_metrics(straight)] ==
          [r["train_loss"] for r in read_metrics(resumed)])


class _TinyConvBN(nn.Module):
  """A convolution, BatchNorm and a classifier: a conv model small enough
  to compile inside a loop on CPU."""

  num_classes: int = 10
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32
  bn_momentum: float = 0.9

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Conv(4, (3, 3), strides=(2, 2), dtype=self.dtype)(x)
    x = nn.BatchNorm(use_running_average=not train,
                     momentum=self.bn_momentum, dtype=self.dtype)(x)
    x = jnp.mean(nn.relu(x), axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(
        jnp.float32)


def test_a_conv_model_trains_alike_in_one_scan_per_epoch(tmp_path,
                                                         monkeypatch):
  # On CPU a convolutional model takes one step per call; on GPU and TPU it
  # takes a whole epoch in one lax.scan. Forced here on CPU, the scan must
  # give the step-by-step run's training, BatchNorm statistics included.
  from rethink_jax.models import registry as model_registry  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(model_registry.REGISTRY.entries, "tiny_conv_bn",
                      model_registry.ModelSpec("tiny_conv_bn", _TinyConvBN,
                                               0.05, True))
  data = (synthetic(64), synthetic(16, 1))
  runs = {}
  for steps_per_call in (0, 4):  # 0: one step per call on CPU; 4: the epoch
    workdir = str(tmp_path / str(steps_per_call))
    runs[steps_per_call] = train.train_and_evaluate(
        make_config(model="tiny_conv_bn", num_epochs=2, random_crop=True,
                    steps_per_call=steps_per_call), workdir, *data)
    runs[steps_per_call]["state"] = final_state(workdir)
  assert runs[0]["final"]["step"] == runs[4]["final"]["step"] == 8
  chex.assert_trees_all_close(runs[4]["state"], runs[0]["state"], rtol=1e-5,
                              atol=1e-6)
  for key in ("train_loss", "train_accuracy", "test_accuracy",
              "train_loss_running"):
    assert runs[4]["final"][key] == pytest.approx(runs[0]["final"][key],
                                                  rel=1e-5, abs=1e-6), key


def test_the_training_set_is_evaluated_at_its_cadence_and_at_the_end(
    tmp_path):
  data = (synthetic(64), synthetic(16, 1))
  train.train_and_evaluate(make_config(num_epochs=5),
                                   str(tmp_path / "every"), *data)
  sparse = train.train_and_evaluate(
      make_config(num_epochs=5, train_eval_every_epochs=3),
      str(tmp_path / "sparse"), *data)
  a, b = read_metrics(tmp_path / "every"), read_metrics(tmp_path / "sparse")
  assert [("train_accuracy" in r) for r in b] == [False, False, True, False,
                                                  True]
  assert all("test_accuracy" in r for r in b)
  # Skipping an evaluation changes no training: the evaluated epochs agree;
  # fitting is seen at evaluated epochs only.
  seen = ("steps_to_fit", "steps_to_converge")
  for x, y in zip(a, b):
    for key in y:
      if key not in TIMING_FIELDS + seen:
        assert x[key] == y[key], key
  fitted = [r["step"] for r in b if r.get("train_accuracy", 0) >= 1.0]
  assert sparse["steps_to_fit"] == (fitted[0] if fitted else None)
  assert "train_accuracy" in sparse["final"]
  # A run that stops early still ends on an evaluated epoch.
  early = train.train_and_evaluate(
      make_config(num_epochs=30, early_stopping_patience=2,
                  learning_rate=0.05, train_eval_every_epochs=7),
      str(tmp_path / "early"), *data)
  assert early["stopped"] == "early_stopping"
  assert early["epochs_completed"] < 7
  assert "train_accuracy" in early["final"]

"""Per-example learning dynamics: the recorder in the trainer
(rethink_jax.training.example_log) and the measures derived from it
(rethink_jax.dynamics)."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import synthetic, tiny_config
from rethink_jax import corruption, models
from rethink_jax.data import preprocessing
from rethink_jax.training import example_log
from rethink_jax.training import multi_run
from rethink_jax.training import train
import test_train

pytestmark = pytest.mark.usefixtures("persistent_compilation_cache")


def config(**changes):
  return tiny_config(**{"num_epochs": 4, "per_example_every_epochs": 2,
                        "eval_batch_size": 24,  # 72 = 3 batches of 24
                        "randomization": "partially_corrupted_labels",
                        "corruption_probability": 0.5, "learning_rate": 0.05,
                        **changes})


def data():
  return synthetic(72, 2), synthetic(16, 3, split="test")


def test_recorded_outcomes_equal_an_explicit_evaluation(tmp_path):
  summary = train.train_and_evaluate(config(), str(tmp_path), *data())
  records = example_log.read(str(tmp_path))
  assert list(records["epochs"]) == [2, 4]
  assert records["correct"].shape == records["margin"].shape == (2, 72)
  # The corruption manifest and the records agree on what was corrupted.
  train_set, _ = corruption.randomize(*data(), "partially_corrupted_labels",
                                      seed=0, p=0.5)
  corrupted = train_set.labels != train_set.true_labels
  np.testing.assert_array_equal(records["corrupted"], corrupted)
  assert corrupted.sum() == summary["corruption"]["num_changed_labels"]
  # The last epoch, evaluated by hand from the final checkpoint.
  state = test_train.final_state(str(tmp_path))
  logits = models.create("mlp_1x512").apply(
      {"params": state["params"]},
      preprocessing.cifar_eval(jnp.asarray(train_set.images)), train=False)
  logits = np.asarray(logits)
  labels = train_set.labels
  np.testing.assert_array_equal(records["correct"][-1],
                                logits.argmax(-1) == labels)
  own = logits[np.arange(72), labels]
  others = np.where(np.eye(10, dtype=bool)[labels], -np.inf, logits).max(-1)
  np.testing.assert_allclose(records["margin"][-1], np.clip(
      own - others, -127 * example_log.MARGIN_STEP,
      127 * example_log.MARGIN_STEP), atol=example_log.MARGIN_STEP / 2 + 1e-6)
  assert summary["final"]["train_accuracy"] == pytest.approx(
      records["correct"][-1].mean())


def test_the_file_is_small_and_a_resumed_run_continues_it_exactly(tmp_path):
  straight, stopped = tmp_path / "straight", tmp_path / "stopped"
  train.train_and_evaluate(config(), str(straight), *data())
  train.train_and_evaluate(config(num_epochs=3), str(stopped), *data())
  assert list(example_log.read(str(stopped))["epochs"]) == [2, 3]  # 3: last
  train.train_and_evaluate(config(), str(stopped), *data())
  a, b = (example_log.read(str(d)) for d in (straight, stopped))
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)



def test_fifty_thousand_examples_cost_about_56_kb_an_epoch(tmp_path):
  rng = np.random.default_rng(0)
  n = 50_000
  log = example_log.ExampleLog(str(tmp_path), example_ids=np.arange(n),
                               corrupted=rng.random(n) < 0.5, every=1,
                               resume_epoch=0)
  sizes = []
  for epoch in (1, 2, 3):
    log.record(epoch, rng.random(n) < 0.5, rng.normal(0, 3, n))
    sizes.append(os.path.getsize(tmp_path / example_log.NAME))
  per_epoch = (sizes[2] - sizes[0]) / 2
  assert per_epoch < 60_000  # 100 epochs: under 6 MB
  assert sizes[0] < 150_000
  assert example_log.read(str(tmp_path))["margin"].shape == (3, n)


def test_runs_in_one_program_record_like_runs_alone(tmp_path):
  configs = [config(), config(seed=1, per_example_every_epochs=0),
             config(seed=2, corruption_probability=0.2)]
  pairs = [data()] * 3
  multi_run.train_and_evaluate_many(
      configs, [str(tmp_path / f"many{i}") for i in range(3)], data=pairs,
      strategy="unroll")
  for i in (0, 2):
    train.train_and_evaluate(configs[i], str(tmp_path / f"alone{i}"),
                             *pairs[i])
    a, b = (example_log.read(str(tmp_path / f"{kind}{i}"))
            for kind in ("many", "alone"))
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  assert not os.path.exists(tmp_path / "many1" / example_log.NAME)


def test_measures_on_a_hand_made_record():
  from rethink_jax import dynamics  # pylint: disable=g-import-not-at-top
  epochs = np.array([2, 4, 6, 8])
  # Columns: examples 0-4; rows: the recorded epochs.
  correct = np.array([[1, 0, 0, 1, 0],
                      [1, 1, 0, 0, 0],
                      [1, 1, 0, 1, 1],
                      [1, 0, 0, 1, 1]], bool)
  corrupted = np.array([0, 0, 0, 1, 1], bool)
  np.testing.assert_array_equal(
      dynamics.first_learned_epoch(correct, epochs), [2, 4, -1, 2, 6])
  np.testing.assert_array_equal(
      dynamics.learned_for_good_epoch(correct, epochs), [2, -1, -1, 6, 6])
  np.testing.assert_array_equal(dynamics.forgetting_events(correct),
                                [0, 1, 0, 1, 0])
  by_group = dynamics.accuracy_by_group(correct, corrupted)
  np.testing.assert_allclose(by_group["clean"], [1 / 3, 2 / 3, 2 / 3, 1 / 3])
  np.testing.assert_allclose(by_group["corrupted"], [0.5, 0.0, 1.0, 1.0])
  assert dynamics.fitting_onset(correct, epochs, corrupted, 0.75) == 6
  assert dynamics.fitting_onset(correct, epochs, corrupted, 1.5) == -1
  assert dynamics.peak_epoch({1: 0.2, 2: 0.5, 3: 0.5, 4: 0.3}) == 2
  s = dynamics.summary(dict(correct=correct, epochs=epochs,
                            corrupted=corrupted),
                       test_accuracy={2: 0.3, 4: 0.4, 6: 0.35, 8: 0.33})
  assert s["groups"]["clean"]["median_first_learned_epoch"] == 3.0
  assert s["groups"]["clean"]["never_learned"] == pytest.approx(1 / 3)
  assert s["groups"]["corrupted"]["median_first_learned_epoch"] == 4.0
  assert s["first_learned_gap"] == 1.0
  assert s["corrupted_fitting_onset"] == 2  # half are fitted at epoch 2
  assert (s["test_peak_epoch"], s["test_accuracy_at_peak"],
          s["test_accuracy_final"]) == (4, 0.4, 0.33)

"""Inception V3 reference protocol options: RMSProp, decay every k epochs,
label smoothing, the auxiliary head; and configs recorded before them."""

from __future__ import annotations

import json
import os
from typing import Any

from conftest import synthetic, tiny_config
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rethink_jax.experiments import sweep
from rethink_jax.models import registry as model_registry
from rethink_jax.training import config as config_lib
from rethink_jax.training import steps, train, train_state


def test_rmsprop_is_tf_rmsprop():
  """TF1 RMSProp: ms starts at 1, eps inside the sqrt, lr inside momentum."""
  lr, decay, eps, momentum = 0.045, 0.9, 1.0, 0.9
  params = {"w": jnp.array([0.5, -1.0, 2.0])}
  grads = [jnp.array([0.1, -0.2, 0.3]), jnp.array([1.0, 0.5, -2.0]),
           jnp.array([-0.3, 0.0, 0.7])]
  tx = train_state.optimizer(optax.constant_schedule(lr), momentum, 0.0,
                             kind="rmsprop")
  state, p = tx.init(params), params
  ms, mom, w = np.ones(3), np.zeros(3), np.asarray(params["w"], np.float64)
  for g in grads:
    updates, state = tx.update({"w": g}, state, p)
    p = optax.apply_updates(p, updates)
    g = np.asarray(g, np.float64)
    ms = decay * ms + (1 - decay) * g**2
    mom = momentum * mom + lr * g / np.sqrt(ms + eps)
    w = w - mom
  np.testing.assert_allclose(p["w"], w, rtol=1e-6)


def test_decay_every_two_epochs():
  schedule = train_state.learning_rate_schedule(0.045, 0.94, 10,
                                                staircase=True, decay_epochs=2)
  assert float(schedule(19)) == pytest.approx(0.045)
  assert float(schedule(20)) == pytest.approx(0.045 * 0.94)
  assert float(schedule(45)) == pytest.approx(0.045 * 0.94**2)


def test_label_smoothing_targets():
  logits = jnp.array([[2.0, 0.5, -1.0]])
  labels = jnp.array([0])
  a = 0.1
  targets = np.array([1 - a + a / 3, a / 3, a / 3])
  expected = -np.sum(targets * np.asarray(jax.nn.log_softmax(logits[0])))
  got = steps.cross_entropy(logits, labels, a)
  assert float(got[0]) == pytest.approx(expected, rel=1e-6)
  assert float(steps.cross_entropy(logits, labels)[0]) == pytest.approx(
      -float(jax.nn.log_softmax(logits[0])[0]), rel=1e-6)


class AuxNet(nn.Module):
  """A model with an auxiliary head, like Inception V3's."""

  num_classes: int = 10
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32
  aux_logits: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = nn.relu(nn.Dense(16, name="trunk")(x.reshape((x.shape[0], -1))))
    logits = nn.Dense(self.num_classes, name="head")(h)
    if self.aux_logits:
      return logits, nn.Dense(self.num_classes, name="aux")(h)
    return logits


@pytest.fixture
def aux_net(monkeypatch):
  spec = model_registry.ModelSpec("aux_net", AuxNet, 0.05, False,
                                  aux_head=True)
  monkeypatch.setitem(model_registry.REGISTRY.entries, "aux_net", spec)


def test_auxiliary_head_is_trained_with_its_weight(aux_net, tmp_path):
  model = AuxNet(aux_logits=True)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 4, 4, 3)),
                  jnp.float32)
  labels = jnp.arange(8, dtype=jnp.int32) % 10
  tx = optax.sgd(0.1)
  state = train_state.create(model, tx, jax.random.key(0), (4, 4, 3))

  def loss_of(weight, smoothing=0.0):
    new, sums = steps.train_step(
        state, steps.running_sums(), x, labels, jax.random.key(1),
        model=model, tx=tx, preprocess=lambda key, images: images,
        label_smoothing=smoothing, aux_loss_weight=weight)
    return new, float(sums["loss"])

  off, loss_off = loss_of(0.0)
  on, loss_on = loss_of(0.4)
  # The logged loss is the main head's; the aux head moves only when weighted.
  assert loss_on == pytest.approx(loss_off)
  np.testing.assert_array_equal(off.params["aux"]["kernel"],
                                state.params["aux"]["kernel"])
  assert not np.array_equal(on.params["aux"]["kernel"],
                            state.params["aux"]["kernel"])
  # The whole training run and its evaluation handle the tuple output.
  config = tiny_config(model="aux_net", aux_loss_weight=0.4,
                       label_smoothing=0.1, optimizer="rmsprop",
                       lr_decay_epochs=2)
  summary = train.train_and_evaluate(config, str(tmp_path), synthetic(64),
                                     synthetic(32, seed=1, split="test"))
  assert np.isfinite(summary["final"]["train_loss"])


def test_auxiliary_head_needs_a_model_that_has_one():
  with pytest.raises(config_lib.ConfigError, match="no auxiliary head"):
    config_lib.validate(tiny_config(aux_loss_weight=0.4))
  with pytest.raises(config_lib.ConfigError, match="optimizer"):
    config_lib.validate(tiny_config(optimizer="adam"))


def test_table2_uses_the_reference_optimizer_and_no_unlisted_regularizer():
  true = config_lib.table2_config("imagenet2012", "data_aug")
  assert (true.optimizer, true.lr_decay_factor, true.lr_decay_epochs) == (
      "rmsprop", 0.94, 2)
  assert config_lib.learning_rate(true) == 0.045
  # Label smoothing and the auxiliary head are not Table 2 switches: off in
  # every row, so "none" means no explicit regularizer, true or random.
  for row in ("", "data_aug", "data_aug,dropout,weight_decay",
              "random_labels", "dropout,weight_decay,random_labels"):
    c = config_lib.table2_config("imagenet2012", row)
    assert (c.label_smoothing, c.aux_loss_weight) == (0.0, 0.0), row
  none = config_lib.table2_config("imagenet2012", "")
  random = config_lib.table2_config("imagenet2012", "random_labels")
  for c in (none, random):
    assert (c.dropout_rate, c.weight_decay, c.random_crop) == (
        0.0, 0.0, False)
  assert {k: v for k, v in none.items() if k != "randomization"} == {
      k: v for k, v in random.items() if k != "randomization"}


def test_runs_recorded_before_the_new_fields_keep_their_names(tmp_path):
  config = tiny_config()
  old = {k: v for k, v in config.to_dict().items()
         if k not in config_lib.ADDED_FIELDS}
  assert sweep._identity(config) == {  # pylint: disable=protected-access
      k: v for k, v in old.items() if k not in config_lib.RESUMABLE_FIELDS}
  # A summary written before the fields existed still marks the run done.
  path = sweep.workdir(str(tmp_path), config)
  os.makedirs(path)
  with open(os.path.join(path, sweep.SUMMARY), "w") as f:
    json.dump({"config": old}, f)
  assert sweep.status(str(tmp_path), config) == "done"
  with config.unlocked():
    config.label_smoothing = 0.1
  assert sweep.run_name(config) != sweep.run_name(tiny_config())


def test_a_checkpoint_from_before_the_new_fields_resumes():
  config = tiny_config()
  old = {k: v for k, v in config.to_dict().items()
         if k not in config_lib.ADDED_FIELDS}
  train._check_resume(config, config_lib.complete(old), "here")  # pylint: disable=protected-access
  with config.unlocked():
    config.optimizer = "rmsprop"
  with pytest.raises(config_lib.ConfigError, match="optimizer"):
    train._check_resume(config, config_lib.complete(old), "here")  # pylint: disable=protected-access

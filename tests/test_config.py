"""Tests of the training config: validation, experiment files, field use."""

import glob
import importlib.util
import os
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from rethink_jax.training import config as config_lib
from rethink_jax import models
from rethink_jax import paper
from rethink_jax.training import train_state

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(glob.glob(os.path.join(REPO, "experiments", "configs",
                                             "*.py")))
# Modules that consume the config (config.py itself only validates it).
TRAINER_MODULES = ("train.py", "inputs.py", "steps.py", "train_state.py",
                   "metrics.py", "checkpoint.py")


def _load_config_file(path):
  spec = importlib.util.spec_from_file_location(
      "config_file_" + os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _config(**changes):
  c = config_lib.base_config()
  for k, v in changes.items():
    c[k] = v
  c.lock()
  return c


def test_base_config_has_every_explicit_regularizer_off():
  c = config_lib.base_config()
  assert c.weight_decay == 0.0
  assert c.dropout_rate == 0.0
  assert not c.random_crop
  assert not c.flip_and_rotate
  assert c.randomization == "true_labels"
  assert c.momentum == paper.MOMENTUM
  assert c.lr_decay_factor == paper.LR_DECAY_PER_EPOCH
  assert c.batch_size == 128
  config_lib.validate(c, device_count=1)


@pytest.mark.parametrize("model", sorted(paper.INITIAL_LEARNING_RATE))
def test_learning_rate_defaults_to_the_papers(model):
  c = _config(model=model)
  assert config_lib.learning_rate(c) == paper.INITIAL_LEARNING_RATE[model]
  c = _config(model=model, learning_rate=0.5)
  assert config_lib.learning_rate(c) == 0.5


BAD_CONFIGS = [
    (dict(model="resnet50"), "model", "unknown model"),
    (dict(dataset="svhn"), "dataset", "unknown data set"),
    (dict(randomization="random_colours"), "randomization", "choose one of"),
    (dict(randomization="partially_corrupted_labels"),
     "corruption_probability", "needs a probability"),
    (dict(randomization="partially_corrupted_labels",
          corruption_probability=1.5), "corruption_probability", "[0, 1]"),
    (dict(corruption_probability=0.5), "corruption_probability",
     "only applies"),
    (dict(gaussian_statistics="global"), "gaussian_statistics",
     "only applies"),
    (dict(randomization="gaussian", gaussian_statistics="median"),
     "gaussian_statistics", "choose one of"),
    (dict(learning_rate=-0.1), "learning_rate", "must be > 0"),
    (dict(batch_size=0), "batch_size", ">= 1"),
    (dict(num_epochs=0), "num_epochs", ">= 1"),
    (dict(momentum=1.0), "momentum", "[0, 1)"),
    (dict(lr_decay_factor=1.5), "lr_decay_factor", "(0, 1]"),
    (dict(weight_decay=-1e-4), "weight_decay", ">= 0"),
    (dict(dropout_rate=1.0), "dropout_rate", "[0, 1)"),
    (dict(weight_decay_scope="biases"), "weight_decay_scope",
     "choose one of"),
    (dict(image_size=299), "image_size", "only applies to streamed"),
    (dict(dataset="imagenette"), "image_size", "needs a positive"),
    (dict(dataset="imagenette", image_size=75, randomization="gaussian"),
     "randomization", "unsupported"),
    (dict(dataset="imagenette", image_size=75, flip_and_rotate=True),
     "flip_and_rotate", "streamed"),
    (dict(compute_dtype="float16"), "compute_dtype", "choose one of"),
    (dict(model="mlp_1x512", kernel_init="he_normal"), "kernel_init",
     "offers"),
    (dict(steps_per_call=-1), "steps_per_call", ">= 0"),
    (dict(fit_threshold=0.0), "fit_threshold", "(0, 1]"),
    (dict(converge_loss=0.0), "converge_loss", "> 0"),
    (dict(model="mlp_1x512", bn_momentum=0.9), "bn_momentum",
     "no BatchNorm"),
    (dict(model="inception", bn_momentum=1.0), "bn_momentum", "[0, 1)"),
    (dict(early_stopping_patience=-1), "early_stopping_patience", ">= 0"),
    (dict(checkpoint_every_epochs=0), "checkpoint_every_epochs", ">= 1"),
    (dict(checkpoints_to_keep=0), "checkpoints_to_keep", ">= 1"),
    (dict(progress="sometimes"), "progress", "choose one of"),
    (dict(train_examples=-5), "train_examples", ">= 0"),
]


@pytest.mark.parametrize("changes,field,message", BAD_CONFIGS,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(BAD_CONFIGS)])
def test_bad_values_name_the_field(changes, field, message):
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.validate(_config(**changes), device_count=1)
  assert f"config.{field}" in str(e.value)
  assert message in str(e.value)


def test_batch_must_divide_over_devices():
  with pytest.raises(config_lib.ConfigError, match=r"config\.batch_size.*3 "
                     r"devices.*multiple of 3"):
    config_lib.validate(_config(batch_size=128), device_count=3)
  with pytest.raises(config_lib.ConfigError, match="config.eval_batch_size"):
    config_lib.validate(_config(batch_size=128, eval_batch_size=1000),
                        device_count=16)
  config_lib.validate(_config(batch_size=128, eval_batch_size=1024),
                      device_count=8)


def test_misspelt_field_is_an_error():
  c = _config()
  with pytest.raises(AttributeError):
    c.num_epoch = 3  # misspelt on purpose
  with pytest.raises(TypeError):
    c.learning_rate = "fast"


def test_config_without_every_field_is_rejected():
  c = ml_collections.ConfigDict(config_lib.base_config().to_dict())
  del c["seed"]
  with pytest.raises(config_lib.ConfigError, match="seed"):
    config_lib.validate(c, device_count=1)


def test_config_files_exist_for_every_table1_model_and_table2():
  names = {os.path.basename(p)[:-3] for p in CONFIG_FILES}
  assert set(paper.PARAM_COUNTS) <= names
  assert {"inception_v3_imagenet", "inception_v3_imagenette"} <= names


def _documented_rows(path):
  """The ':row' variants a config file's docstring shows as commands."""
  name = os.path.basename(path)
  text = _load_config_file(path).__doc__
  rows = re.findall(re.escape(name) + r"(?::([a-z_,]+))?", text)
  return sorted(set(rows))


@pytest.mark.parametrize("path", CONFIG_FILES, ids=os.path.basename)
def test_config_files_are_locked_valid_and_name_paper_rows(path):
  module = _load_config_file(path)
  doc = module.__doc__
  assert "python -m rethink_jax.train" in doc
  assert "runtime" in doc.lower()
  rows = _documented_rows(path)
  assert rows, "the docstring shows no command"
  for row in rows:
    c = module.get_config(row)
    with pytest.raises(AttributeError):
      c.learning_rte = 0.1  # misspelt on purpose
    config_lib.validate(c, device_count=1)
    if c.model == "inception_v3":
      if c.dataset == "imagenet2012":
        assert config_lib.table2_paper_row(c) is not None, row
    else:
      paper_row = config_lib.table1_paper_row(c)
      table4 = "random_labels" in row and "weight_decay" in row
      assert paper_row is not None or table4, row
  with pytest.raises(config_lib.ConfigError, match="unknown row switches"):
    module.get_config("random_crops")


def test_table1_rows_of_the_paper_all_have_a_config():
  for row in paper.TABLE1:
    switches = [s for s, on in (("random_crop", row.random_crop),
                                ("weight_decay", row.weight_decay),
                                ("random_labels", row.random_labels)) if on]
    c = config_lib.table1_config(row.model, ",".join(switches))
    assert config_lib.table1_paper_row(c) == row
    assert (c.weight_decay > 0) == row.weight_decay


def test_weight_decay_reaches_the_optimizer_and_spares_biases():
  params = {"kernel": jnp.ones((3, 2)), "bias": jnp.ones((2,))}
  grads = jax.tree_util.tree_map(jnp.zeros_like, params)
  schedule = train_state.learning_rate_schedule(0.1, 0.95, 10)
  plain = train_state.optimizer(schedule, 0.9, 0.0)
  decayed = train_state.optimizer(schedule, 0.9, 0.01)
  u_plain, _ = plain.update(grads, plain.init(params), params)
  u_decayed, _ = decayed.update(grads, decayed.init(params), params)
  np.testing.assert_array_equal(u_plain["kernel"], 0.0)
  # lambda * w scaled by -lr: the gradient of lambda/2 ||w||^2.
  np.testing.assert_allclose(u_decayed["kernel"], -0.1 * 0.01, rtol=1e-6)
  np.testing.assert_array_equal(u_decayed["bias"], 0.0)


def test_alexnet_weight_decay_is_the_tf_tutorials():
  """0.004 on the two hidden dense layers only; other models: all kernels."""
  assert config_lib.table1_config("alexnet", "weight_decay").weight_decay == (
      0.004)
  assert config_lib.table1_config("mlp_1x512", "weight_decay").weight_decay \
      == 5e-4
  model = models.create("alexnet")
  params = jax.eval_shape(lambda k: models.init(model, k, (28, 28, 3)),
                          jax.random.key(0))["params"]
  params = jax.tree_util.tree_map(lambda s: jnp.ones(s.shape), params)
  grads = jax.tree_util.tree_map(jnp.zeros_like, params)
  schedule = train_state.learning_rate_schedule(0.01, 0.95, 10)

  def decayed_layers(scope):
    tx = train_state.optimizer(schedule, 0.9, 0.004,
                               models.weight_decay_mask("alexnet", scope))
    updates, _ = tx.update(grads, tx.init(params), params)
    out = set()
    for path, u in jax.tree_util.tree_leaves_with_path(updates):
      if np.any(u != 0):
        np.testing.assert_allclose(u, -0.01 * 0.004, rtol=1e-6)
        out.add(jax.tree_util.keystr(path))
    return out

  assert decayed_layers("model") == {"['dense1']['kernel']",
                                     "['dense2']['kernel']"}
  assert decayed_layers("all_kernels") == {
      f"['{layer}']['kernel']" for layer in
      ("conv1", "conv2", "dense1", "dense2", "logits")}


def test_learning_rate_decays_per_epoch_staircase_or_continuous():
  stair = train_state.learning_rate_schedule(0.1, 0.95, 10, staircase=True)
  smooth = train_state.learning_rate_schedule(0.1, 0.95, 10, staircase=False)
  assert float(stair(9)) == pytest.approx(0.1)
  assert float(stair(10)) == pytest.approx(0.095)
  assert float(stair(25)) == pytest.approx(0.1 * 0.95**2)
  assert float(smooth(5)) == pytest.approx(0.1 * 0.95**0.5)
  assert float(smooth(10)) == pytest.approx(0.095)


def test_dropout_rate_and_dtype_reach_the_model():
  # Inception V3's own default is dropout 0.2: the config's 0 must win.
  from rethink_jax.training import train  # pylint: disable=g-import-not-at-top
  c = _config(model="inception_v3", dataset="imagenette", image_size=75,
              learning_rate=0.1)
  assert train._model(c, 10).dropout_rate == 0.0  # pylint: disable=protected-access
  assert train._model(_config(model="inception"), 10).bn_momentum == 0.99  # pylint: disable=protected-access
  c = _config(model="inception", bn_momentum=0.9)
  assert train._model(c, 10).bn_momentum == 0.9  # pylint: disable=protected-access
  c = _config(model="mlp_1x512", dropout_rate=0.3, compute_dtype="bfloat16")
  m = train._model(c, 10)  # pylint: disable=protected-access
  assert m.dropout_rate == 0.3 and m.dtype == jnp.bfloat16
  assert set(models.MODEL_NAMES) >= set(paper.PARAM_COUNTS)


@pytest.mark.parametrize("field", sorted(config_lib.base_config()))
def test_every_field_is_read_by_the_trainer(field):
  """Style pitfall 6: no config field may silently do nothing."""
  sources = ""
  for module in TRAINER_MODULES:
    with open(os.path.join(REPO, "rethink_jax", "training", module)) as f:
      sources += f.read()
  assert re.search(rf"config\.{field}\b", sources), (
      f"config.{field} is not read by any of {TRAINER_MODULES}")

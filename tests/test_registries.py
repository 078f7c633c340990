"""One registry per concept: a user's model, randomization and data set."""

from __future__ import annotations

from typing import Any

from conftest import synthetic, tiny_config
import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from rethink_jax.training import config as config_lib
from rethink_jax import corruption, data, models
from rethink_jax.training import train
from rethink_jax.corruption import registry as corruption_registry
from rethink_jax.models import registry as model_registry


class TinyNet(nn.Module):
  """A user's model: one dense layer."""

  num_classes: int = 10
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype)(
        x.reshape((x.shape[0], -1)))
    return logits.astype(jnp.float32)


def _invert(train_set, test_set, context):
  """A user's image randomization: negative training images."""
  del context
  return train_set.replace(images=255 - train_set.images), test_set, {}


def _next_class(seed, p, true_labels, num_classes, indices, role):
  """A user's label randomization: every label moved to the next class."""
  del seed, p, indices, role
  return ((true_labels + 1) % num_classes).astype(np.int32)


@pytest.fixture
def registered(monkeypatch):
  """Registers the user's model and randomizations for one test."""
  for spec in (model_registry.ModelSpec("tiny_net", TinyNet, 0.05, False,
                                        description="one dense layer"),):
    monkeypatch.setitem(model_registry.REGISTRY.entries, spec.name, spec)
  for spec in (corruption.Randomization("inverted", "255 - x",
                                        images=_invert),
               corruption.Randomization("next_class", "y + 1 mod K",
                                        labels=_next_class, p=1.0)):
    monkeypatch.setitem(corruption_registry.REGISTRY.entries, spec.name, spec)


def test_a_registered_model_trains_with_its_default_learning_rate(
    registered, tmp_path):
  config = tiny_config(model="tiny_net", randomization="inverted")
  summary = train.train_and_evaluate(config, str(tmp_path), synthetic(64),
                                     synthetic(32, seed=1, split="test"))
  assert summary["learning_rate"] == 0.05
  assert summary["param_count"] == 28 * 28 * 3 * 10 + 10
  assert summary["corruption"]["randomization"] == "inverted"
  assert summary["corruption"]["images_randomized"]


def test_a_model_without_default_learning_rate_must_be_given_one(
    monkeypatch):
  spec = model_registry.ModelSpec("no_lr", TinyNet, None, False)
  monkeypatch.setitem(model_registry.REGISTRY.entries, "no_lr", spec)
  with pytest.raises(config_lib.ConfigError, match="config.learning_rate"):
    config_lib.learning_rate(tiny_config(model="no_lr"))
  assert config_lib.learning_rate(
      tiny_config(model="no_lr", learning_rate=0.2)) == 0.2


def test_registering_a_taken_name_is_an_error():
  with pytest.raises(ValueError, match="already registered"):
    models.register(models.ModelSpec("alexnet", TinyNet, 0.1, False))
  with pytest.raises(ValueError, match="already registered"):
    corruption.register(corruption.Randomization("random_labels", "mine"))
  with pytest.raises(ValueError, match="already registered"):
    data.register("cifar10", data.DATASETS["mnist"])


def test_a_registered_label_randomization_everywhere(registered):
  train_set = synthetic(40)
  test_set = synthetic(20, seed=1, split="test")
  new_train, new_test = corruption.randomize(train_set, test_set,
                                             "next_class", seed=3)
  np.testing.assert_array_equal(new_train.labels,
                                (train_set.labels + 1) % 10)
  np.testing.assert_array_equal(new_test.labels, test_set.labels)
  assert new_train.manifest["labels_corrupted"]
  assert new_train.manifest["num_changed_labels"] == 40
  assert new_train.manifest["p"] == 1.0
  assert corruption.spec("next_class").streamable
  assert not corruption.spec("inverted").streamable
  # Config validation reads the registry, streamed data sets included.
  config_lib.validate(tiny_config(randomization="next_class"))
  with pytest.raises(config_lib.ConfigError, match="next_class"):
    config_lib.validate(tiny_config(randomization="inverted",
                                    dataset="imagenette", image_size=75,
                                    model="mlp_1x512"))


def test_unknown_names_list_the_registered_ones():
  with pytest.raises(ValueError, match="random_labels, shuffled_pixels"):
    corruption.spec("random_label")
  with pytest.raises(ValueError, match="mlp_1x512, mlp_3x512, alexnet"):
    models.create("alexnet2")


def test_a_registered_data_set_is_accepted_by_the_config(monkeypatch):
  spec = data.DatasetSpec("my_tfds_name", None, (), "", False, "test", 10,
                          None)
  monkeypatch.setitem(data.DATASETS, "my_set", spec)
  config_lib.validate(tiny_config(dataset="my_set"))
  assert not data.is_streamed("my_set") and data.is_streamed("imagenette")
  assert data.test_split("my_set") == "test"

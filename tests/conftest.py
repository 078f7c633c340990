"""Shared fixtures: the real offline data sets, prepared once per machine.

Prepared data lives in ``RETHINK_JAX_DATA_DIR`` when set (CI sets it), else in
tfds' default data_dir, so the first run on a fresh machine prepares CIFAR-10,
Fashion-MNIST and Imagenette from the offline sources (about a minute) and
later runs reuse them. The offline files must be present (``../shared/data``
beside the checkout, and Debian's ``dataset-fashion-mnist``): these tests read
real data on purpose and fail, rather than skip, when it is missing.
"""

import os

# Keep TensorFlow (used by tfds) quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
from jax.experimental.compilation_cache import compilation_cache  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rethink_jax import config as config_lib  # noqa: E402
from rethink_jax import data  # noqa: E402
from rethink_jax.dataset import from_arrays  # noqa: E402


def synthetic(n, seed=0, shape=(32, 32, 3), num_classes=10, split="train"):
  """``n`` random uint8 images and labels, through ``from_arrays``."""
  rng = np.random.default_rng(seed)
  return from_arrays(rng.integers(0, 256, (n, *shape), dtype=np.uint8),
                     rng.integers(0, num_classes, n), num_classes,
                     split=split)


def tiny_config(**changes):
  """A locked one-epoch MLP 1x512 config on passed arrays, batch 16."""
  c = config_lib.base_config()
  c.model = "mlp_1x512"
  c.dataset = "arrays"
  c.num_epochs = 1
  c.batch_size = 16
  c.eval_batch_size = 32
  c.progress = "off"
  for k, v in changes.items():
    c[k] = v
  c.lock()
  return c


@pytest.fixture(scope="module")
def persistent_compilation_cache(tmp_path_factory):
  """A persistent compilation cache for one test module (then restored).

  Modules that run the same training program many times (resume, faults)
  use it so that the program is compiled once.
  """
  names = ("jax_compilation_cache_dir",
           "jax_persistent_cache_min_compile_time_secs")
  old = {name: getattr(jax.config, name) for name in names}
  jax.config.update(names[0], str(tmp_path_factory.mktemp("jax_cache")))
  jax.config.update(names[1], 0)
  compilation_cache.reset_cache()
  yield
  for name, value in old.items():
    jax.config.update(name, value)
  compilation_cache.reset_cache()


@pytest.fixture(scope="session")
def cifar10_train():
  return data.load("cifar10", "train")


@pytest.fixture(scope="session")
def cifar10_test():
  return data.load("cifar10", "test")


@pytest.fixture(scope="session")
def fashion_mnist_train():
  return data.load("fashion_mnist", "train")


@pytest.fixture(scope="session")
def fashion_mnist_test():
  return data.load("fashion_mnist", "test")


@pytest.fixture(scope="session")
def imagenette_train():
  return data.load_stream("imagenette", "train", image_size=75)

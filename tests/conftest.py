"""Shared fixtures: the real offline data sets, prepared once per machine.

Prepared data lives in ``RETHINK_JAX_DATA_DIR`` when set, else in tfds'
default data_dir, so the first run on a fresh machine prepares CIFAR-10,
Fashion-MNIST and Imagenette from their offline files (about a minute) and
later runs reuse them. The offline files are looked for where
:mod:`rethink_jax.data` looks (``RETHINK_JAX_OFFLINE_DIR`` for CIFAR-10 and
Imagenette, ``RETHINK_JAX_FASHION_MNIST_DIR`` or Debian's
``dataset-fashion-mnist`` for Fashion-MNIST).

Tests that read real data say so (``@pytest.mark.real_data("cifar10")``, or
by using a data fixture below). Where that data is neither prepared nor
available offline they are skipped with a reason saying how to provide it,
except under CI (``CI`` set), where they must run and fail instead.
"""

import functools
import os

# Keep TensorFlow (used by tfds) quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The CLI's persistent compilation cache stays out of the home directory;
# the modules that want one use the fixture below.
os.environ.setdefault("RETHINK_JAX_COMPILATION_CACHE", "off")

import rethink_jax  # noqa: E402

# The XLA:CPU settings the entry points use, before JAX starts a backend.
rethink_jax.configure_xla_cpu()

import jax  # noqa: E402
from jax.experimental.compilation_cache import compilation_cache  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rethink_jax.training import config as config_lib  # noqa: E402
from rethink_jax import data  # noqa: E402
from rethink_jax.data.dataset import DataError, from_arrays  # noqa: E402

# Data fixtures below -> the data set each reads.
_FIXTURE_DATA = {"cifar10_train": "cifar10", "cifar10_test": "cifar10",
                 "fashion_mnist_train": "fashion_mnist",
                 "fashion_mnist_test": "fashion_mnist",
                 "imagenette_train": "imagenette"}
_HOW = {
    "cifar10": "put cifar10-jpeg.tar.gz in a folder and set "
               "RETHINK_JAX_OFFLINE_DIR to it",
    "imagenette": "put imagenette-224-jpeg.tar.gz in a folder and set "
                  "RETHINK_JAX_OFFLINE_DIR to it",
    "fashion_mnist": "install Debian's dataset-fashion-mnist, or set "
                     "RETHINK_JAX_FASHION_MNIST_DIR to a folder with the "
                     "Fashion-MNIST IDX files",
}


@functools.lru_cache(maxsize=None)
def missing_data(name: str, offline: bool = False) -> str | None:
  """Why data set ``name`` cannot be read here without a download, or None.

  ``offline``: the test reads the offline source files themselves, so a
  prepared copy is not enough.
  """
  if data.offline_source_dir(name) is not None:
    return None
  if offline:
    return (f"needs the offline source files of {name}: "
            f"{_HOW.get(name, 'they have no offline source')}.")
  try:
    data.builder(name, prepare=False)
    return None
  except DataError:
    return (f"needs {name}, which is neither prepared nor available offline "
            f"here: {_HOW.get(name, 'prepare it with tfds')} (or point "
            f"RETHINK_JAX_DATA_DIR at a tfds data_dir where it is prepared).")


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "real_data(*names, offline=False): the test reads these "
      "real data sets (offline=True: their offline source files); skipped "
      "where they are missing, except under CI")


def pytest_runtest_setup(item):
  needs = {(name, bool(marker.kwargs.get("offline")))
           for marker in item.iter_markers("real_data")
           for name in marker.args}
  needs |= {(_FIXTURE_DATA[f], False) for f in item.fixturenames
            if f in _FIXTURE_DATA}
  for name, offline in sorted(needs):
    reason = missing_data(name, offline)
    if reason is None:
      continue
    if os.environ.get("CI"):
      pytest.fail(f"CI must run every test, but this one {reason}",
                  pytrace=False)
    pytest.skip(reason)


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


@pytest.fixture(scope="session")
def _compilation_cache_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("jax_cache"))


@pytest.fixture(scope="module")
def persistent_compilation_cache(_compilation_cache_dir):
  """A persistent compilation cache for one test module (then restored).

  Modules that run the same training program many times (resume, faults,
  killed and restarted subprocesses) use it so that each program is
  compiled once per test session: the cache folder is shared by all of
  them, and the subprocesses they start inherit it through the environment.
  """
  names = ("jax_compilation_cache_dir",
           "jax_persistent_cache_min_compile_time_secs")
  old = {name: getattr(jax.config, name) for name in names}
  jax.config.update(names[0], _compilation_cache_dir)
  jax.config.update(names[1], 0)
  # The same for the subprocesses a test starts: JAX reads these variables
  # (and the command line of rethink_jax.cli keeps a configured cache).
  env = {"JAX_COMPILATION_CACHE_DIR": _compilation_cache_dir,
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
  old_env = {name: os.environ.get(name) for name in env}
  os.environ.update(env)
  compilation_cache.reset_cache()
  yield
  for name, value in old.items():
    jax.config.update(name, value)
  for name, value in old_env.items():
    if value is None:
      os.environ.pop(name, None)
    else:
      os.environ[name] = value
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

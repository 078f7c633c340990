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

import pytest  # noqa: E402

from rethink_jax import data  # noqa: E402


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

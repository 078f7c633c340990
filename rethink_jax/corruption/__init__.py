"""The randomization tests of Section 2.1, as pure functions of a PRNG key.

Zhang et al. (2017), Section 2.1, train the same models on copies of the data
set in which the labels or the images have been randomized:

* ``true_labels``: the unmodified data.
* ``partially_corrupted_labels``: each training label independently, with
  probability p, is replaced by a class drawn uniformly at random from all K
  classes (it may equal the original one, so the expected fraction of labels
  that actually change is ``(1 - 1/K) p``; 0.9p on CIFAR-10).
* ``random_labels``: the p = 1 case of the same procedure.
* ``shuffled_pixels``: one random permutation of the pixel positions, applied
  to every image of the training **and** the test set.
* ``random_pixels``: an independent random permutation for each image.
* ``gaussian``: every image is replaced by Gaussian noise whose mean and
  variance match those of the original image data set.

All randomizations are drawn once and kept fixed across epochs (Section
2.1). Here this holds by construction: everything random about example ``i``
is a function of ``jax.random.fold_in(key, i)`` only, so example ``i`` gets
the same corruption whether the data set is held in memory or streamed, in
any order, with any batching, on any number of devices, and after a resume;
calling a function twice gives bit-identical output.

Every function accepts a new-style typed key (``jax.random.key(seed)``) or a
raw ``uint32`` key (``jax.random.PRNGKey(seed)``); the two give identical
results. All functions return **numpy** arrays: the corrupted data set lives
in host memory (:class:`rethink_jax.dataset.ArrayDataset`) and is moved to the
device by the training loop. The random draws themselves run under
``jax.jit`` + ``jax.vmap`` in fixed-size chunks.

:func:`randomize` applies one named test to a train/test pair and records a
JSON-serializable manifest (hashes, versions) in both returned data sets.

The tests are looked up in one registry (:mod:`.registry`): the modules
:mod:`.labels`, :mod:`.pixels` and :mod:`.gaussian` register the paper's six,
and every other module of this package is imported (and so registers its
own), so a new randomization is one module and its test; :func:`register`
adds one from a user's code. :mod:`.draws` holds the keys and the chunked
draw engine, :mod:`.manifest` the manifests.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

# The paper's randomizations register in Section 2.1's order.
from rethink_jax.corruption import labels  # noqa: F401
from rethink_jax.corruption import pixels  # noqa: F401
from rethink_jax.corruption import gaussian  # noqa: F401
from rethink_jax.corruption import draws
from rethink_jax.corruption import manifest as manifest_lib
from rethink_jax.corruption import registry
from rethink_jax.corruption.draws import (
    KEY_STREAMS, randomization_key, sha256, train_label_key)
from rethink_jax.corruption.gaussian import (
    STATISTICS, PixelStats, check_statistics, gaussian_images, pixel_stats)
from rethink_jax.corruption.labels import check_probability, corrupt_labels
from rethink_jax.corruption.manifest import environment_manifest
from rethink_jax.corruption.pixels import (
    pixel_permutation, randomize_pixels, shuffle_pixels)
from rethink_jax.corruption.registry import (
    Context, Randomization, names, register, spec)
from rethink_jax.data.dataset import ArrayDataset

for _module in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_module.name}")

RANDOMIZATIONS: tuple[str, ...] = ("true_labels", "partially_corrupted_labels",
                                   "random_labels", "shuffled_pixels",
                                   "random_pixels", "gaussian")
"""The settings of Section 2.1 (Fig. 1), in the paper's order."""

LABEL_RANDOMIZATIONS = tuple(n for n in RANDOMIZATIONS if spec(n).labels)
"""Those that change training labels (and may change test labels)."""

PIXEL_RANDOMIZATIONS = tuple(n for n in RANDOMIZATIONS if spec(n).images)
"""Those that change images."""


def randomize(train: ArrayDataset, test: ArrayDataset, name: str, *,
              seed: int, p: float | None = None,
              statistics: str | None = None,
              corrupt_test_labels: bool = False,
              train_indices=None, test_indices=None
              ) -> tuple[ArrayDataset, ArrayDataset]:
  """Applies one randomization test of Section 2.1 to a train/test pair.

  Example::

    from rethink_jax import corruption, data
    train = data.load("cifar10", "train")
    test = data.load("cifar10", "test")
    noisy, test = corruption.randomize(
        train, test, "partially_corrupted_labels", seed=0, p=0.4)
    print(noisy.manifest["num_changed_labels"])  # about 0.9 * 0.4 * 50,000

  * ``true_labels``: nothing changes (both sets still get a manifest).
  * ``partially_corrupted_labels`` (requires ``p``) and ``random_labels``
    (p = 1): the training labels are corrupted with :func:`corrupt_labels`;
    ``labels`` holds the corrupted labels and ``true_labels`` the originals.
    Both use the same label stream, so ``random_labels`` equals
    ``partially_corrupted_labels`` at p = 1 for the same seed, and the sets of
    corrupted examples are nested across p.
  * ``shuffled_pixels``: one permutation of pixel positions, applied to the
    training **and** the test images (the paper states this explicitly).
  * ``random_pixels`` / ``gaussian``: only the training images change; the
    test images stay clean. The paper reports only the training loss for
    these two (Fig. 1a) and does not say what happens to the test set, so
    evaluating on them measures how the network does on real images.
    ``gaussian`` matches the mean and variance of the training images in
    0..255 space (``statistics``: ``"global"`` by default, or
    ``"per_channel"``).

  The test labels are never corrupted unless ``corrupt_test_labels=True``
  (the paper evaluates on the clean test labels, Fig. 1c). Every draw comes
  from ``jax.random.key(seed)`` folded with a fixed constant per kind
  (training labels, test labels, shuffled pixels, random pixels, Gaussian),
  so the streams are independent, and example ``i`` of a split uses
  ``fold_in(stream, i)``.

  Args:
    train: the clean training set.
    test: the clean test set.
    name: a registered randomization (:func:`names`; the six above are
      :data:`RANDOMIZATIONS`).
    seed: the integer seed of the randomization (one fixed draw per seed).
    p: corruption probability; required for ``partially_corrupted_labels``
      and not accepted for any other randomization.
    statistics: ``"global"`` (default) or ``"per_channel"``; only accepted
      for ``gaussian``.
    corrupt_test_labels: also corrupt the test labels, with an independent
      draw; only for ``partially_corrupted_labels`` and ``random_labels``.
      Off by default, as in the paper.
    train_indices, test_indices: the position of each example in its full
      split (default ``arange``). A subset randomized with its examples'
      original positions gets exactly the draws those examples get in the
      full split, so a run on a subset is the same experiment on fewer
      examples. (The Gaussian statistics are those of the images passed.)

  Returns:
    ``(train, test)``: new :class:`ArrayDataset` objects whose ``manifest``
    describes the randomization (name, p, seed, statistics, data set name
    and split, example count, changed labels, ``labels_sha256``,
    ``permutation_sha256``, ``images_sha256``, library and JAX versions, the
    PRNG implementation and ``jax_threefry_partitionable``).

  Raises:
    ValueError: unknown name, p missing or not allowed, statistics or
      corrupt_test_labels not allowed, a bad seed; ``DataError`` (a
      ValueError) for mismatched or already randomized data sets.
  """
  r = spec(name)
  draws.randomization_key(seed, "train_labels")  # Validates the seed.
  seed = int(seed)
  p = resolve_p(r, p)
  if statistics is not None:
    if not r.takes_statistics:
      raise ValueError(f"statistics={statistics!r} is only used by the "
                       f"gaussian randomization, not by {name}; drop it.")
    check_statistics(statistics)
  if corrupt_test_labels and not r.changes_labels:
    raise ValueError(f"corrupt_test_labels=True only applies to "
                     f"randomizations of the labels "
                     f"({', '.join(n for n in names() if spec(n).labels)}), "
                     f"not to {name}.")
  manifest_lib.check_pair(train, test)
  train_idx = draws.as_indices(train_indices, len(train), "training examples")
  test_idx = draws.as_indices(test_indices, len(test), "test examples")

  new_train, new_test = train, test
  info: dict[str, Any] = {}
  if r.labels is not None:
    assert p is not None
    new_train = train.replace(labels=r.labels(
        seed, p, train.true_labels, train.num_classes, train_idx, "train"))
    if corrupt_test_labels:
      new_test = test.replace(labels=r.labels(
          seed, p, test.true_labels, test.num_classes, test_idx, "test"))
  if r.images is not None:
    new_train, new_test, info = r.images(
        new_train, new_test,
        registry.Context(seed, statistics, train_idx, test_idx))

  common: dict[str, Any] = dict(name=name, p=p, seed=seed,
                                stats=info.get("stats"),
                                permutation=info.get("permutation"))
  new_train = new_train.replace(manifest=manifest_lib.manifest(
      new_train, "train", labels_corrupted=r.changes_labels,
      images_randomized=new_train.images is not train.images, **common))
  new_test = new_test.replace(manifest=manifest_lib.manifest(
      new_test, "test", labels_corrupted=corrupt_test_labels,
      images_randomized=new_test.images is not test.images, **common))
  return new_train, new_test


def resolve_p(r: Randomization, p: float | None) -> float | None:
  """The corruption probability ``r`` uses: the caller's (checked) or its own.

  Raises:
    ValueError: ``p`` missing where ``r`` takes one, or given where not.
  """
  if r.takes_p:
    if p is None:
      raise ValueError(f"{r.name} requires p, the corruption probability in "
                       f"[0, 1] (e.g. p=0.5).")
    return check_probability(p)
  if p is not None:
    hint = (" random_labels is p=1 already; use partially_corrupted_labels to "
            "choose p." if r.name == "random_labels" else "")
    raise ValueError(f"p={p!r} is only used by partially_corrupted_labels, "
                     f"not by {r.name}; drop it.{hint}")
  return r.p


__all__ = [
    "KEY_STREAMS", "LABEL_RANDOMIZATIONS", "PIXEL_RANDOMIZATIONS",
    "RANDOMIZATIONS", "STATISTICS", "Context", "PixelStats", "Randomization",
    "check_probability", "check_statistics", "corrupt_labels",
    "environment_manifest", "gaussian_images", "names", "pixel_permutation",
    "pixel_stats", "randomization_key", "randomize", "randomize_pixels",
    "register", "resolve_p", "sha256", "shuffle_pixels", "spec",
    "train_label_key",
]

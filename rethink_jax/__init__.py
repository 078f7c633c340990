"""rethink_jax: Zhang et al., "Understanding deep learning requires rethinking
generalization" (ICLR 2017, arXiv:1611.03530) in JAX/Flax.

Importing the package has no side effects: it sets no environment variable,
defines no command-line flag and starts no JAX backend. Its submodules load
on first use, so ``import rethink_jax`` is enough.

Example::

  import rethink_jax
  model = rethink_jax.models.create("mlp_1x512", num_classes=10)
  train = rethink_jax.data.load("cifar10", "train")
  test = rethink_jax.data.load("cifar10", "test")
  train, test = rethink_jax.corruption.randomize(
      train, test, "random_labels", seed=0)

Subpackages, in the order data flows:

- ``data``: the data set registry and tfds loading; ``data.dataset`` (the
  in-memory ``ArrayDataset``), ``data.sources`` (offline builders),
  ``data.streaming`` (data too large for memory), ``data.preprocessing``
  (the Appendix A pipeline).
- ``corruption``: the randomization tests of Section 2.1 and their registry.
- ``models``: the models of Table 1 and Inception V3, and their registry.
- ``training``: the protocol of Section 3: ``config``, ``train`` (the
  loop), ``steps``, ``train_state``, ``inputs``, ``checkpoint``,
  ``metrics``, ``event_file``, ``workdir``.
- ``experiments``: the paper's tables and figures as sweeps, and the report.
- ``theory``: Sections 2.2, 4 and 5 (Theorem 1, min-norm and kernel
  interpolation, Rademacher complexity).
- ``paper``: the numbers the paper reports; ``cli``: the command line.

The modules of ``data`` and ``training`` are also reachable by their short
names (``rethink_jax.train`` is ``rethink_jax.training.train``,
``rethink_jax.dataset`` is ``rethink_jax.data.dataset``, ...): the same
module objects, for ``from rethink_jax import config, train`` and
``python -m rethink_jax.train``.

On CPU, call :func:`configure_xla_cpu` before the first JAX computation for
the convolution settings we measured to be fastest (the command-line entry
points do).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from typing import Any, Sequence

__version__ = "0.1.0"

# Short name -> the module it is.
_SHORT_NAMES = {
    **{name: f"{__name__}.data.{name}" for name in
       ("dataset", "preprocessing", "sources", "streaming")},
    **{name: f"{__name__}.training.{name}" for name in
       ("checkpoint", "config", "event_file", "example_log", "inputs",
        "metrics", "steps", "train", "train_state", "workdir")},
}
_SUBMODULES = ("cli", "corruption", "data", "dynamics", "experiments",
               "models", "paper", "theory", "training", *_SHORT_NAMES)

__all__ = ["CPU_XLA_FLAGS", "configure_xla_cpu", "uses_accelerator",
           "__version__",
           *_SUBMODULES]

# XLA:CPU hands convolutions to YNNPACK by default; on the 2-core x86 machines
# we measured, XLA's own (Eigen) convolutions train the small Inception twice
# as fast (docs/benchmarks.md). Only the CPU backend reads it.
CPU_XLA_FLAGS = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
# Set only for the jaxlib minor version it was measured with: XLA aborts the
# process on a flag it does not know.
_CPU_XLA_FLAGS_JAXLIB = "0.10."


def configure_xla_cpu() -> bool:
  """Adds :data:`CPU_XLA_FLAGS` to ``XLA_FLAGS`` for this process.

  Call it before the first JAX computation: XLA reads ``XLA_FLAGS`` once,
  when JAX starts its backends. A setting of the same flag already in
  ``XLA_FLAGS`` wins, and nothing is set for a jaxlib other than the one the
  flag was measured with, or where JAX will compute on an accelerator
  (:func:`uses_accelerator`). ``python -m rethink_jax.train``, the
  ``rethink-jax`` command and the scripts in ``experiments/`` call it.

  Example::

    import rethink_jax
    rethink_jax.configure_xla_cpu()
    import jax  # the first computation now uses the measured flag

  Returns:
    Whether the flag is now in ``XLA_FLAGS``.
  """
  try:
    from jaxlib import version  # pylint: disable=import-outside-toplevel
  except ImportError:
    return False
  flags = os.environ.get("XLA_FLAGS", "")
  name = CPU_XLA_FLAGS.split("=", 1)[0]
  if name in flags:
    return CPU_XLA_FLAGS in flags
  if (not version.__version__.startswith(_CPU_XLA_FLAGS_JAXLIB)
      or uses_accelerator()):
    return False
  os.environ["XLA_FLAGS"] = f"{flags} {CPU_XLA_FLAGS}".strip()
  return True


# PJRT plugins of the accelerators and the device files their drivers make.
_ACCELERATORS = (
    (("jax_cuda12_plugin", "jax_cuda13_plugin"), ("/dev/nvidia0",)),
    (("libtpu",), ("/dev/accel0", "/dev/vfio/0")),
    (("jax_rocm6_plugin", "jax_rocm7_plugin"), ("/dev/kfd",)),
)


def uses_accelerator() -> bool:
  """Whether JAX will compute on a GPU or TPU here, decided without
  starting JAX (whose backends read ``XLA_FLAGS`` once): the first platform
  of ``JAX_PLATFORMS`` when set, else an installed accelerator plugin whose
  device is present."""
  platforms = os.environ.get("JAX_PLATFORMS", "").strip()
  if platforms:
    return platforms.split(",")[0].strip() != "cpu"
  return any(any(importlib.util.find_spec(m) is not None for m in modules)
             and any(os.path.exists(d) for d in devices)
             for modules, devices in _ACCELERATORS)


class _ShortNameLoader(importlib.abc.Loader):
  """Loads ``rethink_jax.<short>`` as the module it names (one object)."""

  def __init__(self, target: str):
    self.target = target

  def create_module(self, spec: importlib.machinery.ModuleSpec
                    ) -> types.ModuleType:
    module = importlib.import_module(self.target)
    self._spec = module.__spec__
    return module

  def exec_module(self, module: types.ModuleType) -> None:
    module.__spec__ = self._spec  # the import system set the alias's spec

  def get_code(self, fullname: str) -> Any:
    """The target's code, so that ``python -m rethink_jax.train`` runs."""
    del fullname
    spec = importlib.util.find_spec(self.target)
    assert spec is not None and isinstance(spec.loader,
                                           importlib.abc.InspectLoader)
    return spec.loader.get_code(self.target)


class _ShortNameFinder(importlib.abc.MetaPathFinder):
  """Finds ``rethink_jax.<short>`` for the names of :data:`_SHORT_NAMES`."""

  def find_spec(self, fullname: str, path: Sequence[str] | None,
                target: types.ModuleType | None = None
                ) -> importlib.machinery.ModuleSpec | None:
    del path, target
    parent, _, name = fullname.rpartition(".")
    if parent != __name__ or name not in _SHORT_NAMES:
      return None
    real = importlib.util.find_spec(_SHORT_NAMES[name])
    return importlib.util.spec_from_loader(
        fullname, _ShortNameLoader(_SHORT_NAMES[name]),
        origin=None if real is None else real.origin)


if not any(isinstance(f, _ShortNameFinder) for f in sys.meta_path):
  sys.meta_path.append(_ShortNameFinder())


def __getattr__(name: str) -> Any:
  """Imports a submodule on first access (``rethink_jax.models`` etc.)."""
  if name in _SUBMODULES:
    module = importlib.import_module(f"{__name__}.{name}")
    globals()[name] = module
    return module
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(__all__))

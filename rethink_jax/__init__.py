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

Submodules:

- ``data``: tfds data sets and the offline sources; ``dataset``: the
  in-memory ``ArrayDataset``; ``streaming``: tfds-backed data too large for
  memory; ``preprocessing``: the Appendix A pipeline.
- ``corruption``: the randomization tests of Section 2.1.
- ``models``: the models of Table 1 and Inception V3 (Section 3).
- ``config``, ``train``, ``steps``, ``train_state``, ``checkpoint``,
  ``metrics``, ``workdir``, ``inputs``: the training protocol of Section 3.
- ``experiments``: the paper's tables and figures as sweeps.
- ``theory``: Sections 2.2, 4 and 5 (Theorem 1, min-norm and kernel
  interpolation, Rademacher complexity).
- ``paper``: the numbers the paper reports.

On CPU, call :func:`configure_xla_cpu` before the first JAX computation for
the convolution settings we measured to be fastest (the command-line entry
points do).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "checkpoint", "config", "corruption", "data", "dataset", "experiments",
    "inputs", "metrics", "models", "paper", "preprocessing", "sources",
    "steps", "streaming", "theory", "train", "train_state", "workdir")

__all__ = ["CPU_XLA_FLAGS", "configure_xla_cpu", "__version__",
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
  flag was measured with. ``python -m rethink_jax.train``, the
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
  if not version.__version__.startswith(_CPU_XLA_FLAGS_JAXLIB):
    return False
  os.environ["XLA_FLAGS"] = f"{flags} {CPU_XLA_FLAGS}".strip()
  return True


def __getattr__(name: str) -> Any:
  """Imports a submodule on first access (``rethink_jax.models`` etc.)."""
  if name in _SUBMODULES:
    module = importlib.import_module(f"{__name__}.{name}")
    globals()[name] = module
    return module
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(__all__))

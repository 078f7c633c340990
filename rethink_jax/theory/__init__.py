"""The paper's theory sections, made executable.

* :mod:`~rethink_jax.theory.expressivity`: Section 4, Theorem 1 (a two-layer
  ReLU network with 2n + d weights fits any labels of n points in d
  dimensions) and Lemma 1 (its lower-triangular system).
* :mod:`~rethink_jax.theory.min_norm`: Section 5, SGD on least squares from
  zero stays in the span of the data and finds the minimum-norm solution.
* :mod:`~rethink_jax.theory.kernels`: Section 5, the kernel trick applied to
  Eq. 3 (Gaussian-kernel interpolation of one-hot labels, at full MNIST-like
  scale).
* :mod:`~rethink_jax.theory.rademacher`: Section 2.2, empirical Rademacher
  complexity estimated by fitting random +-1 labels.

:func:`run_metadata` is the provenance block every ``experiments/`` theory
script writes into its results file.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import shlex
import sys

from rethink_jax.theory.expressivity import Conditioning
from rethink_jax.theory.expressivity import fit_two_layer
from rethink_jax.theory.expressivity import TwoLayerInterpolant
from rethink_jax.theory.expressivity import TwoLayerReLU
from rethink_jax.theory.kernels import kernel_interpolate
from rethink_jax.theory.kernels import kernel_matmul
from rethink_jax.theory.kernels import KernelInterpolant
from rethink_jax.theory.kernels import median_heuristic_gamma
from rethink_jax.theory.kernels import predict
from rethink_jax.theory.kernels import rbf_kernel
from rethink_jax.theory.kernels import rkhs_norm
from rethink_jax.theory.min_norm import min_norm_solution
from rethink_jax.theory.min_norm import sgd_least_squares
from rethink_jax.theory.rademacher import least_squares_correlation
from rethink_jax.theory.rademacher import network_correlation
from rethink_jax.theory.rademacher import rademacher_signs

__all__ = [
    "Conditioning", "KernelInterpolant", "TwoLayerInterpolant",
    "TwoLayerReLU", "fit_two_layer", "kernel_interpolate", "kernel_matmul",
    "least_squares_correlation", "median_heuristic_gamma", "min_norm_solution",
    "network_correlation", "peak_memory_gib", "predict", "rademacher_signs",
    "rbf_kernel", "rkhs_norm", "run_metadata", "sgd_least_squares",
]


def run_metadata(argv: list[str] | None = None) -> dict:
  """The command, time, machine and library versions of a run.

  Args:
    argv: the command line (defaults to ``sys.argv``).

  Returns:
    A JSON-serializable dict: ``command`` (as typed, ``python`` first),
    ``utc_time``, ``machine`` and ``versions``.
  """
  import jax
  import numpy as np
  import scipy

  argv = sys.argv if argv is None else argv
  try:
    import flax
    flax_version = flax.__version__
  except ImportError:  # pragma: no cover - flax is a dependency.
    flax_version = None
  return {
      "command": "python " + shlex.join(argv),
      "utc_time": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "machine": {
          "platform": platform.platform(),
          "processor": platform.processor() or platform.machine(),
          "cpu_count": os.cpu_count(),
          "memory_gib": _memory_gib(),
      },
      "versions": {
          "python": platform.python_version(),
          "numpy": np.__version__,
          "scipy": scipy.__version__,
          "jax": jax.__version__,
          "flax": flax_version,
      },
  }


def peak_memory_gib() -> float:
  """Peak resident memory of this process so far, in GiB (Linux ru_maxrss)."""
  import resource
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _memory_gib() -> float | None:
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemTotal:"):
          return round(int(line.split()[1]) / 2**20, 1)
  except OSError:
    return None
  return None


def write_results(path, result: dict) -> pathlib.Path:
  """Writes one experiment's results as JSON (creating folders); returns path."""
  out = pathlib.Path(path)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(result, indent=2) + "\n")
  print(f"wrote {out}")
  return out

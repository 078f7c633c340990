"""The paper's theory sections, made executable.

* :mod:`~rethink_jax.theory.expressivity`: Section 4, Theorem 1 (a two-layer
  ReLU network with 2n + d weights fits any labels of n points in d
  dimensions), Lemma 1 (its lower-triangular system) and the depth-k form
  (width O(n/k)).
* :mod:`~rethink_jax.theory.min_norm`: Section 5, SGD on least squares from
  zero stays in the span of the data and finds the minimum-norm solution.
* :mod:`~rethink_jax.theory.kernels`: Section 5, the kernel trick applied to
  Eq. 3 (Gaussian-kernel interpolation of one-hot labels, at full MNIST-like
  scale), and Gram matrices accumulated block by block over features.
* :mod:`~rethink_jax.theory.features`: Section 5's feature maps (pixel
  preprocessing, Gabor wavelets, a random convolutional network).
* :mod:`~rethink_jax.theory.rademacher`: Section 2.2, empirical Rademacher
  complexity estimated by fitting random +-1 labels.

The ``experiments/`` theory scripts write their results files with
:func:`rethink_jax.results.write` and :func:`rethink_jax.results.provenance`.
"""

from __future__ import annotations

from rethink_jax.theory.expressivity import Conditioning
from rethink_jax.theory.expressivity import DeepInterpolant
from rethink_jax.theory.expressivity import DeepReLU
from rethink_jax.theory.expressivity import fit_deep
from rethink_jax.theory.expressivity import fit_two_layer
from rethink_jax.theory.expressivity import TwoLayerInterpolant
from rethink_jax.theory.expressivity import TwoLayerReLU
from rethink_jax.theory.features import gabor_features
from rethink_jax.theory.features import preprocess
from rethink_jax.theory.features import RandomConvNet
from rethink_jax.theory.kernels import GramAccumulator
from rethink_jax.theory.kernels import kernel_interpolate
from rethink_jax.theory.kernels import kernel_matmul
from rethink_jax.theory.kernels import KernelInterpolant
from rethink_jax.theory.kernels import median_heuristic_gamma
from rethink_jax.theory.kernels import predict
from rethink_jax.theory.kernels import rbf_kernel
from rethink_jax.theory.kernels import rkhs_norm
from rethink_jax.theory.kernels import solve_kernel_matrix
from rethink_jax.theory.min_norm import min_norm_solution
from rethink_jax.theory.min_norm import sgd_least_squares
from rethink_jax.theory.rademacher import least_squares_correlation
from rethink_jax.theory.rademacher import network_correlation
from rethink_jax.theory.rademacher import rademacher_signs

__all__ = [
    "Conditioning", "DeepInterpolant", "DeepReLU", "GramAccumulator",
    "KernelInterpolant", "RandomConvNet", "TwoLayerInterpolant",
    "TwoLayerReLU", "fit_deep", "fit_two_layer", "gabor_features",
    "kernel_interpolate", "kernel_matmul", "preprocess",
    "solve_kernel_matrix",
    "least_squares_correlation", "median_heuristic_gamma", "min_norm_solution",
    "network_correlation", "peak_memory_gib", "predict", "rademacher_signs",
    "rbf_kernel", "rkhs_norm", "sgd_least_squares",
]


def peak_memory_gib() -> float:
  """Peak resident memory of this process so far, in GiB (Linux ru_maxrss)."""
  import resource
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

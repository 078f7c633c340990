"""Kernel interpolation: the kernel trick applied to Eq. 3 (paper Section 5).

Section 5 argues that SGD from zero on a linear model stays in the span of
the data, ``w = X^T alpha``, so exact interpolation reduces to the n x n
system ``X X^T alpha = y`` (Eq. 3). With a Gaussian kernel in place of the
linear Gram matrix (what the paper's MNIST and CIFAR-10 numbers actually use,
Section 5) this is

    K alpha = Y,   K_ij = exp(-gamma ||x_i - x_j||^2),

solved for one-hot targets ``Y``; a test point is classified by
``argmax_c (k(x, X) alpha)_c``.

The paper solved the 60,000-point MNIST system in float64 on a 256 GB
workstation. Here the kernel matrix is stored in float32 (14.4 GB for 60,000
points), factored in place by a tiled Cholesky, and the float32 factor is
then used as the preconditioner of a conjugate-gradient refinement whose
residuals ``Y - K alpha`` are accumulated in float64, so the computed
``alpha`` solves the system to float64 accuracy, not float32.

In-place factorization keeps one copy of the matrix: the factor L overwrites
the lower triangle (and diagonal) of the C-ordered matrix, and the strict
upper triangle still holds ``K`` (whose diagonal is known: 1 for a Gaussian
kernel), which the refinement can read. The factorization is tiled
(left-looking, ``tile`` columns at a time, the updates as numpy matrix
products, LAPACK only on ``tile``-sized blocks) because one LAPACK ``potrf``
call (``scipy.linalg.cho_factor``) on the whole 60,000 x 60,000 float32
matrix crashed here with a segmentation fault inside scipy's bundled
OpenBLAS; 32-bit index arithmetic (60,000^2 > 2^31) is the likely cause.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import time
from typing import Callable

import numpy as np
import scipy.linalg


def median_heuristic_gamma(points, *, num_pairs: int = 100_000,
                           seed: int = 0) -> float:
  """``1 / median ||x_i - x_j||^2`` over random pairs (the median heuristic).

  The paper does not give its CIFAR-10 Gaussian-kernel bandwidth (Section
  5); this is the documented rule the experiments use instead.

  Args:
    points: ``(n, d)`` array.
    num_pairs: number of random pairs ``i != j`` to take the median over.
    seed: seed of the numpy generator that draws the pairs.

  Returns:
    gamma such that ``exp(-gamma d^2)`` is ``exp(-1)`` at the median squared
    distance.
  """
  points = np.asarray(points, np.float64)
  n = points.shape[0]
  if n < 2:
    raise ValueError(f"need at least 2 points for the median heuristic; got "
                     f"{n}.")
  rng = np.random.default_rng(seed)
  i = rng.integers(0, n, num_pairs)
  j = (i + rng.integers(1, n, num_pairs)) % n
  sq = np.empty(num_pairs)
  for s in range(0, num_pairs, 4096):
    diff = points[i[s:s + 4096]] - points[j[s:s + 4096]]
    sq[s:s + 4096] = np.einsum("ij,ij->i", diff, diff)
  return float(1.0 / np.median(sq))


def _squared_norms(points: np.ndarray) -> np.ndarray:
  return np.einsum("ij,ij->i", points, points)


def _rbf_block(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray,
               b_sq: np.ndarray, gamma: float) -> np.ndarray:
  """``exp(-gamma ||a_i - b_j||^2)`` in the dtype of ``a`` (one block)."""
  block = a @ b.T
  block *= -2.0
  block += a_sq[:, None]
  block += b_sq[None, :]
  np.maximum(block, 0.0, out=block)
  block *= -gamma
  np.exp(block, out=block)
  return block


def _prepare_points(points, center, compute_dtype) -> np.ndarray:
  # Distances do not depend on the origin; subtracting a common centre makes
  # the ||a||^2 + ||b||^2 - 2 a.b expansion lose fewer digits.
  return np.asarray(points, compute_dtype) - center


def rbf_kernel(points, other=None, gamma: float = 1.0, *,
               block_size: int = 1024, dtype=np.float32,
               compute_dtype=np.float64, out: np.ndarray | None = None
               ) -> np.ndarray:
  """The Gaussian (RBF) kernel matrix ``exp(-gamma ||x - z||^2)``, blocked.

  Rows are computed ``block_size`` at a time in ``compute_dtype`` (float64 by
  default, so the only error in a float32 result is the final rounding) and
  stored in ``dtype``. For the symmetric case (``other`` is None) only the
  lower triangle is computed and then mirrored, and the diagonal is exactly 1.

  Args:
    points: ``(n, d)`` array.
    other: ``(m, d)`` array, or None for ``other = points``.
    gamma: bandwidth, ``K = exp(-gamma ||x - z||^2)``.
    block_size: number of rows computed at once.
    dtype: storage dtype of the result.
    compute_dtype: dtype of the distance computation.
    out: optional preallocated C-contiguous ``(n, m)`` array of ``dtype``.

  Returns:
    The ``(n, m)`` kernel matrix (``out`` if it was given).
  """
  points = np.asarray(points)
  symmetric = other is None
  center = np.mean(points, axis=0, dtype=np.float64).astype(compute_dtype)
  a = _prepare_points(points, center, compute_dtype)
  b = a if symmetric else _prepare_points(other, center, compute_dtype)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
    raise ValueError(f"points must be (n, d) and (m, d) arrays; got "
                     f"{a.shape} and {b.shape}.")
  n, m = a.shape[0], b.shape[0]
  if out is None:
    out = np.empty((n, m), dtype)
  elif out.shape != (n, m) or not out.flags.c_contiguous:
    raise ValueError(f"out must be a C-contiguous ({n}, {m}) array; got "
                     f"shape {out.shape}.")
  a_sq = _squared_norms(a)
  b_sq = a_sq if symmetric else _squared_norms(b)
  for r0 in range(0, n, block_size):
    r1 = min(n, r0 + block_size)
    if symmetric:
      block = _rbf_block(a[r0:r1], a_sq[r0:r1], a[:r1], a_sq[:r1], gamma)
      block[:, r0:r1][np.diag_indices(r1 - r0)] = 1.0
      out[r0:r1, :r1] = block
      out[:r0, r0:r1] = block[:, :r0].T
    else:
      out[r0:r1] = _rbf_block(a[r0:r1], a_sq[r0:r1], b, b_sq, gamma)
  if symmetric:
    # The diagonal blocks were written in full; mirror their lower halves.
    for r0 in range(0, n, block_size):
      r1 = min(n, r0 + block_size)
      diag = out[r0:r1, r0:r1]
      upper = np.triu_indices(r1 - r0, 1)
      diag[upper] = diag.T[upper]
  return out


@dataclasses.dataclass
class SolveReport:
  """How a kernel system was solved and how well.

  Attributes:
    num_points: n.
    num_outputs: number of right-hand sides (classes, possibly several label
      sets stacked).
    dtype: storage dtype of the kernel matrix and its Cholesky factor.
    ridge: lambda in ``(K + lambda I) alpha = Y``.
    residuals: how the refinement computed ``K v`` (``"recomputed"`` in
      float64 or from the ``"stored"`` matrix).
    preconditioner_shift: delta of the factored ``K + (ridge + delta) I``.
    kernel_bytes: bytes of the one stored n x n matrix.
    kernel_seconds: time to compute the kernel matrix (all attempts).
    factor_seconds: time of the in-place Cholesky factorization (all
      attempts).
    refine_seconds: time of the preconditioned-CG refinement.
    refine_iterations: CG iterations taken.
    residual_history: max-abs residual ``|Y - (K + lambda I) alpha|`` after
      the direct solve and after each CG iteration (float64 arithmetic, with
      ``K`` as chosen by ``residuals``).
    max_abs_residual: the final max-abs residual.
    converged: whether the residual reached the tolerance.
  """

  num_points: int
  num_outputs: int
  dtype: str
  ridge: float
  residuals: str
  preconditioner_shift: float
  kernel_bytes: int
  kernel_seconds: float
  factor_seconds: float
  refine_seconds: float
  refine_iterations: int
  residual_history: list[float]
  max_abs_residual: float
  converged: bool


@dataclasses.dataclass
class KernelInterpolant:
  """``f(x) = k(x, X) alpha`` with ``(K + ridge I) alpha = Y`` (Eq. 3).

  Attributes:
    train_points: ``(n, d)`` float64 training inputs (the kernel centres).
    alpha: ``(n, k)`` float64 coefficients.
    gamma: Gaussian kernel bandwidth.
    ridge: ridge lambda (0 for the paper's exact interpolation).
    train_scores: ``(n, k)`` ``K alpha``, the interpolant at the training
      points (equal to the targets up to ``report.max_abs_residual`` when
      ``ridge = 0``).
    rkhs_norm_squared: ``(k,)`` per-column ``alpha_c^T K alpha_c``; the RKHS
      norm is ``sqrt`` of their sum (see :func:`rkhs_norm`).
    report: how the system was solved.
  """

  train_points: np.ndarray
  alpha: np.ndarray
  gamma: float
  ridge: float
  train_scores: np.ndarray
  rkhs_norm_squared: np.ndarray
  report: SolveReport

  def predict(self, points, *, block_size: int = 1024) -> np.ndarray:
    """Scores ``k(points, X) alpha``, shape ``(m, k)``; see :func:`predict`."""
    return predict(self, points, block_size=block_size)

  def rkhs_norm(self, columns=None) -> float:
    """``sqrt(trace(alpha^T K alpha))`` over the given output columns."""
    sq = self.rkhs_norm_squared
    return float(np.sqrt(np.sum(sq if columns is None else sq[columns])))


def _stored_matmul(stored: np.ndarray, diag_value: float,
                   block_size: int) -> Callable[[np.ndarray], np.ndarray]:
  """``V -> K V`` from the strict upper triangle of ``stored`` (float64).

  After :func:`cholesky_in_place` the strict upper triangle of the C-ordered
  ``stored`` still holds ``K``, whose diagonal is ``diag_value`` (1 + ridge
  for a Gaussian kernel).
  """
  n = stored.shape[0]

  def matmul(v: np.ndarray) -> np.ndarray:
    out = diag_value * v
    for r0 in range(0, n, block_size):
      r1 = min(n, r0 + block_size)
      block = stored[r0:r1, r0:].astype(np.float64)
      block[:, :r1 - r0][np.tril_indices(r1 - r0)] = 0.0
      out[r0:r1] += block @ v[r0:]
      out[r0:] += block.T @ v[r0:r1]
    return out

  return matmul


def cholesky_in_place(matrix: np.ndarray, *, tile: int = 2048) -> None:
  """Overwrites the lower triangle of ``matrix`` with its Cholesky factor.

  Left-looking tiled algorithm on a C-contiguous symmetric positive definite
  ``matrix``: for each block of ``tile`` columns, the columns are updated by
  one matrix product with the factor computed so far, the diagonal tile is
  factored by LAPACK and the rows below it by a triangular solve. Only the
  lower triangle (diagonal included) is written; the strict upper triangle
  keeps the input. Extra memory: about ``2 n tile`` entries.

  Args:
    matrix: ``(n, n)`` C-contiguous float32 or float64 array; both triangles
      must hold the matrix on entry.
    tile: columns per block.

  Raises:
    numpy.linalg.LinAlgError: the matrix is not numerically positive
      definite.
  """
  n = matrix.shape[0]
  if matrix.shape != (n, n) or not matrix.flags.c_contiguous:
    raise ValueError(f"matrix must be a C-contiguous square array; got shape "
                     f"{matrix.shape}.")
  for k0 in range(0, n, tile):
    k1 = min(n, k0 + tile)
    panel = matrix[k0:, k0:k1].copy()
    if k0:
      panel -= matrix[k0:, :k0] @ matrix[k0:k1, :k0].T
    try:
      diag = scipy.linalg.cholesky(panel[:k1 - k0], lower=True,
                                   check_finite=False)
    except np.linalg.LinAlgError as e:
      raise np.linalg.LinAlgError(
          f"the matrix is not positive definite in {matrix.dtype} (failed in "
          f"columns {k0}:{k1}): {e}") from e
    lower = np.tril_indices(k1 - k0)
    matrix[k0:k1, k0:k1][lower] = diag[lower]
    if k1 < n:
      matrix[k1:, k0:k1] = scipy.linalg.solve_triangular(
          diag, panel[k1 - k0:].T, lower=True, check_finite=False).T


def cholesky_solve(matrix: np.ndarray, rhs: np.ndarray, *,
                   tile: int = 2048) -> np.ndarray:
  """Solves ``L L^T x = rhs`` with L in the lower triangle of ``matrix``.

  Args:
    matrix: the output of :func:`cholesky_in_place` (same ``tile``).
    rhs: ``(n,)`` or ``(n, k)`` right-hand sides.
    tile: the tile size used for the factorization.

  Returns:
    ``x`` in the dtype of ``matrix``.
  """
  n = matrix.shape[0]
  x = np.array(rhs, dtype=matrix.dtype, copy=True)
  starts = list(range(0, n, tile))
  diags = [np.tril(matrix[k0:min(n, k0 + tile), k0:min(n, k0 + tile)])
           for k0 in starts]
  for k0, diag in zip(starts, diags):
    k1 = min(n, k0 + tile)
    if k0:
      x[k0:k1] -= matrix[k0:k1, :k0] @ x[:k0]
    x[k0:k1] = scipy.linalg.solve_triangular(diag, x[k0:k1], lower=True,
                                              check_finite=False)
  for k0, diag in reversed(list(zip(starts, diags))):
    k1 = min(n, k0 + tile)
    if k1 < n:
      x[k0:k1] -= matrix[k1:, k0:k1].T @ x[k1:]
    x[k0:k1] = scipy.linalg.solve_triangular(diag, x[k0:k1], lower=True,
                                              trans="T", check_finite=False)
  return x


def _recomputed_matmul(points: np.ndarray, gamma: float, diag_value: float,
                       block_size: int) -> Callable[[np.ndarray], np.ndarray]:
  """``V -> K V`` with the kernel recomputed blockwise in float64.

  Each block of the strict lower triangle is used for both its product and
  its transpose's, so the operator is exactly symmetric.
  """
  a = points - points.mean(axis=0)
  a_sq = _squared_norms(a)
  n = a.shape[0]

  def matmul(v: np.ndarray) -> np.ndarray:
    out = diag_value * v
    for r0 in range(0, n, block_size):
      r1 = min(n, r0 + block_size)
      block = _rbf_block(a[r0:r1], a_sq[r0:r1], a[:r1], a_sq[:r1], gamma)
      block[:, r0:r1][np.triu_indices(r1 - r0)] = 0.0
      out[r0:r1] += block @ v[:r1]
      out[:r1] += block.T @ v[r0:r1]
    return out

  return matmul


def kernel_matmul(points, gamma: float, vectors, *,
                  block_size: int = 1024) -> np.ndarray:
  """``K V`` for the Gaussian kernel on ``points``, recomputed in float64.

  Costs one pass over the lower triangle (``n^2 d`` flops) and
  ``O(block_size n)`` memory, so it checks an interpolant at all n training
  points without storing ``K``.

  Args:
    points: ``(n, d)`` inputs.
    gamma: kernel bandwidth.
    vectors: ``(n,)`` or ``(n, k)``.
    block_size: rows per block.

  Returns:
    ``K @ vectors`` in float64, same shape as ``vectors``.
  """
  points = np.asarray(points, np.float64)
  vectors = np.asarray(vectors, np.float64)
  flat = vectors.ndim == 1
  out = _recomputed_matmul(points, gamma, 1.0, block_size)(
      vectors[:, None] if flat else vectors)
  return out[:, 0] if flat else out


def _preconditioned_cg(matmul, precondition, rhs: np.ndarray,
                       start: np.ndarray, *, tol: float, max_iterations: int
                       ) -> tuple[np.ndarray, np.ndarray, list[float], bool]:
  """Column-wise preconditioned conjugate gradients for ``A X = rhs``.

  Returns:
    ``(x, A x, max-abs residual history, converged)``; the last history
    entry and ``A x`` come from a fresh product, not the recursion.
  """
  x = start.copy()
  residual = rhs - matmul(x)
  scale = max(float(np.max(np.abs(rhs))), np.finfo(float).tiny)
  history = [float(np.max(np.abs(residual)))]
  iterations = 0
  while history[-1] > tol * scale and iterations < max_iterations:
    if iterations == 0:
      z = precondition(residual)
      direction = z.copy()
      rz = np.sum(residual * z, axis=0)
    else:
      z = precondition(residual)
      rz_new = np.sum(residual * z, axis=0)
      beta = np.divide(rz_new, rz, out=np.zeros_like(rz), where=rz > 0)
      direction = z + beta * direction
      rz = rz_new
    product = matmul(direction)
    curvature = np.sum(direction * product, axis=0)
    step = np.divide(rz, curvature, out=np.zeros_like(rz),
                     where=curvature > 0)
    x += step * direction
    residual -= step * product
    history.append(float(np.max(np.abs(residual))))
    iterations += 1
  if iterations:
    # The recursively updated residual drifts; report the true one.
    residual = rhs - matmul(x)
    history[-1] = float(np.max(np.abs(residual)))
  return x, rhs - residual, history, history[-1] <= tol * scale


def kernel_interpolate(points, targets, gamma: float, *, ridge: float = 0.0,
                       dtype=np.float32, block_size: int = 1024,
                       residuals: str = "recomputed",
                       preconditioner_shift: float = 0.0, tile: int = 2048,
                       tol: float = 1e-9,
                       max_iterations: int = 50,
                       log: Callable[[str], None] | None = None
                       ) -> KernelInterpolant:
  """Solves ``(K + ridge I) alpha = Y`` for a Gaussian kernel (Section 5).

  With ``ridge = 0`` this is the paper's Eq. 3 with the kernel trick: the
  minimum-RKHS-norm function that interpolates the targets exactly. A
  positive ``ridge`` is the l2-regularized variant the paper reports "does
  not improve" MNIST.

  Steps: (1) the kernel matrix is computed once, stored in ``dtype``
  (float32 halves the memory: 14.4 GB at n = 60,000); (2) it is
  Cholesky-factored in place (:func:`cholesky_in_place`), no second copy;
  (3) the factor's solve gives a first ``alpha``, which conjugate gradients
  preconditioned by that factor refine with float64 residuals until
  ``max|Y - (K + ridge I) alpha| <= tol * max|Y|``.

  Args:
    points: ``(n, d)`` training inputs (already scaled, e.g. pixels / 255).
    targets: ``(n, k)`` targets (one-hot labels; several label sets may be
      stacked as extra columns, they share the factorization).
    gamma: bandwidth of ``K = exp(-gamma ||x - x'||^2)``.
    ridge: lambda >= 0 added to the diagonal.
    dtype: storage dtype of the kernel matrix and factor (float32 or
      float64).
    block_size: rows per block when computing and multiplying by ``K``.
    residuals: ``"recomputed"``: the refinement's products ``K v`` recompute
      the kernel in float64 block by block, so ``alpha`` interpolates with the
      exact kernel (one n x n x d pass per iteration); ``"stored"``: they read
      the triangle the factorization left intact, so ``alpha`` solves the
      rounded (float32) matrix to float64 accuracy (cheaper).
    preconditioner_shift: delta >= 0 added to the diagonal of the matrix
      that is factored, so the factor is that of ``K + (ridge + delta) I``;
      it only preconditions CG, which still solves the unshifted system
      (convergence needs about ``sqrt(1 + delta / lambda_min(K))`` times more
      iterations). If the factorization fails in ``dtype``, the kernel is
      recomputed and the shift raised (to 1e-6, then x10, three times).
    tile: column block of the tiled in-place Cholesky.
    tol: relative max-abs residual at which the refinement stops.
    max_iterations: maximum CG iterations.
    log: optional callable receiving progress lines.

  Returns:
    A :class:`KernelInterpolant` whose ``report`` has the timings and the
    residual history.

  Raises:
    ValueError: bad shapes, a negative ridge or an unknown ``residuals``.
    numpy.linalg.LinAlgError: the stored matrix is not numerically positive
      definite in ``dtype`` (duplicate points, or too small a gamma for
      float32); use a positive ridge or ``dtype=np.float64``.
  """
  say = log or (lambda _: None)
  points = np.asarray(points, np.float64)
  targets = np.asarray(targets, np.float64)
  if targets.ndim == 1:
    targets = targets[:, None]
  if points.ndim != 2 or targets.shape[0] != points.shape[0]:
    raise ValueError(f"points must be (n, d) and targets (n, k); got "
                     f"{points.shape} and {targets.shape}.")
  if ridge < 0:
    raise ValueError(f"ridge must be >= 0; got {ridge}.")
  if residuals not in ("recomputed", "stored"):
    raise ValueError(f"residuals must be 'recomputed' or 'stored'; got "
                     f"{residuals!r}.")
  n = points.shape[0]
  dtype = np.dtype(dtype)

  def make_matrix():
    matrix = rbf_kernel(points, gamma=gamma, block_size=block_size,
                        dtype=dtype)
    say(f"kernel {n}x{n} {dtype} ({matrix.nbytes / 2**30:.2f} GiB)")
    return matrix

  exact = (_recomputed_matmul(points, gamma, 1.0 + ridge, block_size)
           if residuals == "recomputed" else None)
  alpha, train_scores, report = solve_kernel_matrix(
      make_matrix, targets, ridge=ridge,
      preconditioner_shift=preconditioner_shift, tile=tile, tol=tol,
      max_iterations=max_iterations, block_size=block_size,
      exact_matmul=exact, log=log)
  return KernelInterpolant(
      train_points=points, alpha=alpha, gamma=float(gamma),
      ridge=float(ridge), train_scores=train_scores,
      rkhs_norm_squared=np.sum(alpha * train_scores, axis=0), report=report)


def solve_kernel_matrix(make_matrix: Callable[[], np.ndarray], targets, *,
                        ridge: float = 0.0, preconditioner_shift: float = 0.0,
                        tile: int = 2048, tol: float = 1e-9,
                        max_iterations: int = 50, block_size: int = 1024,
                        exact_matmul=None,
                        log: Callable[[str], None] | None = None
                        ) -> tuple[np.ndarray, np.ndarray, SolveReport]:
  """Solves ``(K + ridge I) alpha = Y`` for a kernel with unit diagonal.

  The solver of :func:`kernel_interpolate`, for any matrix with ones on the
  diagonal (a Gaussian kernel on pixels or on features): ``make_matrix()``
  returns a fresh C-contiguous ``(n, n)`` float32 or float64 matrix (both
  triangles); it is Cholesky-factored in place and the factor preconditions
  conjugate gradients with float64 residuals. If the factorization fails
  (the matrix is not numerically positive definite in its dtype),
  ``make_matrix`` is called again and the preconditioner's shift raised
  (to 1e-6, then x10, three times).

  Args:
    make_matrix: returns the kernel matrix (it is overwritten).
    targets: ``(n, k)`` targets.
    ridge: lambda >= 0.
    preconditioner_shift: delta added to the factored matrix only.
    tile: column block of the tiled Cholesky.
    tol: relative max-abs residual at which CG stops.
    max_iterations: maximum CG iterations.
    block_size: rows per block of the stored-matrix products.
    exact_matmul: optional ``V -> (K + ridge I) V`` in float64 used by CG
      instead of the stored matrix (``residuals="recomputed"``).
    log: optional callable receiving progress lines.

  Returns:
    ``(alpha, K alpha, report)``.
  """
  say = log or (lambda _: None)
  targets = np.asarray(targets, np.float64)
  if targets.ndim == 1:
    targets = targets[:, None]
  if ridge < 0:
    raise ValueError(f"ridge must be >= 0; got {ridge}.")
  shift = float(preconditioner_shift)
  kernel_seconds = factor_seconds = 0.0
  for attempt in range(4):
    start = time.perf_counter()
    stored = make_matrix()
    kernel_seconds += time.perf_counter() - start
    n = stored.shape[0]
    if targets.shape[0] != n:
      raise ValueError(f"targets have {targets.shape[0]} rows for a {n}x{n} "
                       f"kernel matrix.")
    dtype = stored.dtype
    if ridge + shift:
      stored[np.diag_indices(n)] += dtype.type(ridge + shift)
    start = time.perf_counter()
    try:
      cholesky_in_place(stored, tile=tile)
    except np.linalg.LinAlgError:
      factor_seconds += time.perf_counter() - start
      if attempt == 3:
        raise
      shift = max(10 * shift, 1e-6)
      say(f"Cholesky failed in {dtype}; retrying the preconditioner with "
          f"shift {shift:g}")
      del stored  # Frees the failed factor before making the matrix again.
      continue
    factor_seconds += time.perf_counter() - start
    break
  say(f"in-place Cholesky of {n}x{n} {dtype} in {factor_seconds:.1f} s")

  def precondition(residual: np.ndarray) -> np.ndarray:
    return cholesky_solve(stored, residual, tile=tile).astype(np.float64)

  matmul = exact_matmul or _stored_matmul(stored, 1.0 + ridge, block_size)
  residuals = "recomputed" if exact_matmul else "stored"
  start = time.perf_counter()
  alpha, product, history, converged = _preconditioned_cg(
      matmul, precondition, targets, precondition(targets), tol=tol,
      max_iterations=max_iterations)
  refine_seconds = time.perf_counter() - start
  say(f"CG refinement ({residuals} residuals): {len(history) - 1} "
      f"iterations in {refine_seconds:.1f} s, residual history {history}")
  report = SolveReport(
      num_points=n, num_outputs=targets.shape[1], dtype=dtype.name,
      ridge=float(ridge), residuals=residuals,
      preconditioner_shift=shift, kernel_bytes=int(stored.nbytes),
      kernel_seconds=kernel_seconds,
      factor_seconds=factor_seconds, refine_seconds=refine_seconds,
      refine_iterations=len(history) - 1, residual_history=history,
      max_abs_residual=history[-1], converged=converged)
  return alpha, product - ridge * alpha, report


def predict(interpolant: KernelInterpolant, points, *,
            block_size: int = 1024) -> np.ndarray:
  """Scores ``k(points, X) alpha`` with the kernel recomputed in float64.

  Evaluating at the training points is the honest interpolation check: the
  kernel is computed afresh here, not read from the stored float32 matrix.

  Args:
    interpolant: a solved :class:`KernelInterpolant`.
    points: ``(m, d)`` inputs on the same scale as the training points.
    block_size: rows per block.

  Returns:
    ``(m, k)`` float64 scores; the predicted class is their argmax.
  """
  points = np.asarray(points, np.float64)
  train = interpolant.train_points
  center = train.mean(axis=0)
  a = points - center
  b = train - center
  a_sq, b_sq = _squared_norms(a), _squared_norms(b)
  scores = np.empty((a.shape[0], interpolant.alpha.shape[1]))
  for r0 in range(0, a.shape[0], block_size):
    r1 = min(a.shape[0], r0 + block_size)
    block = _rbf_block(a[r0:r1], a_sq[r0:r1], b, b_sq, interpolant.gamma)
    scores[r0:r1] = block @ interpolant.alpha
  return scores


def rkhs_norm(alpha, kernel_matrix) -> float:
  """``sqrt(trace(alpha^T K alpha))``: the RKHS norm of ``k(., X) alpha``.

  For a vector-valued interpolant (one column per class) this is the norm in
  the product RKHS, the square root of the sum of the per-class squared
  norms; it is the presumed definition of the paper's "220" for MNIST
  (Section 5, Uncertain 10).

  Args:
    alpha: ``(n,)`` or ``(n, k)`` coefficients.
    kernel_matrix: ``(n, n)`` kernel matrix.

  Returns:
    The norm as a float.
  """
  alpha = np.asarray(alpha, np.float64)
  if alpha.ndim == 1:
    alpha = alpha[:, None]
  kernel_matrix = np.asarray(kernel_matrix, np.float64)
  return float(np.sqrt(np.sum(alpha * (kernel_matrix @ alpha))))


def one_hot(labels, num_classes: int) -> np.ndarray:
  """``(n,)`` integer labels to ``(n, num_classes)`` float64 one-hot rows."""
  labels = np.asarray(labels)
  return np.eye(num_classes)[labels]


class GramAccumulator:
  """Inner products of features summed block by block (Section 5 features).

  A feature map too large to hold (the 128,000 random convolutional features
  of 50,000 images are 25.6 GB) is consumed one block of features at a time:
  :meth:`add` centres the block on its training mean (distances do not
  change; the float32 products lose fewer digits) and adds its contribution
  to the training Gram matrix (lower triangle, ``float32`` by default), to
  the evaluation-by-training cross products and to the squared norms
  (float64). :meth:`gaussian` then turns them into Gaussian kernel matrices
  through ``||x - z||^2 = ||x||^2 + ||z||^2 - 2 <x, z>``.

  Attributes:
    train: ``(n, n)`` Gram matrix of the training features; only the lower
      triangle (diagonal included) is accumulated.
    cross: ``(m, n)`` inner products of evaluation and training features.
    train_sq, cross_sq: squared norms (float64).
    blocks_done: number of blocks added.
    num_features: total number of features added.
  """

  def __init__(self, num_train: int, num_eval: int, *, dtype=np.float32,
               block_size: int = 4096):
    self.train = np.zeros((num_train, num_train), dtype)
    self.cross = np.zeros((num_eval, num_train), dtype)
    self.train_sq = np.zeros(num_train)
    self.cross_sq = np.zeros(num_eval)
    self.blocks_done = 0
    self.num_features = 0
    self.block_size = block_size

  def add(self, train_features, eval_features) -> None:
    """Adds one block: ``(n, f)`` training and ``(m, f)`` evaluation rows."""
    dtype = self.train.dtype
    train_features = np.asarray(train_features)
    center = train_features.mean(axis=0, dtype=np.float64)
    a = (train_features - center).astype(dtype)
    b = (np.asarray(eval_features) - center).astype(dtype)
    if a.shape[0] != self.train.shape[0] or b.shape[0] != self.cross.shape[0]:
      raise ValueError(f"expected {self.train.shape[0]} training and "
                       f"{self.cross.shape[0]} evaluation rows; got "
                       f"{a.shape[0]} and {b.shape[0]}.")
    self.train_sq += np.einsum("ij,ij->i", a, a, dtype=np.float64)
    self.cross_sq += np.einsum("ij,ij->i", b, b, dtype=np.float64)
    n = a.shape[0]
    for r0 in range(0, n, self.block_size):
      r1 = min(n, r0 + self.block_size)
      self.train[r0:r1, :r1] += a[r0:r1] @ a[:r1].T
    for r0 in range(0, b.shape[0], self.block_size):
      r1 = min(b.shape[0], r0 + self.block_size)
      self.cross[r0:r1] += b[r0:r1] @ a.T
    self.blocks_done += 1
    self.num_features += a.shape[1]

  def copy(self) -> GramAccumulator:
    """An independent copy (e.g. to solve at an intermediate block)."""
    other = GramAccumulator.__new__(GramAccumulator)
    other.__dict__.update({k: v.copy() if isinstance(v, np.ndarray) else v
                           for k, v in self.__dict__.items()})
    return other

  def median_gamma(self, *, num_pairs: int = 100_000, seed: int = 0
                   ) -> float:
    """``1 / median ||x_i - x_j||^2`` over random training pairs."""
    n = self.train.shape[0]
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, num_pairs)
    j = (i + rng.integers(1, n, num_pairs)) % n
    hi, lo = np.maximum(i, j), np.minimum(i, j)
    sq = (self.train_sq[hi] + self.train_sq[lo]
          - 2.0 * self.train[hi, lo].astype(np.float64))
    return float(1.0 / np.median(sq))

  def gaussian(self, gamma: float, *, in_place: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(K_train, K_cross)`` of ``exp(-gamma ||x - z||^2)``.

    ``K_train`` is symmetric with an exact unit diagonal (both triangles
    written), ready for :func:`solve_kernel_matrix`. With ``in_place`` the
    training Gram matrix is overwritten (no second n x n copy), and the
    accumulator cannot be used again.
    """
    n = self.train.shape[0]
    out = self.train if in_place else self.train.copy()
    sq = self.train_sq.astype(out.dtype)
    for r0 in range(0, n, self.block_size):
      r1 = min(n, r0 + self.block_size)
      block = out[r0:r1, :r1]
      block *= -2.0
      block += sq[r0:r1, None]
      block += sq[None, :r1]
      np.maximum(block, 0.0, out=block)
      block *= -gamma
      np.exp(block, out=block)
    out[np.diag_indices(n)] = 1.0
    for r0 in range(0, n, self.block_size):
      # Mirror the lower triangle, one block column at a time.
      r1 = min(n, r0 + self.block_size)
      out[r0:r1, r1:] = out[r1:, r0:r1].T
      diag = out[r0:r1, r0:r1]
      upper = np.triu_indices(r1 - r0, 1)
      diag[upper] = diag.T[upper]
    return out, self.gaussian_cross(gamma, dtype=out.dtype)

  def gaussian_cross(self, gamma: float, *, dtype=None) -> np.ndarray:
    """The ``(m, n)`` evaluation-by-training Gaussian kernel matrix."""
    cross = np.empty(self.cross.shape, dtype or self.train.dtype)
    for r0 in range(0, cross.shape[0], self.block_size):
      r1 = min(cross.shape[0], r0 + self.block_size)
      block = -2.0 * self.cross[r0:r1].astype(np.float64)
      block += self.cross_sq[r0:r1, None]
      block += self.train_sq[None, :]
      np.maximum(block, 0.0, out=block)
      cross[r0:r1] = np.exp(-gamma * block)
    return cross

  def save(self, path, info: dict) -> None:
    """Writes the accumulator and ``info`` atomically (``path`` a folder)."""
    folder = pathlib.Path(path)
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():  # A save that was interrupted: never reuse its files.
      shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name in ("train", "cross", "train_sq", "cross_sq"):
      with open(tmp / f"{name}.npy", "wb") as f:
        np.save(f, getattr(self, name))
        f.flush()
        os.fsync(f.fileno())
    state = {"blocks_done": self.blocks_done,
             "num_features": self.num_features, "info": info}
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
      if old.exists():  # Left by a save interrupted after its last rename.
        shutil.rmtree(old)
      folder.rename(old)
    tmp.rename(folder)
    if old.exists():
      shutil.rmtree(old)

  @classmethod
  def load(cls, path, info: dict, *, block_size: int = 4096
           ) -> GramAccumulator | None:
    """The accumulator saved at ``path`` for the same ``info``, or None.

    Raises:
      ValueError: the folder holds an accumulator for other ``info``
        (another data set, feature map or seed); the message names both.
    """
    folder = pathlib.Path(path)
    if not (folder / "state.json").exists():
      # Interrupted between the two renames of save(): the previous
      # checkpoint is complete under the .old name.
      folder = folder.with_name(folder.name + ".old")
      if not (folder / "state.json").exists():
        return None
    state = json.loads((folder / "state.json").read_text())
    if state["info"] != info:
      raise ValueError(f"{folder} holds Gram matrices of another "
                       f"configuration ({state['info']}, not {info}); "
                       f"delete the folder or choose another.")
    acc = cls.__new__(cls)
    for name in ("train", "cross", "train_sq", "cross_sq"):
      setattr(acc, name, np.load(folder / f"{name}.npy"))
    acc.blocks_done = state["blocks_done"]
    acc.num_features = state["num_features"]
    acc.block_size = block_size
    return acc

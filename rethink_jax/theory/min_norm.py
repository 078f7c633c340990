"""Implicit regularization of SGD on linear models (paper Section 5).

For least squares with more parameters than points (d >= n, rank-n data
matrix X), ``X w = y`` has infinitely many solutions. SGD started at
``w_0 = 0`` updates ``w <- w - eta (w.x_i - y_i) x_i``, so every iterate is a
combination of the data points, ``w = X^T alpha``; if it interpolates, ``X
X^T alpha = y`` (Eq. 3) and ``w`` is the minimum l2-norm solution
``X^T (X X^T)^-1 y``. Curvature cannot tell the solutions apart: the Hessian
``X^T X / n`` is the same at every one of them and has rank n < d.

Everything runs in float64 (``jax.enable_x64`` inside each function only).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg


def min_norm_solution(X, y) -> np.ndarray:
  """``X^T (X X^T)^-1 y``, the minimum l2-norm solution of ``X w = y``.

  Args:
    X: ``(n, d)`` data matrix of rank n (so d >= n).
    y: ``(n,)`` or ``(n, k)`` targets.

  Returns:
    ``(d,)`` or ``(d, k)`` float64 weights.

  Raises:
    ValueError: ``X`` has fewer columns than rows (no exact interpolation in
      general) or mismatched shapes.
    numpy.linalg.LinAlgError: ``X X^T`` is singular (rank-deficient ``X``).
  """
  X = np.asarray(X, np.float64)
  y = np.asarray(y, np.float64)
  if X.ndim != 2 or y.shape[0] != X.shape[0]:
    raise ValueError(f"X must be (n, d) and y (n,) or (n, k); got {X.shape} "
                     f"and {y.shape}.")
  if X.shape[1] < X.shape[0]:
    raise ValueError(f"the minimum-norm interpolant needs d >= n; got n="
                     f"{X.shape[0]}, d={X.shape[1]}.")
  gram = X @ X.T
  alpha = scipy.linalg.solve(gram, y, assume_a="pos")
  return X.T @ alpha


def row_space_projector(X) -> np.ndarray:
  """``X^T (X X^T)^-1 X``: orthogonal projector onto the span of the rows."""
  X = np.asarray(X, np.float64)
  return X.T @ scipy.linalg.solve(X @ X.T, X, assume_a="pos")


def null_space_basis(X) -> np.ndarray:
  """``(d, d - n)`` orthonormal basis of the null space of ``X``."""
  return scipy.linalg.null_space(np.asarray(X, np.float64))


@dataclasses.dataclass(frozen=True)
class SGDResult:
  """Plain SGD on ``(1/2) (w.x_i - y_i)^2``.

  Attributes:
    weights: ``(d,)`` final iterate.
    train_residual_history: ``max_i |x_i.w - y_i|`` after each epoch.
    weight_norm_history: ``||w||`` after each epoch.
  """

  weights: np.ndarray
  train_residual_history: np.ndarray
  weight_norm_history: np.ndarray


def sgd_least_squares(X, y, *, lr: float, epochs: int, key: jax.Array,
                      init=None) -> SGDResult:
  """Plain SGD, one example per step, on the squared loss (Section 5).

  Each epoch visits the n examples once in the order of
  ``jax.random.permutation(jax.random.fold_in(key, epoch), n)``; the update
  is ``w <- w - lr (w.x_i - y_i) x_i``. From ``w = 0`` (the default) every
  iterate lies in the row space of ``X``.

  Args:
    X: ``(n, d)`` data.
    y: ``(n,)`` targets.
    lr: constant step size; below ``2 / max_i ||x_i||^2`` for convergence.
    epochs: passes over the data.
    key: JAX PRNG key for the visiting order.
    init: optional ``(d,)`` starting point (default zeros).

  Returns:
    An :class:`SGDResult` (float64).
  """
  X = np.asarray(X, np.float64)
  y = np.asarray(y, np.float64)
  n, d = X.shape
  with jax.enable_x64(True):
    w0 = (jnp.zeros(d, jnp.float64) if init is None
          else jnp.asarray(init, jnp.float64))
    Xd, yd = jnp.asarray(X), jnp.asarray(y)
    lr = jnp.float64(lr)

    def step(w, i):
      error = Xd[i] @ w - yd[i]
      return w - lr * error * Xd[i], None

    def epoch(w, e):
      order = jax.random.permutation(jax.random.fold_in(key, e), n)
      w, _ = jax.lax.scan(step, w, order)
      return w, (jnp.max(jnp.abs(Xd @ w - yd)), jnp.linalg.norm(w))

    run = jax.jit(lambda w: jax.lax.scan(epoch, w, jnp.arange(epochs)))
    w, (residuals, norms) = run(w0)
    return SGDResult(weights=np.asarray(w),
                     train_residual_history=np.asarray(residuals),
                     weight_norm_history=np.asarray(norms))


def hessian_rank(X, tol: float | None = None) -> int:
  """Rank of the squared-loss Hessian ``X^T X / n`` (the same at every w)."""
  X = np.asarray(X, np.float64)
  return int(np.linalg.matrix_rank(X.T @ X / X.shape[0], tol=tol))

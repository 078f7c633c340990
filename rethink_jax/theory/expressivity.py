"""Finite-sample expressivity: Theorem 1 and Lemma 1 (paper Section 4, App. C).

Theorem 1: a two-layer ReLU network with 2n + d weights,

    c(x) = sum_j w_j max(<a, x> - b_j, 0),   a in R^d, b, w in R^n,

can represent any function on a sample of n distinct points in R^d. Proof:
project the points on a random direction ``a`` (distinct projections with
probability 1), sort them, ``x_1 < ... < x_n``, and choose interleaving
biases ``b_1 < x_1 < b_2 < x_2 < ... < b_n < x_n``. Then ``c(z_i) = (A w)_i``
with ``A_ij = max(x_i - b_j, 0)``, which is lower triangular with diagonal
``x_i - b_i > 0`` (Lemma 1: full rank, smallest eigenvalue
``min_i (x_i - b_i)``), so ``A w = y`` is solved by forward substitution.

Numerics. Any interleaving works in exact arithmetic; in float64 the choice
matters. With ``b_j = x_{j-1} + f (x_j - x_{j-1})`` the paper's midpoints are
``f = 1/2``; the network then zig-zags between the points and its weights
grow with the ratios of neighbouring gaps. As ``f -> 0`` the network tends to
the linear spline through ``(x_i, y_i)`` (``w_j`` are its slope changes), the
Lemma 1 eigenvalue ``min_i (x_i - b_i) = (1 - f) min gap`` is largest, and
the weights are smallest. :func:`fit_two_layer` therefore defaults to
``f = 0.01`` (strictly interleaving, as the lemma requires) and keeps the
midpoint as an option; ``experiments/theorem1.py`` measures both. The solve
is LAPACK forward substitution (``scipy.linalg.solve_triangular``), which is
backward stable: its residual is at the level of the float64 rounding of the
network's own output, whose scale ``eps * max_i sum_j |A_ij w_j|`` the
conditioning report states next to the measured error. The weights grow
like one over the smallest gap between projections, so drawing several
random directions and keeping the best separated one (``num_directions``)
shrinks them further.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

METHODS = ("triangular", "spline")


class TwoLayerReLU(nn.Module):
  """``c(x) = sum_j w_j max(<a, x> - b_j, 0)``: Theorem 1's network.

  Every hidden unit shares the input weight vector ``a`` and has its own bias
  ``-b_j``; the output layer has weights ``w`` and no bias. Parameters:
  ``a`` (d,), ``b`` (n,), ``w`` (n,), 2n + d in all.

  Attributes:
    num_inputs: d.
    num_hidden: n, one hidden unit per sample point.
    param_dtype: dtype of the parameters (float64 for an exact fit, under
      ``jax.enable_x64(True)``).
  """

  num_inputs: int
  num_hidden: int
  param_dtype: Any = jnp.float32

  def setup(self):
    self.a = self.param("a", nn.initializers.normal(1.0), (self.num_inputs,),
                        self.param_dtype)
    self.b = self.param("b", nn.initializers.normal(1.0), (self.num_hidden,),
                        self.param_dtype)
    self.w = self.param("w", nn.initializers.normal(1.0), (self.num_hidden,),
                        self.param_dtype)

  def project(self, x: jax.Array) -> jax.Array:
    """The pre-activations' shared part ``<a, x>``, shape ``x.shape[:-1]``."""
    return x @ self.a

  def __call__(self, x: jax.Array) -> jax.Array:
    """``c(x)`` for a batch ``(..., d)``, shape ``(...)``."""
    hidden = jnp.maximum(self.project(x)[..., None] - self.b, 0.0)
    return hidden @ self.w


@dataclasses.dataclass(frozen=True)
class Conditioning:
  """How well-posed one Theorem 1 fit is (Lemma 1 and float64 evaluation).

  Attributes:
    min_gap: smallest gap between consecutive sorted projections.
    lemma1_smallest_eigenvalue: ``min_i (x_i - b_i)``, the smallest
      eigenvalue of the lower-triangular ``A`` (Lemma 1).
    max_abs_weight: ``max_j |w_j|``.
    weight_norm: ``||w||_2``.
    evaluation_scale: ``max_i sum_j |A_ij w_j|``, the size of the terms that
      cancel when the network is evaluated at a sample point.
    float64_rounding_scale: ``eps * evaluation_scale`` (eps = 2.2e-16): the
      scale of the rounding error of evaluating the network in float64 (a
      worst-case bound is about n times larger, a typical one sqrt(n)).
    max_abs_error: measured ``max_i |c(z_i) - y_i|`` with the Flax module in
      float64.
    direction_attempts: random directions drawn (``num_directions``, more
      if projections collided).
  """

  min_gap: float
  lemma1_smallest_eigenvalue: float
  max_abs_weight: float
  weight_norm: float
  evaluation_scale: float
  float64_rounding_scale: float
  max_abs_error: float
  direction_attempts: int


@dataclasses.dataclass(frozen=True)
class TwoLayerInterpolant:
  """A fitted Theorem 1 network: a Flax module and its parameters.

  Evaluate it like any Flax model, ``module.apply({"params": params}, x)``,
  inside ``jax.enable_x64(True)`` for float64; calling the interpolant does
  exactly that.

  Attributes:
    module: the :class:`TwoLayerReLU`.
    params: ``{"a": (d,), "b": (n,), "w": (n,)}`` float64 arrays.
    order: ``order[j]`` is the index of the sample point whose projection is
      the j-th smallest (hidden unit j sits just left of it).
    bias_fraction: f in ``b_j = x_{j-1} + f (x_j - x_{j-1})``.
    method: ``"triangular"`` or ``"spline"``.
    conditioning: the :class:`Conditioning` report.
    fit_seconds: wall time of the fit (without the error measurement).
  """

  module: TwoLayerReLU
  params: dict
  order: np.ndarray
  bias_fraction: float
  method: str
  conditioning: Conditioning
  fit_seconds: float

  @property
  def num_weights(self) -> int:
    """Number of scalar parameters; equals 2n + d (Theorem 1)."""
    return int(sum(np.size(p) for p in jax.tree_util.tree_leaves(
        self.params)))

  def __call__(self, points, *, batch_size: int = 1024) -> np.ndarray:
    """``c(points)`` in float64, in batches of ``batch_size`` rows."""
    return _evaluate(self.module, self.params, points, batch_size)


def _evaluate(module: nn.Module, params: dict, points,
              batch_size: int) -> np.ndarray:
  with jax.enable_x64(True):
    points = jnp.asarray(points, jnp.float64)
    apply = jax.jit(module.apply)
    outs = [np.asarray(apply({"params": params}, points[s:s + batch_size]))
            for s in range(0, points.shape[0], batch_size)]
  return np.concatenate(outs) if outs else np.zeros((0,))


def duplicate_points(points) -> list[tuple[int, ...]]:
  """Groups of indices of identical rows of ``points`` (each group sorted)."""
  points = np.asarray(points)
  _, inverse, counts = np.unique(points, axis=0, return_inverse=True,
                                 return_counts=True)
  inverse = inverse.reshape(-1)
  groups = []
  for group in np.flatnonzero(counts > 1):
    groups.append(tuple(int(i) for i in np.flatnonzero(inverse == group)))
  return sorted(groups)


def interleaving_biases(sorted_projections: np.ndarray,
                        bias_fraction: float) -> np.ndarray:
  """``b`` with ``b_1 < x_1 < b_2 < x_2 < ... < b_n < x_n`` (Lemma 1).

  ``b_j = x_{j-1} + f (x_j - x_{j-1})`` for j >= 2 (f = 1/2: midpoints) and
  ``b_1 = x_1 - (x_n - x_1)`` (``x_1 - 1`` for a single point), so the first
  unit's slope is of the order of the targets over the data's spread.
  """
  x = np.asarray(sorted_projections, np.float64)
  if not 0.0 < bias_fraction < 1.0:
    raise ValueError(f"bias_fraction must lie strictly between 0 and 1 so "
                     f"that the biases interleave; got {bias_fraction}.")
  b = np.empty_like(x)
  b[1:] = x[:-1] + bias_fraction * np.diff(x)
  spread = x[-1] - x[0] if x.shape[0] > 1 else 1.0
  b[0] = x[0] - spread
  return b


def _spline_weights(x: np.ndarray, b: np.ndarray, y: np.ndarray
                    ) -> np.ndarray:
  """Closed-form solution of ``A w = y``: slopes of the piecewise-linear c.

  On ``(b_j, b_{j+1})`` the network is linear with slope ``s_j = w_1 + ...
  + w_j`` and passes through ``(x_j, y_j)``; ``c(b_1) = 0``. So ``s_j = (y_j -
  c(b_j)) / (x_j - b_j)`` and ``c(b_{j+1}) = y_j + s_j (b_{j+1} - x_j)``.
  """
  n = x.shape[0]
  slopes = np.empty(n)
  value_at_knot = 0.0
  for j in range(n):
    slopes[j] = (y[j] - value_at_knot) / (x[j] - b[j])
    if j + 1 < n:
      value_at_knot = y[j] + slopes[j] * (b[j + 1] - x[j])
  return np.diff(slopes, prepend=0.0)


def fit_two_layer(points, targets, *, key: jax.Array | None = None,
                  seed: int | None = None, direction=None,
                  bias_fraction: float = 0.01, method: str = "triangular",
                  num_directions: int = 1, max_direction_tries: int = 5
                  ) -> TwoLayerInterpolant:
  """The Theorem 1 network that interpolates ``targets`` on ``points``.

  Args:
    points: ``(n, d)`` distinct sample points z_1..z_n.
    targets: ``(n,)`` real targets y (any function on the sample).
    key: JAX PRNG key for the random direction ``a``; or give ``seed``.
    seed: integer seed, used as ``jax.random.key(seed)`` when ``key`` is None.
    direction: a fixed ``(d,)`` direction ``a`` instead of a random one (no
      retries).
    bias_fraction: f in ``(0, 1)``, ``b_j = x_{j-1} + f (x_j - x_{j-1})``;
      0.5 is the paper's midpoint, the default 0.01 is better conditioned
      (see the module docstring).
    method: ``"triangular"``: forward substitution on Lemma 1's ``A``
      (``scipy.linalg.solve_triangular``, O(n^2) memory, the paper's proof);
      ``"spline"``: the equivalent O(n) slope recursion.
    num_directions: random directions to draw; the one whose smallest
      projection gap, relative to the projections' spread, is largest is
      kept (1: the paper's single random direction; more gives smaller
      weights and a smaller rounding error).
    max_direction_tries: rounds of ``num_directions`` draws before giving up
      when projections collide.

  Returns:
    A :class:`TwoLayerInterpolant` with exactly 2n + d weights.

  Raises:
    ValueError: points not distinct (the message names the duplicate
      indices), projections that collide for every direction tried (names
      the colliding pair), bad shapes, non-finite values, or an unknown
      method.
  """
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
  points = np.asarray(points, np.float64)
  targets = np.asarray(targets, np.float64)
  if points.ndim != 2 or points.shape[0] < 1:
    raise ValueError(f"points must be an (n, d) array with n >= 1; got "
                     f"shape {points.shape}.")
  n, d = points.shape
  if targets.shape != (n,):
    raise ValueError(f"targets must have shape ({n},); got {targets.shape}.")
  if not (np.all(np.isfinite(points)) and np.all(np.isfinite(targets))):
    raise ValueError("points and targets must be finite.")
  duplicates = duplicate_points(points)
  if duplicates:
    shown = ", ".join(str(g) for g in duplicates[:5])
    raise ValueError(
        f"Theorem 1 needs distinct points, but {len(duplicates)} groups of "
        f"rows are identical (indices {shown}"
        f"{', ...' if len(duplicates) > 5 else ''}); remove the duplicates "
        f"(they cannot take different targets).")
  if direction is None:
    if key is None:
      key = jax.random.key(0 if seed is None else seed)
    tries = max_direction_tries
  else:
    tries, num_directions = 1, 1
  module = TwoLayerReLU(num_inputs=d, num_hidden=n, param_dtype=jnp.float64)
  start = time.perf_counter()
  with jax.enable_x64(True):
    points_device = jnp.asarray(points)
    project = jax.jit(lambda p, z: module.apply(p, z,
                                                method=TwoLayerReLU.project))
    best, drawn = None, 0
    for _ in range(tries):
      for _ in range(num_directions):
        drawn += 1
        if direction is None:
          assert key is not None
          a = jax.random.normal(jax.random.fold_in(key, drawn), (d,),
                                jnp.float64)
        else:
          a = jnp.asarray(direction, jnp.float64).reshape(d)
        dummy = {"params": {"a": a, "b": jnp.zeros(n), "w": jnp.zeros(n)}}
        x = np.asarray(project(dummy, points_device))
        order = np.argsort(x, kind="stable")
        xs = x[order]
        gaps = np.diff(xs)
        if n == 1:
          best = (np.inf, a, order, xs, gaps)
          break
        spread_ratio = gaps.min() / (xs[-1] - xs[0])
        if gaps.min() > 0 and (best is None or spread_ratio > best[0]):
          best = (spread_ratio, a, order, xs, gaps)
      if best is not None:
        break
    if best is None:
      j = int(np.argmin(gaps))
      raise ValueError(
          f"the projections of points {int(order[j])} and "
          f"{int(order[j + 1])} on the direction a coincide for all "
          f"{drawn} direction(s) tried ({xs[j]!r}); the points are distinct "
          f"but not separable along these directions. Pass another "
          f"key/seed or raise max_direction_tries.")
    _, a, order, xs, gaps = best
    b = interleaving_biases(xs, bias_fraction)
    ys = targets[order]
    lower = np.maximum(xs[:, None] - b[None, :], 0.0) if (
        method == "triangular" or n <= 4096) else None
    if method == "triangular":
      w = scipy.linalg.solve_triangular(lower, ys, lower=True,
                                        check_finite=False)
    else:
      w = _spline_weights(xs, b, ys)
    fit_seconds = time.perf_counter() - start
    params = {"a": a, "b": jnp.asarray(b), "w": jnp.asarray(w)}
  outputs = _evaluate(module, params, points, 1024)
  if lower is not None:
    scale = float(np.max(np.abs(lower) @ np.abs(w)))
  else:
    scale = float(np.max(_abs_row_sums(xs, b, np.abs(w))))
  conditioning = Conditioning(
      min_gap=float(gaps.min()) if n > 1 else float("inf"),
      lemma1_smallest_eigenvalue=float(np.min(xs - b)),
      max_abs_weight=float(np.max(np.abs(w))),
      weight_norm=float(np.linalg.norm(w)),
      evaluation_scale=scale,
      float64_rounding_scale=float(np.finfo(np.float64).eps * scale),
      max_abs_error=float(np.max(np.abs(outputs - targets))),
      direction_attempts=drawn)
  return TwoLayerInterpolant(module=module, params=params, order=order,
                             bias_fraction=float(bias_fraction),
                             method=method, conditioning=conditioning,
                             fit_seconds=fit_seconds)


def _abs_row_sums(x: np.ndarray, b: np.ndarray, abs_w: np.ndarray,
                  block: int = 2048) -> np.ndarray:
  """``sum_j |A_ij| |w_j|`` without forming ``A`` (for large n)."""
  out = np.empty(x.shape[0])
  for s in range(0, x.shape[0], block):
    out[s:s + block] = np.maximum(x[s:s + block, None] - b[None, :],
                                  0.0) @ abs_w
  return out


class DeepReLU(nn.Module):
  """A plain ReLU network: ``Dense -> ReLU`` per hidden layer, linear output.

  The depth-k networks of :func:`fit_deep` are this module with explicit
  weights; nothing in it is specific to the construction.

  Attributes:
    widths: hidden-layer widths (``depth - 1`` of them).
    param_dtype: dtype of the parameters.
  """

  widths: tuple[int, ...]
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for width in self.widths:
      x = nn.relu(nn.Dense(width, param_dtype=self.param_dtype,
                           dtype=self.param_dtype)(x))
    return nn.Dense(1, param_dtype=self.param_dtype,
                    dtype=self.param_dtype)(x)[..., 0]


@dataclasses.dataclass(frozen=True)
class DeepInterpolant:
  """A depth-k ReLU network that interpolates a sample (Section 4 remark).

  Attributes:
    module: the :class:`DeepReLU`.
    params: its Flax parameters (float64 numpy arrays).
    depth: number of weight layers (``depth - 1`` hidden layers); depth 2 is
      Theorem 1's network.
    widths: hidden-layer widths.
    num_weights: distinct weights of the construction, counted as Theorem 1
      counts ``2n + d`` (the shared projection ``a`` once, every other
      nonzero weight and bias once).
    num_dense_parameters: parameters of the dense layers that hold it (most
      are structural zeros).
    two_layer: the Theorem 1 network it is built from; both compute the
      same function of ``x`` everywhere.
    max_abs_error: ``max_i |net(z_i) - y_i|`` in float64.
  """

  module: DeepReLU
  params: dict
  depth: int
  widths: tuple[int, ...]
  num_weights: int
  num_dense_parameters: int
  two_layer: TwoLayerInterpolant
  max_abs_error: float

  def __call__(self, points, *, batch_size: int = 1024) -> np.ndarray:
    """The network's outputs in float64."""
    return _evaluate(self.module, self.params, points, batch_size)


def fit_deep(points, targets, depth: int, **two_layer_options
             ) -> DeepInterpolant:
  """A depth-``depth`` ReLU network of width about ``n / (depth - 1)``.

  The paper (Section 4) remarks that Theorem 1 extends to depth k with width
  O(n / k). Construction used here, exact for every input ``x``: take
  Theorem 1's ``c(x) = sum_j w_j relu(z - b_j)``, ``z = <a, x>``
  (:func:`fit_two_layer`), split its n hidden units, in order, into
  ``depth - 1`` blocks and give hidden layer ``l`` the units of block ``l``.
  Three more units per layer pass on what later layers need:

  * a carry ``t = relu(z - b_1)``, forwarded by ``relu(t) = t``; block
    ``l``'s units are ``relu(t - (b_j - b_1))``, equal to ``relu(z - b_j)``
    for every ``z`` (both vanish when ``z < b_1 <= b_j``);
  * the partial sum ``s`` of the finished blocks' terms as
    ``s+ = relu(s)`` and ``s- = relu(-s)`` (``s = s+ - s-``).

  The output layer adds ``s+ - s-`` and the last block's terms. Hidden widths
  are ``|B_1| + 1``, ``|B_l| + 3``, ..., ``|B_last|``; the number of
  weights is about ``4n + d``, O(n + d) as the paper states.

  Args:
    points: ``(n, d)`` distinct sample points.
    targets: ``(n,)`` real targets.
    depth: weight layers, >= 2 (2 gives Theorem 1's network).
    **two_layer_options: passed to :func:`fit_two_layer` (``key``,
      ``bias_fraction``, ...).

  Returns:
    A :class:`DeepInterpolant`.
  """
  if depth < 2:
    raise ValueError(f"depth must be >= 2 (2 is Theorem 1's network); got "
                     f"{depth}.")
  two = fit_two_layer(points, targets, **two_layer_options)
  a = np.asarray(two.params["a"])
  b = np.asarray(two.params["b"])
  w = np.asarray(two.params["w"])
  n, d = b.shape[0], a.shape[0]
  if depth - 1 > n:
    raise ValueError(f"depth - 1 = {depth - 1} hidden layers need at least "
                     f"as many points; got n = {n}.")
  blocks = np.array_split(np.arange(n), depth - 1)
  last = len(blocks) - 1
  layers = []  # (kernel, bias) per Dense layer, float64.
  counted = d  # The shared projection a, counted once (as in 2n + d).
  # Hidden layer 1: block 1 from z, and the carry t (unless it is the last).
  first = blocks[0]
  carry = last > 0
  width = len(first) + carry
  kernel = np.zeros((d, width))
  kernel[:, :len(first)] = a[:, None]
  bias = np.zeros(width)
  bias[:len(first)] = -b[first]
  if carry:
    kernel[:, -1] = a
    bias[-1] = -b[0]
  counted += width  # One bias per unit.
  layers.append((kernel, bias))
  previous = first  # Block whose terms the next layer sums.
  for layer in range(1, last + 1):
    block = blocks[layer]
    has_sum = layer > 1  # s+ and s- exist in the previous layer.
    in_width = len(previous) + 1 + 2 * has_sum  # block, t, [s+, s-]
    t_in = len(previous)
    out_carry = layer < last
    width = len(block) + out_carry + 2
    kernel = np.zeros((in_width, width))
    bias = np.zeros(width)
    kernel[t_in, :len(block)] = 1.0
    bias[:len(block)] = -(b[block] - b[0])
    counted += 2 * len(block)
    if out_carry:
      kernel[t_in, len(block)] = 1.0
      counted += 1
    for sign, column in ((1.0, width - 2), (-1.0, width - 1)):
      kernel[:len(previous), column] = sign * w[previous]
      counted += len(previous)
      if has_sum:
        kernel[t_in + 1, column] = sign
        kernel[t_in + 2, column] = -sign
        counted += 2
    layers.append((kernel, bias))
    previous = block
  # Output: the last block's terms plus s+ - s- (the last hidden layer has
  # no carry: its units are [block, s+, s-]).
  has_sum = last > 0
  kernel = np.zeros((len(previous) + 2 * has_sum, 1))
  kernel[:len(previous), 0] = w[previous]
  counted += len(previous)
  if has_sum:
    kernel[len(previous):, 0] = (1.0, -1.0)
    counted += 2
  layers.append((kernel, np.zeros(1)))

  widths = tuple(k.shape[1] for k, _ in layers[:-1])
  module = DeepReLU(widths=widths, param_dtype=jnp.float64)
  params = {f"Dense_{i}": {"kernel": k, "bias": v}
            for i, (k, v) in enumerate(layers)}
  interpolant = DeepInterpolant(
      module=module, params=params, depth=depth, widths=widths,
      num_weights=counted,
      num_dense_parameters=sum(k.size + v.size for k, v in layers),
      two_layer=two, max_abs_error=0.0)
  outputs = interpolant(points)
  return dataclasses.replace(interpolant, max_abs_error=float(
      np.max(np.abs(outputs - np.asarray(targets, np.float64)))))

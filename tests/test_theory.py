"""Tests of rethink_jax.theory (paper Sections 2.2, 4 and 5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from rethink_jax.theory import expressivity, kernels, min_norm, rademacher


# ---------------------------------------------------------------------------
# Theorem 1 / Lemma 1 (Section 4)
# ---------------------------------------------------------------------------


def _gaussian_sample(n, d, seed=0):
  rng = np.random.default_rng(seed)
  return rng.standard_normal((n, d)), rng.standard_normal(n)


@pytest.mark.parametrize("bias_fraction", [0.5, 0.01])
@pytest.mark.parametrize("method", ["triangular", "spline"])
def test_two_layer_fits_random_targets_exactly(bias_fraction, method):
  points, targets = _gaussian_sample(300, 7)
  fit = expressivity.fit_two_layer(points, targets, seed=3,
                                   bias_fraction=bias_fraction, method=method)
  cond = fit.conditioning
  errors = np.abs(fit(points) - targets)
  assert cond.max_abs_error == pytest.approx(errors.max())
  # The paper's midpoints zig-zag between close points (larger weights).
  assert cond.max_abs_error < (1e-5 if bias_fraction == 0.5 else 1e-8)
  # The error is at the float64 rounding level of the network's own output.
  assert cond.max_abs_error <= 10 * cond.float64_rounding_scale
  assert cond.direction_attempts == 1


def test_two_layer_has_2n_plus_d_weights():
  n, d = 120, 9
  points, targets = _gaussian_sample(n, d)
  fit = expressivity.fit_two_layer(points, targets, seed=0)
  assert fit.num_weights == 2 * n + d
  shapes = jax.tree_util.tree_map(np.shape, fit.params)
  assert shapes == {"a": (d,), "b": (n,), "w": (n,)}
  # A freshly initialized module has the same parameter count.
  variables = expressivity.TwoLayerReLU(num_inputs=d, num_hidden=n).init(
      jax.random.key(0), jnp.zeros((1, d)))
  assert sum(p.size for p in jax.tree_util.tree_leaves(variables)) == 2 * n + d


def test_two_layer_evaluates_as_a_flax_module():
  points, targets = _gaussian_sample(50, 4)
  fit = expressivity.fit_two_layer(points, targets, seed=1)
  with jax.enable_x64(True):
    out = fit.module.apply({"params": fit.params}, jnp.asarray(points))
    assert out.dtype == jnp.float64
  np.testing.assert_allclose(np.asarray(out), targets, atol=1e-9)


def test_lemma1_matrix_is_lower_triangular_with_reported_eigenvalue():
  points, targets = _gaussian_sample(80, 3)
  fit = expressivity.fit_two_layer(points, targets, seed=2, bias_fraction=0.5)
  a, b = (np.asarray(fit.params[k]) for k in ("a", "b"))
  x = np.sort(points @ a)
  # Interleaving: b_1 < x_1 < b_2 < x_2 < ... < b_n < x_n.
  assert np.all(b < x) and np.all(x[:-1] < b[1:])
  lower = np.maximum(x[:, None] - b[None, :], 0.0)
  assert np.all(np.triu(lower, 1) == 0.0)
  eigenvalues = np.linalg.eigvals(lower).real
  assert fit.conditioning.lemma1_smallest_eigenvalue == pytest.approx(
      eigenvalues.min(), rel=1e-9)
  assert fit.conditioning.min_gap == pytest.approx(np.diff(x).min())
  w = np.asarray(fit.params["w"])
  assert fit.conditioning.max_abs_weight == pytest.approx(np.abs(w).max())
  assert fit.conditioning.weight_norm == pytest.approx(np.linalg.norm(w))


def test_spline_and_triangular_solutions_agree():
  points, targets = _gaussian_sample(200, 5)
  tri = expressivity.fit_two_layer(points, targets, seed=4, method="triangular")
  spline = expressivity.fit_two_layer(points, targets, seed=4, method="spline")
  np.testing.assert_allclose(spline.params["w"], tri.params["w"], rtol=1e-6,
                             atol=1e-6 * np.abs(tri.params["w"]).max())


def test_more_directions_keep_the_best_separated_projection():
  points, targets = _gaussian_sample(300, 6)
  one = expressivity.fit_two_layer(points, targets, seed=0)
  many = expressivity.fit_two_layer(points, targets, seed=0,
                                    num_directions=8)
  assert many.conditioning.direction_attempts == 8
  def ratio(fit):
    x = np.sort(points @ np.asarray(fit.params["a"]))
    return np.diff(x).min() / (x[-1] - x[0])
  assert ratio(many) >= ratio(one)
  assert many.conditioning.max_abs_error < 1e-8


def test_duplicate_points_fail_naming_the_indices():
  points, targets = _gaussian_sample(10, 3)
  points[7] = points[2]
  with pytest.raises(ValueError, match=r"\(2, 7\)"):
    expressivity.fit_two_layer(points, targets, seed=0)


def test_colliding_projections_fail_naming_the_pair():
  points = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
  with pytest.raises(ValueError, match=r"points 0 and 1|points 1 and 0"):
    expressivity.fit_two_layer(points, np.zeros(3), direction=[1.0, 1.0])
  # A random direction separates them.
  fit = expressivity.fit_two_layer(points, np.array([1.0, -1.0, 3.0]),
                                   seed=0)
  np.testing.assert_allclose(fit(points), [1.0, -1.0, 3.0], atol=1e-12)


def test_fit_is_a_pure_function_of_the_key():
  points, targets = _gaussian_sample(40, 3)
  one = expressivity.fit_two_layer(points, targets, key=jax.random.key(5))
  two = expressivity.fit_two_layer(points, targets, key=jax.random.key(5))
  np.testing.assert_array_equal(one.params["a"], two.params["a"])
  np.testing.assert_array_equal(one.params["w"], two.params["w"])


def test_bad_bias_fraction_is_rejected():
  points, targets = _gaussian_sample(5, 2)
  with pytest.raises(ValueError, match="bias_fraction"):
    expressivity.fit_two_layer(points, targets, seed=0, bias_fraction=0.0)


# ---------------------------------------------------------------------------
# Minimum norm (Section 5)
# ---------------------------------------------------------------------------


def _least_squares_problem(n=30, d=100, seed=0):
  rng = np.random.default_rng(seed)
  return rng.standard_normal((n, d)), rng.standard_normal(n)


def test_min_norm_solution_is_the_pseudoinverse_solution():
  X, y = _least_squares_problem()
  w = min_norm.min_norm_solution(X, y)
  np.testing.assert_allclose(w, np.linalg.pinv(X) @ y, atol=1e-12)
  np.testing.assert_allclose(X @ w, y, atol=1e-12)


def test_sgd_from_zero_converges_to_the_min_norm_solution():
  X, y = _least_squares_problem()
  lr = 1.0 / np.max(np.sum(X * X, axis=1))
  result = min_norm.sgd_least_squares(X, y, lr=lr, epochs=300,
                                      key=jax.random.key(0))
  w_min = min_norm.min_norm_solution(X, y)
  assert np.max(np.abs(result.weights - w_min)) < 1e-10
  assert result.train_residual_history[-1] < 1e-10


def test_sgd_iterates_stay_in_the_row_span():
  X, y = _least_squares_problem()
  lr = 1.0 / np.max(np.sum(X * X, axis=1))
  projector = min_norm.row_space_projector(X)
  for epochs in (1, 4):
    w = min_norm.sgd_least_squares(X, y, lr=lr, epochs=epochs,
                                   key=jax.random.key(1)).weights
    assert np.linalg.norm(w - projector @ w) < 1e-12 * max(
        1.0, np.linalg.norm(w))


def test_sgd_from_a_random_start_keeps_its_null_space_component():
  X, y = _least_squares_problem()
  lr = 1.0 / np.max(np.sum(X * X, axis=1))
  w0 = np.random.default_rng(1).standard_normal(X.shape[1])
  w = min_norm.sgd_least_squares(X, y, lr=lr, epochs=300,
                                 key=jax.random.key(0), init=w0).weights
  projector = min_norm.row_space_projector(X)
  expected = min_norm.min_norm_solution(X, y) + (w0 - projector @ w0)
  np.testing.assert_allclose(w, expected, atol=1e-9)
  assert np.linalg.norm(w) > np.linalg.norm(min_norm.min_norm_solution(X, y))


def test_hessian_is_degenerate_and_null_space_has_dimension_d_minus_n():
  X, _ = _least_squares_problem()
  assert min_norm.hessian_rank(X) == 30
  null = min_norm.null_space_basis(X)
  assert null.shape == (100, 70)
  np.testing.assert_allclose(X @ null, 0.0, atol=1e-12)


def test_min_norm_rejects_underdetermined_shapes():
  X, y = _least_squares_problem(n=10, d=5)
  with pytest.raises(ValueError, match="d >= n"):
    min_norm.min_norm_solution(X, y)


# ---------------------------------------------------------------------------
# Kernel interpolation (Section 5)
# ---------------------------------------------------------------------------


def _blobs(n, d=6, classes=3, seed=0, spread=0.6):
  rng = np.random.default_rng(seed)
  centres = rng.standard_normal((classes, d)) * 2.0
  labels = rng.integers(0, classes, n)
  return centres[labels] + spread * rng.standard_normal((n, d)), labels


def _dense_rbf(a, b, gamma):
  return np.exp(-gamma * ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


@pytest.mark.parametrize("other", [False, True])
def test_rbf_kernel_matches_the_formula_with_uneven_blocks(other):
  x, _ = _blobs(37)
  z = _blobs(11, seed=1)[0] if other else None
  k = kernels.rbf_kernel(x, z, gamma=0.3, block_size=8, dtype=np.float64)
  expected = _dense_rbf(x, x if z is None else z, 0.3)
  np.testing.assert_allclose(k, expected, rtol=1e-12, atol=1e-14)
  if z is None:
    assert np.array_equal(k, k.T)
    assert np.all(np.diag(k) == 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("residuals", ["recomputed", "stored"])
def test_kernel_interpolation_interpolates_and_predicts(dtype, residuals):
  x_all, y_all = _blobs(600, seed=5)
  x, y, x_test, y_test = x_all[:400], y_all[:400], x_all[400:], y_all[400:]
  targets = kernels.one_hot(y, 3)
  fit = kernels.kernel_interpolate(x, targets, gamma=0.2, dtype=dtype,
                                   block_size=64, residuals=residuals)
  assert fit.report.converged
  assert fit.report.max_abs_residual < 1e-8
  train_scores = fit.predict(x)
  assert np.mean(train_scores.argmax(1) == y) == 1.0
  tolerance = 1e-8 if (residuals == "recomputed" or dtype == np.float64) \
      else 1e-3
  assert np.max(np.abs(train_scores - targets)) < tolerance
  assert np.mean(fit.predict(x_test).argmax(1) == y_test) > 0.9


def test_tiled_cholesky_in_place_keeps_the_upper_triangle():
  x, _ = _blobs(157, seed=8)
  matrix = kernels.rbf_kernel(x, gamma=0.2, dtype=np.float64)
  matrix[np.diag_indices(157)] += 1e-3
  original = matrix.copy()
  kernels.cholesky_in_place(matrix, tile=40)
  np.testing.assert_allclose(np.tril(matrix), np.linalg.cholesky(original),
                             atol=1e-12)
  assert np.array_equal(np.triu(matrix, 1), np.triu(original, 1))
  rhs = np.random.default_rng(0).standard_normal((157, 2))
  solution = kernels.cholesky_solve(matrix, rhs, tile=40)
  np.testing.assert_allclose(original @ solution, rhs, atol=1e-8)


def test_tiled_cholesky_reports_an_indefinite_matrix():
  matrix = np.eye(6)
  matrix[4, 4] = -1.0
  with pytest.raises(np.linalg.LinAlgError, match="columns 4:6"):
    kernels.cholesky_in_place(matrix, tile=2)


def test_float32_solve_matches_float64_direct_solve():
  x, y = _blobs(300, seed=2)
  targets = kernels.one_hot(y, 3)
  fit = kernels.kernel_interpolate(x, targets, gamma=0.2, block_size=50)
  k = _dense_rbf(x, x, 0.2)
  alpha = scipy.linalg.solve(k, targets, assume_a="pos")
  np.testing.assert_allclose(fit.alpha, alpha, rtol=1e-6,
                             atol=1e-8 * np.abs(alpha).max())


def test_ridge_option_solves_the_regularized_system():
  x, y = _blobs(300, seed=3)
  targets = kernels.one_hot(y, 3)
  ridge = 0.5
  fit = kernels.kernel_interpolate(x, targets, gamma=0.2, ridge=ridge)
  k = _dense_rbf(x, x, 0.2)
  alpha = np.linalg.solve(k + ridge * np.eye(300), targets)
  np.testing.assert_allclose(fit.alpha, alpha, rtol=1e-7, atol=1e-9)
  np.testing.assert_allclose(fit.train_scores, k @ alpha, atol=1e-8)
  # A ridge fit does not interpolate, and its norm is smaller.
  assert np.max(np.abs(fit.train_scores - targets)) > 1e-2
  exact = kernels.kernel_interpolate(x, targets, gamma=0.2)
  assert fit.rkhs_norm() < exact.rkhs_norm()


def test_preconditioner_shift_still_solves_the_unshifted_system():
  x, y = _blobs(250, seed=4)
  targets = kernels.one_hot(y, 3)
  fit = kernels.kernel_interpolate(x, targets, gamma=0.2,
                                   preconditioner_shift=1e-2,
                                   max_iterations=200)
  assert fit.report.converged
  assert fit.report.preconditioner_shift == 1e-2
  np.testing.assert_allclose(fit.predict(x), targets, atol=1e-8)


def test_rkhs_norm_formula():
  x, y = _blobs(200, seed=6)
  targets = kernels.one_hot(y, 3)
  fit = kernels.kernel_interpolate(x, targets, gamma=0.2, dtype=np.float64)
  k = _dense_rbf(x, x, 0.2)
  expected = np.sqrt(np.trace(fit.alpha.T @ k @ fit.alpha))
  assert fit.rkhs_norm() == pytest.approx(expected, rel=1e-10)
  assert kernels.rkhs_norm(fit.alpha, k) == pytest.approx(expected, rel=1e-12)
  # For an exact interpolant, alpha^T K alpha = alpha^T Y.
  assert fit.rkhs_norm() == pytest.approx(
      np.sqrt(np.sum(fit.alpha * targets)), rel=1e-8)
  # Per-column norms add up in squares.
  assert fit.rkhs_norm([0]) ** 2 + fit.rkhs_norm([1, 2]) ** 2 == \
      pytest.approx(fit.rkhs_norm() ** 2)


def test_random_labels_need_a_larger_rkhs_norm():
  x, y = _blobs(300, seed=7)
  random_labels = np.random.default_rng(0).integers(0, 3, 300)
  targets = np.concatenate([kernels.one_hot(y, 3),
                            kernels.one_hot(random_labels, 3)], axis=1)
  fit = kernels.kernel_interpolate(x, targets, gamma=0.2)
  assert np.mean(fit.train_scores[:, 3:].argmax(1) == random_labels) == 1.0
  assert fit.rkhs_norm(slice(3, 6)) > 2 * fit.rkhs_norm(slice(0, 3))


def test_kernel_matmul_matches_the_dense_product():
  x, _ = _blobs(70)
  v = np.random.default_rng(0).standard_normal((70, 2))
  np.testing.assert_allclose(kernels.kernel_matmul(x, 0.4, v, block_size=16),
                             _dense_rbf(x, x, 0.4) @ v, atol=1e-12)
  np.testing.assert_allclose(kernels.kernel_matmul(x, 0.4, v[:, 0]),
                             _dense_rbf(x, x, 0.4) @ v[:, 0], atol=1e-12)


def test_median_heuristic_gamma():
  x, _ = _blobs(300)
  gamma = kernels.median_heuristic_gamma(x, num_pairs=20_000, seed=0)
  d2 = ((x[:, None] - x[None]) ** 2).sum(-1)[np.triu_indices(300, 1)]
  assert gamma == pytest.approx(1.0 / np.median(d2), rel=0.05)


def test_kernel_interpolate_rejects_bad_arguments():
  x, y = _blobs(20)
  with pytest.raises(ValueError, match="ridge"):
    kernels.kernel_interpolate(x, kernels.one_hot(y, 3), 0.1, ridge=-1.0)
  with pytest.raises(ValueError, match="targets"):
    kernels.kernel_interpolate(x, np.zeros((19, 3)), 0.1)
  with pytest.raises(ValueError, match="residuals"):
    kernels.kernel_interpolate(x, kernels.one_hot(y, 3), 0.1,
                               residuals="float16")


# ---------------------------------------------------------------------------
# Empirical Rademacher complexity (Section 2.2)
# ---------------------------------------------------------------------------


def test_rademacher_signs_are_fixed_by_the_key_and_balanced():
  one = rademacher.rademacher_signs(jax.random.key(0), 3, 4000)
  two = rademacher.rademacher_signs(jax.random.key(0), 3, 4000)
  np.testing.assert_array_equal(one, two)
  assert set(np.unique(one)) == {-1, 1}
  assert abs(one.mean()) < 0.05
  assert not np.array_equal(one[0], one[1])
  np.testing.assert_array_equal(rademacher.signs_to_labels([-1, 1, 1]),
                                [0, 1, 1])


def test_correlation_is_two_accuracy_minus_one():
  sigma = np.array([1, -1, 1, 1, -1])
  predictions = np.array([1, -1, -1, 1, -1])
  assert rademacher.correlation(sigma, predictions) == pytest.approx(0.6)
  assert rademacher.correlation_from_accuracy(0.8) == pytest.approx(0.6)


def test_least_squares_linear_class_fits_everything_only_when_wide():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((200, 300))
  sigma = rademacher.rademacher_signs(jax.random.key(1), 5, 200)
  wide = [rademacher.least_squares_correlation(x, s) for s in sigma]
  narrow = [rademacher.least_squares_correlation(x[:, :2], s) for s in sigma]
  assert min(wide) == 1.0
  assert rademacher.estimate(narrow).mean < 0.4


def test_network_correlation_runs_the_trainer_on_signs():
  from rethink_jax.training import config as config_lib
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
  sigma = rademacher.rademacher_signs(jax.random.key(0), 1, 64)[0]
  config = config_lib.base_config()
  config.model = "mlp_1x512"
  config.dataset = "arrays"
  config.num_epochs = 1
  config.batch_size = 32
  config.eval_batch_size = 32
  config.progress = "off"
  corr, summary = rademacher.network_correlation(config, images, sigma,
                                                 images[:32])
  assert -1.0 <= corr <= 1.0
  assert corr == pytest.approx(
      2 * summary["final"]["train_accuracy"] - 1)
  assert summary["data"]["num_classes"] == 2

"""Section 5 feature maps, Gram accumulation and the depth-k construction."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from rethink_jax.theory import expressivity, features, kernels

REPO = pathlib.Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------
# Pixel preprocessing
# ---------------------------------------------------------------------------


def _images(n=6, shape=(8, 8, 3), seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, *shape),
                                              dtype=np.uint8)


def test_per_image_standardization_matches_tensorflow():
  tf = pytest.importorskip("tensorflow")
  images = _images()
  ours = features.preprocess(images, "per_image_standardization")
  theirs = tf.image.per_image_standardization(
      tf.constant(images.astype(np.float64) / 255.0)).numpy()
  np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_constant_image_standardizes_to_zero_not_nan():
  images = np.full((1, 4, 4, 1), 7, np.uint8)
  assert np.all(features.preprocess(images, "per_image_standardization") == 0)


def test_centering_on_the_training_mean_leaves_gaussian_kernels_unchanged():
  train, other = _images(seed=1), _images(seed=2)
  flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
  scaled = [flat(features.preprocess(x, "scale")) for x in (train, other)]
  centered = [flat(features.preprocess(x, "center", train_images=train))
              for x in (train, other)]
  assert not np.allclose(scaled[0], centered[0])
  np.testing.assert_allclose(
      kernels.rbf_kernel(*centered, gamma=0.01, dtype=np.float64),
      kernels.rbf_kernel(*scaled, gamma=0.01, dtype=np.float64), atol=1e-12)


def test_unknown_preprocessing_names_the_choices():
  with pytest.raises(ValueError, match="per_image_standardization"):
    features.preprocess(_images(), "whiten")


# ---------------------------------------------------------------------------
# Gabor wavelets
# ---------------------------------------------------------------------------


def test_gabor_bank_has_zero_mean_unit_l1_wavelets():
  bank = features.gabor_bank(size=11, wavelengths=(3.0, 6.0),
                             num_orientations=4)
  assert bank.shape == (11, 11, 8)
  np.testing.assert_allclose(bank.sum(axis=(0, 1)), 0, atol=1e-12)
  np.testing.assert_allclose(np.abs(bank).sum(axis=(0, 1)), 1, rtol=1e-12)


def test_gabor_features_respond_to_the_grating_orientation():
  # A vertical grating (varying along x) excites the theta = 0 wavelet of
  # the matching wavelength far more than the theta = pi/2 one.
  x = np.arange(28)
  grating = np.tile(np.cos(2 * np.pi * x / 6.0), (28, 1))[None, :, :, None]
  out = features.gabor_features(grating, wavelengths=(6.0,),
                                num_orientations=2, pool=28)
  assert out.shape == (1, 2)
  assert out[0, 0] > 10 * out[0, 1]


def test_gabor_features_shape_and_channels_check():
  out = features.gabor_features(np.zeros((3, 28, 28, 1)), pool=2)
  assert out.shape == (3, 14 * 14 * 24) and out.dtype == np.float32
  with pytest.raises(ValueError, match="grayscale"):
    features.gabor_features(np.zeros((3, 28, 28, 3)))


# ---------------------------------------------------------------------------
# Random convolutional features
# ---------------------------------------------------------------------------


def _reference_random_conv(net, images, key):
  """The explicit patch computation: normalize, whiten, filter, pool."""
  whiten_key, filter_key = jax.random.split(key)
  mean, zca = net.whitening(images, whiten_key)
  p, c = net.patch_size, images.shape[-1]
  filters = net.filters(filter_key, p * p * c)
  side = (images.shape[1] - p) // net.stride + 1
  out = np.zeros((len(images), side, side, net.num_filters))
  for i in range(side):
    for j in range(side):
      r, q = i * net.stride, j * net.stride
      patch = images[:, r:r + p, q:q + p].reshape(len(images), -1)
      patch = patch.astype(np.float64)
      u = (patch - patch.mean(1, keepdims=True)) / np.sqrt(
          patch.var(1, keepdims=True) + net.contrast_epsilon)
      out[:, i, j] = np.maximum((u - mean) @ zca @ filters, 0.0)
  halves = np.array_split(np.arange(side), 2)
  pooled = [out[:, a[0]:a[-1] + 1, b[0]:b[-1] + 1].sum(axis=(1, 2))
            for a in halves for b in halves]
  return np.stack(pooled, axis=2).reshape(len(images), -1)


@pytest.mark.parametrize("stride", [1, 2])
def test_random_conv_features_equal_the_explicit_patch_computation(stride):
  images = np.random.default_rng(0).random((5, 13, 13, 3)).astype(np.float32)
  net = features.RandomConvNet(num_filters=7, patch_size=4, stride=stride,
                               whitening_patches=500)
  key = jax.random.key(1)
  (where, block), = list(net.blocks(images, key, filters_per_block=7))
  assert where == slice(0, 7) and block.shape == (5, 4 * 7)
  np.testing.assert_allclose(block, _reference_random_conv(net, images, key),
                             rtol=1e-4, atol=1e-4)


def test_random_conv_blocks_are_a_prefix_and_resume_mid_way():
  images = np.random.default_rng(0).random((4, 12, 12, 3)).astype(np.float32)
  key = jax.random.key(3)
  small = features.RandomConvNet(num_filters=1100, patch_size=4,
                                 whitening_patches=500)
  large = features.RandomConvNet(num_filters=2200, patch_size=4,
                                 whitening_patches=500)
  whole = np.concatenate([b for _, b in small.blocks(images, key,
                                                     filters_per_block=1100)],
                         axis=1)
  parts = [b for _, b in large.blocks(images, key, filters_per_block=550)]
  # Other block sizes round differently (another convolution shape).
  np.testing.assert_allclose(np.concatenate(parts[:2], axis=1), whole,
                             rtol=1e-5)
  resumed = [b for _, b in large.blocks(images, key, filters_per_block=550,
                                        start=1100)]
  np.testing.assert_array_equal(np.concatenate(resumed, axis=1),
                                np.concatenate(parts[2:], axis=1))


def test_random_conv_test_features_use_the_training_whitening():
  rng = np.random.default_rng(0)
  train = rng.random((6, 10, 10, 3)).astype(np.float32)
  test = rng.random((2, 10, 10, 3)).astype(np.float32)
  net = features.RandomConvNet(num_filters=3, patch_size=3,
                               whitening_patches=300)
  key = jax.random.key(0)
  (_, joint), = list(net.blocks(np.concatenate([train, test]), key,
                                fit_images=train, filters_per_block=3))
  (_, alone), = list(net.blocks(test, key, fit_images=train,
                                filters_per_block=3))
  np.testing.assert_allclose(alone, joint[6:], rtol=1e-5)


# ---------------------------------------------------------------------------
# Gram accumulation
# ---------------------------------------------------------------------------


def _blocks(seed=0, n=40, m=15, widths=(7, 11, 5)):
  rng = np.random.default_rng(seed)
  return [(rng.random((n, w)) * 3 + 10, rng.random((m, w)) * 3 + 10)
          for w in widths]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gram_accumulator_gives_the_gaussian_kernel_of_all_features(dtype):
  blocks = _blocks()
  acc = kernels.GramAccumulator(40, 15, dtype=dtype, block_size=16)
  for train, other in blocks:
    acc.add(train, other)
  train = np.concatenate([t for t, _ in blocks], axis=1)
  other = np.concatenate([o for _, o in blocks], axis=1)
  gamma = 0.05
  k_train, k_cross = acc.gaussian(gamma)
  tol = 1e-5 if dtype == np.float32 else 1e-12
  np.testing.assert_allclose(
      k_train, kernels.rbf_kernel(train, gamma=gamma, dtype=np.float64),
      atol=tol)
  np.testing.assert_array_equal(k_train, k_train.T)
  np.testing.assert_allclose(
      k_cross, kernels.rbf_kernel(other, train, gamma=gamma,
                                  dtype=np.float64), atol=tol)
  assert acc.num_features == 23 and acc.blocks_done == 3
  assert acc.median_gamma(num_pairs=2000, seed=4) == pytest.approx(
      kernels.median_heuristic_gamma(train, num_pairs=2000, seed=4),
      rel=1e-5)


def test_gram_accumulator_saves_resumes_and_refuses_other_settings(tmp_path):
  blocks = _blocks()
  info = {"data": "x", "seed": 0}
  whole = kernels.GramAccumulator(40, 15)
  for train, other in blocks:
    whole.add(train, other)
  part = kernels.GramAccumulator(40, 15)
  part.add(*blocks[0])
  part.save(tmp_path / "gram", info)
  assert kernels.GramAccumulator.load(tmp_path / "missing", info) is None
  resumed = kernels.GramAccumulator.load(tmp_path / "gram", info)
  assert resumed is not None and resumed.blocks_done == 1
  for train, other in blocks[1:]:
    resumed.add(train, other)
  for name in ("train", "cross", "train_sq", "cross_sq"):
    np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name))
  with pytest.raises(ValueError, match="another configuration"):
    kernels.GramAccumulator.load(tmp_path / "gram", {"data": "y", "seed": 0})


def test_gram_checkpoint_survives_an_interrupted_save(tmp_path):
  info = {"data": "x"}
  acc = kernels.GramAccumulator(40, 15)
  acc.add(*_blocks()[0])
  acc.save(tmp_path / "gram", info)
  # Interrupted between save()'s renames: only the .old copy is complete,
  # and a half-written .tmp is left behind.
  (tmp_path / "gram").rename(tmp_path / "gram.old")
  (tmp_path / "gram.tmp").mkdir()
  (tmp_path / "gram.tmp" / "train.npy").write_bytes(b"torn")
  (tmp_path / "gram.tmp" / "state.json").write_text("{}")
  loaded = kernels.GramAccumulator.load(tmp_path / "gram", info)
  assert loaded is not None and loaded.blocks_done == 1
  np.testing.assert_array_equal(loaded.train, acc.train)
  loaded.add(*_blocks()[1])
  loaded.save(tmp_path / "gram", info)  # The stale .tmp is not reused.
  again = kernels.GramAccumulator.load(tmp_path / "gram", info)
  assert again is not None and again.blocks_done == 2
  np.testing.assert_array_equal(again.train, loaded.train)
  assert not (tmp_path / "gram.old").exists()
  assert not (tmp_path / "gram.tmp").exists()


def test_solve_kernel_matrix_interpolates_and_retries_a_failed_factor():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((60, 4))
  y = kernels.one_hot(rng.integers(0, 3, 60), 3)
  k = kernels.rbf_kernel(x, gamma=0.3, dtype=np.float64)
  alpha, scores, report = kernels.solve_kernel_matrix(lambda: k.copy(), y)
  np.testing.assert_allclose(scores, y, atol=1e-8)
  np.testing.assert_allclose(k @ alpha, y, atol=1e-8)
  assert report.converged
  calls = []

  def indefinite_first():
    calls.append(1)
    matrix = k.copy()
    if len(calls) == 1:
      matrix[0, 0] = -1.0
    return matrix

  alpha, _, report = kernels.solve_kernel_matrix(indefinite_first, y)
  assert len(calls) == 2 and report.preconditioner_shift == 1e-6
  np.testing.assert_allclose(k @ alpha, y, atol=1e-8)


# ---------------------------------------------------------------------------
# Depth-k expressivity (Section 4 remark)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [2, 3, 4, 9, 41])
def test_deep_network_fits_exactly_and_equals_the_two_layer_network(depth):
  rng = np.random.default_rng(0)
  n, d = 40, 6
  points, targets = rng.standard_normal((n, d)), rng.standard_normal(n)
  fit = expressivity.fit_deep(points, targets, depth, key=jax.random.key(0))
  assert len(fit.widths) == depth - 1
  assert fit.max_abs_error < 1e-9
  np.testing.assert_allclose(fit(points), targets, atol=1e-9)
  fresh = 3 * rng.standard_normal((200, d))  # Also left of every bias.
  np.testing.assert_allclose(fit(fresh), fit.two_layer(fresh), atol=1e-9)
  blocks = -(-n // (depth - 1))
  assert max(fit.widths) <= blocks + 3
  assert fit.num_weights <= 4 * n + d + 6 * depth  # O(n + d)
  if depth == 2:
    assert fit.num_weights == 2 * n + d == fit.two_layer.num_weights


def test_deep_network_weight_count_matches_its_nonzero_parameters():
  rng = np.random.default_rng(1)
  points, targets = rng.standard_normal((30, 3)), rng.standard_normal(30)
  fit = expressivity.fit_deep(points, targets, 5, key=jax.random.key(0))
  leaves = jax.tree_util.tree_leaves(fit.params)
  nonzero = sum(int(np.count_nonzero(leaf)) for leaf in leaves)
  first_kernel = fit.params["Dense_0"]["kernel"]
  # The first layer repeats the shared projection a in every column.
  shared_copies = (first_kernel.shape[1] - 1) * first_kernel.shape[0]
  assert fit.num_weights == nonzero - shared_copies


def test_deep_network_rejects_too_shallow_or_too_deep():
  points, targets = np.eye(3), np.ones(3)
  with pytest.raises(ValueError, match="depth must be >= 2"):
    expressivity.fit_deep(points, targets, 1)
  with pytest.raises(ValueError, match="at least"):
    expressivity.fit_deep(points, targets, 5)


# ---------------------------------------------------------------------------
# The command: resumable accumulation, validation-only selection
# ---------------------------------------------------------------------------


def _run(tmp_path, *flags):
  out = tmp_path / "out.json"
  subprocess.run(
      [sys.executable, str(REPO / "experiments/kernel_features.py"),
       "--dataset=fashion_mnist", "--num_train=120", "--num_val=40",
       f"--out={out}", *flags], check=True, cwd=tmp_path,
      capture_output=True, text=True)
  return json.loads(out.read_text())


@pytest.mark.real_data("fashion_mnist")
def test_random_conv_command_resumes_to_the_same_result(tmp_path):
  common = ["--features=random_conv", "--num_filters=60",
            "--filters_per_block=20", "--filter_snapshots=20",
            "--patch_size=5", "--ridges=0,0.1",
            f"--cache_dir={tmp_path / 'gram'}"]
  whole = _run(tmp_path, *common[:-1], f"--cache_dir={tmp_path / 'other'}")
  stopped = subprocess.run(
      [sys.executable, str(REPO / "experiments/kernel_features.py"),
       "--dataset=fashion_mnist", "--num_train=120", "--num_val=40",
       f"--out={tmp_path / 'partial.json'}", *common,
       "--checkpoint_minutes=0", "--time_budget_minutes=1e-9"],
      cwd=tmp_path, capture_output=True, text=True)
  assert stopped.returncode == 0 and "run the same command again" in (
      stopped.stdout + stopped.stderr)
  assert not (tmp_path / "partial.json").exists()
  resumed = _run(tmp_path, *common)
  final = lambda r: r["sweeps"][0]["solved"][-1]["runs"]  # noqa: E731
  for a, b in zip(final(whole), final(resumed)):
    assert a["true_labels"] == b["true_labels"]
    assert a["val_error_percent"] == b["val_error_percent"]
  assert whole["selected"]["rule"].startswith("lowest validation error")
  assert whole["sweeps"][0]["solved"][0]["num_filters"] == 20
  assert all(run["true_labels"]["train_accuracy"] == 1.0
             for run in final(whole) if run["ridge"] == 0)


@pytest.mark.real_data("fashion_mnist")
def test_in_place_kernels_for_large_n_give_the_same_fits(tmp_path):
  common = ["--features=pixels", "--gamma_scales=1,2", "--ridges=0,0.1",
            f"--cache_dir={tmp_path / 'gram'}"]
  copied = _run(tmp_path, *common)
  in_place = _run(tmp_path, *common, "--in_place_above=100")
  assert (tmp_path / "gram" / "state.json").exists()
  runs = lambda r: r["sweeps"][0]["solved"][0]["runs"]  # noqa: E731
  assert [r["solve"]["preconditioner_shift"] for r in runs(in_place)] == [
      1e-3] * 4
  for a, b in zip(runs(copied), runs(in_place)):
    assert (a["gamma"], a["ridge"]) == (b["gamma"], b["ridge"])
    for labels in ("true_labels", "random_labels"):
      assert a[labels]["test_error_percent"] == b[labels][
          "test_error_percent"]
      assert a[labels]["rkhs_norm"] == pytest.approx(b[labels]["rkhs_norm"],
                                                     rel=1e-6)
    assert a["val_error_percent"] == b["val_error_percent"]


@pytest.mark.real_data("fashion_mnist")
def test_report_puts_the_runs_beside_the_paper(tmp_path):
  import importlib.util
  folder = tmp_path / "theory"
  folder.mkdir()
  for kind in ("pixels", "gabor"):
    _run(tmp_path, f"--features={kind}", "--gamma_scales=1,2",
         "--ridges=0,0.1")
    (tmp_path / "out.json").rename(
        folder / f"section5_fashion_mnist_{kind}_n20000.json")
  spec = importlib.util.spec_from_file_location(
      "theory_report", REPO / "experiments/theory_report.py")
  report = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(report)
  rows = report.section5_rows(folder)
  # Per feature map: the validation-selected bandwidth, every ridge.
  assert [(r["features"], r["ridge"]) for r in rows] == [
      ("pixels", 0.0), ("pixels", 0.1), ("gabor", 0.0), ("gabor", 0.1)]
  # The paper's numbers are for exact interpolation (ridge 0).
  assert [r["paper_test_error"] for r in rows] == [1.2, None, 0.6, None]
  assert [r["paper_norm"] for r in rows] == [220.0, None, 390.0, None]
  text = "\n".join(report.section5_features_section(folder))
  assert "Gabor wavelets (Fashion-MNIST for MNIST" in text
  for row in rows:
    assert f"{row['test_error']:.2f}" in text

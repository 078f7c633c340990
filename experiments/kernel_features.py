"""Section 5 kernel rows on feature maps: Gabor wavelets, random conv nets.

Solves ``(K + ridge I) alpha = Y`` with a Gaussian kernel on a fixed feature
map of the images (paper Section 5, arXiv 1611.03530): raw pixels under a
choice of preprocessing (the CIFAR-10 Gaussian-kernel row), a Gabor wavelet
transform (the MNIST 0.6% row) or a random convolutional network (the
CIFAR-10 17% / 15% rows). True labels and random labels are solved together
(one factorization); reported per setting: training accuracy and residual,
test error, the RKHS norm ``sqrt(trace(alpha^T K alpha))``, and, when
``--num_val`` holds out training images, the validation error that selects
among the settings (the test set never selects anything).

The Gram matrix is accumulated over blocks of features
(``kernels.GramAccumulator``), so no feature matrix is ever held whole; with
``--cache_dir`` the accumulation is checkpointed every
``--checkpoint_minutes`` and a later run with the same flags resumes it
(``--time_budget_minutes`` stops a run after a checkpoint). With
``--filter_snapshots`` the random network's kernel is solved after the first
k filters for each k listed (the filters are a prefix of one draw).

Commands (each results file records its own; the settings of the full runs
were selected on the validation splits of the subset runs before them):

  # the CIFAR-10 Gaussian-kernel gap: preprocessing x bandwidth on a subset,
  # a JPEG re-encoding check, then the selected setting on all 50,000
  python experiments/kernel_features.py --dataset=cifar10 --features=pixels \
      --preprocess=scale,center,per_image_centering,per_image_standardization \
      --gamma_scales=0.5,1,2,4,8,16,32 --num_train=10000 --num_val=5000 \
      --out=results/theory/section5_cifar10_pixels_sweep.json
  python experiments/kernel_features.py --dataset=cifar10 --features=pixels \
      --preprocess=per_image_standardization,scale --gamma_scales=4 \
      --num_train=10000 --num_val=5000 --jpeg_quality=75 \
      --out=results/theory/section5_cifar10_pixels_jpeg75.json
  python experiments/kernel_features.py --dataset=cifar10 --features=pixels \
      --preprocess=per_image_standardization --gamma_scales=4 \
      --out=results/theory/section5_cifar10_pixels_full.json
      (and --preprocess=scale --out=..._full_scale.json: the bandwidth alone)
  # Gabor wavelets against raw pixels (Fashion-MNIST for MNIST)
  python experiments/kernel_features.py --dataset=fashion_mnist \
      --features=pixels --num_train=20000 --num_val=5000 \
      --gamma_scales=0.5,1,2,4,8 --ridges=0,0.01,0.1   (and --features=gabor)
  # random convolutional features: filter counts on a subset, then all
  # 50,000 images with 32,000 filters (rerun until the results file appears)
  python experiments/kernel_features.py --dataset=cifar10 \
      --features=random_conv --num_filters=32000 \
      --filter_snapshots=1000,4000,16000 --num_train=10000 --num_val=5000 \
      --gamma_scales=0.5,1,2,4 --ridges=0,0.01,0.1,1
  python experiments/kernel_features.py --dataset=cifar10 \
      --features=random_conv --num_filters=32000 --gamma_scales=<selected> \
      --ridges=0 --time_budget_minutes=15 \
      --out=results/theory/section5_cifar10_random_conv_full.json
      (and --ridges=<selected> --out=..._full_ridge.json)
"""

from __future__ import annotations

import functools
import io
import json
import pathlib
import time

from absl import flags
import jax
import numpy as np

from rethink_jax import cli, corruption, data, paper, results, theory
from rethink_jax.theory import features, kernels

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "cifar10", ["cifar10", "fashion_mnist", "mnist"],
                  "data set")
flags.DEFINE_enum("features", "pixels", ["pixels", "gabor", "random_conv"],
                  "feature map before the Gaussian kernel")
flags.DEFINE_list("preprocess", ["scale"], "pixel preprocessing(s) "
                  f"({', '.join(features.PREPROCESSING.names())}); several "
                  "are compared")
flags.DEFINE_integer("num_train", 0, "first N training examples (0: all but "
                     "the validation examples)")
flags.DEFINE_integer("num_val", 0, "last N training examples held out to "
                     "select the bandwidth, ridge and filter count")
flags.DEFINE_string("gamma_rule", "median", "'median' (1 / median squared "
                    "distance of training pairs), 'paper' (0.02, the first "
                    "author's MNIST value) or a number")
flags.DEFINE_list("gamma_scales", ["1"], "multipliers of the gamma rule")
flags.DEFINE_list("ridges", ["0"], "ridge values; 0 is Eq. 3")
flags.DEFINE_integer("jpeg_quality", 0, "re-encode every image once more as "
                     "JPEG at this quality (0: no), to measure how much JPEG "
                     "artefacts move the error")
flags.DEFINE_integer("num_filters", 32000, "random_conv: filters")
flags.DEFINE_list("filter_snapshots", [], "random_conv: also solve after the "
                  "first k filters for each k (default: only all)")
flags.DEFINE_integer("stride", 2, "random_conv: patch stride")
flags.DEFINE_integer("patch_size", 6, "random_conv: patch side")
flags.DEFINE_integer("filters_per_block", 1000, "random_conv: filters per "
                     "Gram update")
flags.DEFINE_integer("gabor_pool", 2, "gabor: average-pooling window")
flags.DEFINE_enum("dtype", "float32", ["float32", "float64"],
                  "dtype of the Gram and kernel matrices")
flags.DEFINE_string("cache_dir", None, "folder for the Gram accumulator "
                    "checkpoints (default: ~/.cache/rethink_jax/gram/<name> "
                    "for random_conv runs and above --in_place_above "
                    "points, none otherwise)")
flags.DEFINE_float("checkpoint_minutes", 8.0, "minutes between Gram "
                   "checkpoints (with a cache_dir)")
flags.DEFINE_float("time_budget_minutes", 0.0, "stop after the checkpoint "
                   "that passes this many minutes (0: no limit); rerun the "
                   "same command to continue")
flags.DEFINE_integer("max_iterations", 80, "maximum CG iterations")
flags.DEFINE_integer("in_place_above", 25_000, "above this many training "
                     "points the kernel is built in place of the Gram matrix "
                     "(saved to the cache folder and reloaded per solve)")
flags.DEFINE_integer("seed", 0, "seed of the random labels, the filters, the "
                     "whitening sample and the median pairs")
flags.DEFINE_string("out", None, "results file (default: results/theory/"
                    "section5_<dataset>_<features>[_n<N>].json)")



def _log(message: str) -> None:
  print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _reencode(images: np.ndarray, quality: int) -> np.ndarray:
  from PIL import Image
  out = np.empty_like(images)
  for i, image in enumerate(images):
    buffer = io.BytesIO()
    Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image
                    ).save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(buffer))
    out[i] = decoded.reshape(image.shape)
  return out


def load_splits(dataset: str, num_train: int, num_val: int, jpeg: int):
  """Train (first N), validation (last N of train) and test, uint8."""
  train = data.load(dataset, "train")
  test = data.load(dataset, "test")
  total = len(train)
  num_train = num_train or total - num_val
  if num_train + num_val > total:
    raise SystemExit(f"--num_train + --num_val = {num_train + num_val} > "
                     f"{total} training examples.")
  parts = {
      "train": (train.images[:num_train], np.asarray(train.labels[:num_train])),
      "val": (train.images[total - num_val:],
              np.asarray(train.labels[total - num_val:])),
      "test": (test.images, np.asarray(test.labels)),
  }
  if jpeg:
    parts = {k: (_reencode(x, jpeg), y) for k, (x, y) in parts.items()}
  return parts, train.num_classes


def _accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
  return float(np.mean(np.argmax(scores, axis=1) == labels))


def _feature_blocks(kind: str, images: dict, key, features_done: int):
  """Yields ``(num_filters_so_far, train block, eval block)``.

  Blocks already in a resumed accumulator (``features_done``) are skipped.
  """
  train, evaluation = images["train"], images["eval"]
  if features_done and kind != "random_conv":
    return
  if kind == "pixels":
    yield None, train.reshape(len(train), -1), evaluation.reshape(
        len(evaluation), -1)
  elif kind == "gabor":
    _log("Gabor wavelet transform")
    yield None, *(features.gabor_features(x, pool=FLAGS.gabor_pool)
                  for x in (train, evaluation))
  else:
    net = _net()
    first = features_done // net.features_per_filter
    blocks = zip(
        net.blocks(train, key, filters_per_block=FLAGS.filters_per_block,
                   start=first),
        net.blocks(evaluation, key, filters_per_block=FLAGS.filters_per_block,
                   fit_images=train, start=first))
    for (where, train_block), (_, eval_block) in blocks:
      yield where.stop, train_block, eval_block


def _net() -> features.RandomConvNet:
  return features.RandomConvNet(num_filters=FLAGS.num_filters,
                                patch_size=FLAGS.patch_size,
                                stride=FLAGS.stride)


def _feature_info(num_features: int | None = None) -> dict:
  if FLAGS.features == "pixels":
    return {"map": "pixels", "description": "the preprocessed pixels, "
            "flattened"}
  if FLAGS.features == "gabor":
    lengths = features.GABOR_WAVELENGTHS
    size = features.GABOR_SIZE
    return {"map": "gabor", "description": (
        f"moduli of {len(lengths) * features.GABOR_ORIENTATIONS} complex "
        f"Gabor wavelets ({size}x{size}; wavelengths "
        f"{', '.join(f'{w:g}' for w in lengths)} pixels; "
        f"{features.GABOR_ORIENTATIONS} orientations; one-octave bandwidth), "
        "'SAME' convolution, "
        f"{FLAGS.gabor_pool}x{FLAGS.gabor_pool} average pooling "
        "(features.gabor_features)")}
  net = _net()
  return {"map": "random_conv", "num_filters": net.num_filters,
          "patch_size": net.patch_size, "stride": net.stride,
          "pool_grid": net.pool_grid, "threshold": net.threshold,
          "contrast_epsilon": net.contrast_epsilon,
          "whitening_epsilon": net.whitening_epsilon,
          "num_features": num_features or net.num_features,
          "description": (
              f"{net.patch_size}x{net.patch_size} patches at stride "
              f"{net.stride}, per-patch contrast normalization, ZCA "
              "whitening, random unit-norm Gaussian filters, ReLU, sum "
              f"pooling over a {net.pool_grid}x{net.pool_grid} grid of image "
              "regions (features.RandomConvNet)")}


def _gamma(acc: kernels.GramAccumulator) -> tuple[float, str]:
  """The bandwidth that ``--gamma_scales`` multiply, and its rule."""
  rule = FLAGS.gamma_rule
  if rule == "median":
    return acc.median_gamma(seed=FLAGS.seed), (
        "median heuristic (1 / median squared distance over 100,000 random "
        "training pairs)")
  if rule == "paper":
    return paper.MNIST_RBF_GAMMA, ("paper.MNIST_RBF_GAMMA (0.02, the first "
                                   "author's MNIST value)")
  return float(rule), f"{rule} (command line)"


class _Kernels:
  """Gaussian kernel matrices from one accumulator, for repeated solves.

  Up to ``--in_place_above`` points the training kernel of a bandwidth is built once
  and each solve factors a copy; above it there is room for one n x n
  matrix only, so the kernel is built in place of the Gram matrix and the
  accumulator is reloaded from its saved copy for the next solve.
  """

  def __init__(self, acc: kernels.GramAccumulator, cache, info: dict):
    self.acc, self.cache, self.info = acc, cache, info
    self.in_place = acc.train.shape[0] > FLAGS.in_place_above
    self.consumed = False
    self.built: tuple[float, np.ndarray] | None = None
    if self.in_place:
      acc.save(cache, info)

  def _accumulator(self) -> kernels.GramAccumulator:
    if self.consumed:
      loaded = kernels.GramAccumulator.load(self.cache, self.info)
      assert loaded is not None
      self.acc, self.consumed = loaded, False
    return self.acc

  def cross(self, gamma: float) -> np.ndarray:
    if self.in_place:
      return self._accumulator().gaussian_cross(gamma)
    train, cross = self._accumulator().gaussian(gamma)
    self.built = (gamma, train)
    return cross

  def train(self, gamma: float) -> np.ndarray:
    """A fresh training kernel matrix (the solver overwrites it)."""
    if not self.in_place:
      assert self.built is not None and self.built[0] == gamma
      return self.built[1].copy()
    matrix, _ = self._accumulator().gaussian(gamma, in_place=True)
    self.consumed = True
    return matrix


def _label_metrics(train_scores, targets, test_scores, norms, cols,
                   train_labels, test_labels) -> dict:
  residual = targets[:, cols] - train_scores[:, cols]
  return {
      "train_accuracy": _accuracy(train_scores[:, cols], train_labels),
      "train_max_abs_residual": float(np.max(np.abs(residual))),
      "test_error_percent": 100.0 * (1.0 - _accuracy(test_scores[:, cols],
                                                     test_labels)),
      "rkhs_norm": float(np.sqrt(np.sum(norms[cols]))),
  }


def solve_all(acc: kernels.GramAccumulator, labels: dict, num_classes: int,
              cache: pathlib.Path | None, info: dict) -> list[dict]:
  """Every (gamma scale, ridge) on one accumulated Gram matrix."""
  targets = np.concatenate([kernels.one_hot(labels["train"], num_classes),
                            kernels.one_hot(labels["random"], num_classes)],
                           axis=1)
  true_cols, random_cols = slice(0, num_classes), slice(num_classes, None)
  num_val = len(labels["val"])
  base_gamma, rule = _gamma(acc)
  source = _Kernels(acc, cache, info)
  runs = []
  for scale in [float(s) for s in FLAGS.gamma_scales]:
    gamma = scale * base_gamma
    cross = source.cross(gamma)
    for ridge in [float(r) for r in FLAGS.ridges]:
      _log(f"solve: gamma={gamma:.6g} ({scale:g} x {rule}), ridge="
           f"{ridge:g}")
      start = time.perf_counter()
      alpha, train_scores, report = kernels.solve_kernel_matrix(
          functools.partial(source.train, gamma), targets, ridge=ridge,
          preconditioner_shift=1e-3 if source.in_place else 0.0,
          max_iterations=FLAGS.max_iterations, log=_log)
      # Blockwise: a float64 copy of the whole cross kernel (4 GB at
      # 50,000 x 10,000) would not fit beside the factor.
      scores = np.concatenate([cross[r:r + 2048].astype(np.float64) @ alpha
                               for r in range(0, len(cross), 2048)])
      val_scores, test_scores = scores[:num_val], scores[num_val:]
      norms = np.sum(alpha * train_scores, axis=0)
      run = {
          "gamma": gamma, "gamma_scale": scale,
          "gamma_rule": f"{scale:g} x {rule}",
          "ridge": ridge,
          "true_labels": _label_metrics(train_scores, targets, test_scores,
                                        norms, true_cols, labels["train"],
                                        labels["test"]),
          "random_labels": _label_metrics(train_scores, targets, test_scores,
                                          norms, random_cols,
                                          labels["random"], labels["test"]),
          "val_error_percent": (100.0 * (1.0 - _accuracy(
              val_scores[:, true_cols], labels["val"])) if num_val else None),
          "solve": {**report.__dict__,
                    "total_seconds": time.perf_counter() - start},
          "peak_memory_gib": theory.peak_memory_gib(),
      }
      _log(json.dumps({k: run[k] for k in (
          "gamma", "ridge", "val_error_percent", "true_labels",
          "random_labels")}))
      runs.append(run)
  return runs


def main(argv: list[str] | None = None) -> dict:
  del argv
  metadata = results.provenance()
  start = time.perf_counter()
  parts, num_classes = load_splits(FLAGS.dataset, FLAGS.num_train,
                                   FLAGS.num_val, FLAGS.jpeg_quality)
  n = len(parts["train"][0])
  labels = {k: y for k, (_, y) in parts.items()}
  labels["random"], _ = corruption.corrupt_labels(
      jax.random.key(FLAGS.seed), labels["train"], 1.0, num_classes)
  _log(f"{FLAGS.dataset}: {n} train, {len(labels['val'])} val, "
       f"{len(labels['test'])} test; train classes "
       f"{np.bincount(labels['train'], minlength=num_classes).tolist()}; "
       f"data in {time.perf_counter() - start:.1f} s")
  if FLAGS.features == "random_conv" and FLAGS.preprocess != ["scale"]:
    raise SystemExit("--features=random_conv normalizes its own patches; "
                     "use --preprocess=scale.")
  snapshots = sorted({int(s) for s in FLAGS.filter_snapshots}
                     | {FLAGS.num_filters})
  key = jax.random.key(FLAGS.seed)
  sweeps = []
  for mode in FLAGS.preprocess:
    train_images = parts["train"][0]
    images = {
        "train": features.preprocess(train_images, mode),
        "eval": features.preprocess(
            np.concatenate([parts["val"][0], parts["test"][0]]), mode,
            train_images=train_images),
    }
    info = {"dataset": FLAGS.dataset, "num_train": n,
            "num_val": len(labels["val"]), "jpeg_quality": FLAGS.jpeg_quality,
            "preprocess": mode, "features": _feature_info(), "seed": FLAGS.seed,
            "dtype": FLAGS.dtype}
    cache = (pathlib.Path(FLAGS.cache_dir) if FLAGS.cache_dir else
             pathlib.Path.home() / ".cache/rethink_jax/gram" / (
                 f"{FLAGS.dataset}_{FLAGS.features}_{mode}_n{n}_"
                 f"f{FLAGS.num_filters}_s{FLAGS.stride}_seed{FLAGS.seed}")
             if n > FLAGS.in_place_above or FLAGS.features == "random_conv"
             else None)
    acc = kernels.GramAccumulator.load(cache, info) if cache else None
    if acc is not None:
      _log(f"resuming the Gram accumulation from {cache}: "
           f"{acc.blocks_done} blocks, {acc.num_features} features")
    else:
      acc = kernels.GramAccumulator(n, len(images["eval"]),
                                    dtype=np.dtype(FLAGS.dtype))
    feature_start = time.perf_counter()
    last_save = time.perf_counter()
    solved = []
    for done, train_block, eval_block in _feature_blocks(
        FLAGS.features, images, key, acc.num_features):
      acc.add(train_block, eval_block)
      _log(f"Gram: {acc.num_features} features ({acc.blocks_done} blocks) "
           f"after {time.perf_counter() - feature_start:.0f} s")
      if done in snapshots and done < FLAGS.num_filters:
        solved.append({"num_filters": done,
                       "features": _feature_info(acc.num_features),
                       "runs": solve_all(acc.copy(), labels, num_classes,
                                         None, info)})
      elapsed = (time.perf_counter() - start) / 60
      over = bool(FLAGS.time_budget_minutes) and (
          elapsed > FLAGS.time_budget_minutes)
      if cache and (over or (time.perf_counter() - last_save) / 60
                    > FLAGS.checkpoint_minutes):
        acc.save(cache, info)
        last_save = time.perf_counter()
        _log(f"checkpoint: {cache}")
      if over and cache:
        _log(f"stopping after {elapsed:.1f} min (--time_budget_minutes); "
             "run the same command again to continue")
        raise SystemExit(0)
    feature_seconds = time.perf_counter() - feature_start
    images.clear()  # The solves need the memory.
    solved.append({"num_filters": (FLAGS.num_filters
                                   if FLAGS.features == "random_conv"
                                   else None),
                   "features": _feature_info(acc.num_features),
                   "runs": solve_all(acc, labels, num_classes, cache, info)})
    sweeps.append({"preprocess": mode, "feature_seconds": feature_seconds,
                   "num_features": acc.num_features, "solved": solved})
    del acc

  candidates = [(run["val_error_percent"], s["preprocess"], k, i)
                for s in sweeps for k, solved in enumerate(s["solved"])
                for i, run in enumerate(solved["runs"])
                if run["val_error_percent"] is not None]
  selected = None
  if candidates:
    _, mode, k, i = min(candidates)
    selected = {"preprocess": mode, "solved_index": k, "run_index": i,
                "rule": "lowest validation error (true labels) on the "
                        "held-out training examples; the test set selects "
                        "nothing"}
  result = {
      "experiment": "kernel_features",
      "paper_section": "5",
      **metadata,
      "seed": FLAGS.seed,
      "data": {
          "dataset": FLAGS.dataset, "train_examples": n,
          "val_examples": int(len(labels["val"])),
          "test_examples": int(len(labels["test"])),
          "subset": (f"first {n} of the stored training order"
                     if FLAGS.num_train else "full training split" + (
                         f" minus the last {len(labels['val'])}"
                         if len(labels["val"]) else "")),
          "validation": (f"last {len(labels['val'])} of the stored training "
                         "order" if len(labels["val"]) else None),
          "jpeg_reencoded_quality": FLAGS.jpeg_quality or None,
          "targets": "one-hot true labels and one-hot random labels "
                     "(corruption.corrupt_labels, p=1), solved together",
          "test_labels": "clean",
      },
      "kernel": {"name": "gaussian", "formula": "exp(-gamma ||x - x'||^2)",
                 "dtype": FLAGS.dtype},
      "features": _feature_info(),
      "sweeps": sweeps,
      "selected": selected,
  }
  out = FLAGS.out or (
      f"results/theory/section5_{FLAGS.dataset}_{FLAGS.features}"
      f"{'' if not FLAGS.num_train else f'_n{n}'}.json")
  results.write(out, result)
  _log(f"wrote {out}")
  return result


if __name__ == "__main__":
  cli.run_script(main)

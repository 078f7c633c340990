"""SGD finds the minimum-norm interpolant of a linear model (paper Section 5).

Part 1 (synthetic, n = 30 points in d = 100 dimensions, Gaussian data and
targets): plain SGD from w = 0 on the squared loss converges to
``X^T (X X^T)^-1 y`` and never leaves the row space of X; other exact fits
(the minimum-norm one plus a null-space component, or SGD from a random
start) interpolate equally well, have the same Hessian, and a larger norm.

Part 2 (Fashion-MNIST pixels / 255, d = 784): the minimum-norm linear
interpolant of true labels, of random labels, and the paper's "forcing the
fit to random labels on the test data" (fit the training points' true
labels and, in addition, random labels on test points) all interpolate the
training set; the ones that fit noise have larger norms.

Command:
  python experiments/min_norm.py
"""

from __future__ import annotations

import json
import time

from absl import flags
import jax
import numpy as np

from rethink_jax import cli, corruption, data
from rethink_jax import results
from rethink_jax.theory import min_norm
from rethink_jax.theory.kernels import one_hot


def synthetic(n: int, d: int, epochs: int, seed: int) -> dict:
  """Part 1: min-norm vs SGD vs other interpolating solutions."""
  rng = np.random.default_rng(seed)
  X = rng.standard_normal((n, d))
  y = rng.standard_normal(n)
  w_min = min_norm.min_norm_solution(X, y)
  lr = 1.0 / float(np.max(np.sum(X * X, axis=1)))
  start = time.perf_counter()
  sgd = min_norm.sgd_least_squares(X, y, lr=lr, epochs=epochs,
                                   key=jax.random.key(seed))
  sgd_seconds = time.perf_counter() - start
  projector = min_norm.row_space_projector(X)
  null = min_norm.null_space_basis(X)
  w0 = rng.standard_normal(d)
  sgd_random_init = min_norm.sgd_least_squares(
      X, y, lr=lr, epochs=epochs, key=jax.random.key(seed + 1), init=w0)
  direction = null @ rng.standard_normal(null.shape[1])
  direction /= np.linalg.norm(direction)

  def describe(w: np.ndarray) -> dict:
    return {"norm": float(np.linalg.norm(w)),
            "max_abs_train_residual": float(np.max(np.abs(X @ w - y))),
            "distance_to_row_space": float(np.linalg.norm(w - projector @ w))}

  solutions = {
      "min_norm": describe(w_min),
      "sgd_from_zero": {
          **describe(sgd.weights),
          "max_abs_difference_to_min_norm": float(
              np.max(np.abs(sgd.weights - w_min))),
      },
      "sgd_from_random_init": {
          **describe(sgd_random_init.weights),
          "init_norm": float(np.linalg.norm(w0)),
          "predicted_norm": float(np.linalg.norm(
              w_min + (w0 - projector @ w0))),
      },
  }
  for scale in (1.0, 5.0):
    solutions[f"min_norm_plus_{scale:g}_null"] = describe(
        w_min + scale * direction)
  return {
      "n": n, "d": d, "epochs": epochs, "learning_rate": lr,
      "data": "X, y i.i.d. standard normal (numpy default_rng(seed))",
      "hessian_rank": min_norm.hessian_rank(X),
      "sgd_seconds": sgd_seconds,
      "sgd_residual_history_every_100_epochs": [
          float(r) for r in sgd.train_residual_history[::100]],
      "solutions": solutions,
  }


def fashion(num_train: int, num_forced: int, seed: int) -> dict:
  """Part 2: min-norm linear interpolants of real images."""
  train = data.load("fashion_mnist", "train").take(num_train)
  test = data.load("fashion_mnist", "test")
  x = train.images.reshape(num_train, -1).astype(np.float64) / 255.0
  xt = test.images.reshape(len(test), -1).astype(np.float64) / 255.0
  k = train.num_classes
  key = jax.random.key(seed)
  random_train, _ = corruption.corrupt_labels(key, train.labels, 1.0, k)
  random_test, _ = corruption.corrupt_labels(jax.random.fold_in(key, 1),
                                             test.labels, 1.0, k)
  forced = slice(0, num_forced)

  def evaluate(w: np.ndarray, labels: np.ndarray) -> dict:
    scores = x @ w
    return {
        "frobenius_norm": float(np.linalg.norm(w)),
        "train_accuracy": float(np.mean(scores.argmax(1) == labels)),
        "max_abs_train_residual": float(
            np.max(np.abs(scores - one_hot(labels, k)))),
        # Test error on the clean test labels, excluding the points whose
        # random labels were forced into the fit.
        "test_error_percent": 100.0 * float(np.mean(
            (xt[num_forced:] @ w).argmax(1) != test.labels[num_forced:])),
    }

  w_true = min_norm.min_norm_solution(x, one_hot(train.labels, k))
  w_random = min_norm.min_norm_solution(x, one_hot(random_train, k))
  w_forced = min_norm.min_norm_solution(
      np.concatenate([x, xt[forced]]),
      one_hot(np.concatenate([train.labels, random_test[forced]]), k))
  return {
      "train_examples": num_train,
      "forced_test_examples": num_forced,
      "input": "pixels / 255 flattened (784), no bias term",
      "true_labels": evaluate(w_true, train.labels),
      "random_labels": evaluate(w_random, random_train),
      "true_labels_plus_random_test_labels": evaluate(w_forced,
                                                      train.labels),
  }


FLAGS = flags.FLAGS
flags.DEFINE_integer("n", 30, "synthetic problem: number of points")
flags.DEFINE_integer("d", 100, "synthetic problem: dimension")
flags.DEFINE_integer("epochs", 2000, "SGD epochs on the synthetic problem")
flags.DEFINE_integer("num_train", 300, "Fashion-MNIST training points")
flags.DEFINE_integer("num_forced", 300, "Fashion-MNIST test points whose "
                     "labels the forced-interpolation fit also matches")
flags.DEFINE_integer("seed", 0, "seed of the data draws and SGD")
flags.DEFINE_string("out", "results/theory/min_norm.json", "results file")


def main(argv: list[str] | None = None) -> dict:
  args = FLAGS
  result = {
      "experiment": "min_norm",
      "paper_section": "5",
      **results.provenance(),
      "seed": args.seed,
      "synthetic": synthetic(args.n, args.d, args.epochs, args.seed),
      "fashion_mnist": fashion(args.num_train, args.num_forced, args.seed),
  }
  print(json.dumps(result, indent=2))
  results.write(args.out, result)
  return result


if __name__ == "__main__":
  cli.run_script(main)

"""Depth-k finite-sample expressivity (paper Section 4, remark on Theorem 1).

The paper states that Theorem 1 extends to depth k with width O(n / k).
``rethink_jax.theory.expressivity.fit_deep`` builds such a network from the
depth-2 one (construction in its docstring); this script fits it for a range
of depths on Gaussian points with Gaussian targets and on Fashion-MNIST
images with random and with true labels, and records the widths, the number
of weights next to Theorem 1's 2n + d, the maximum error at the sample
points in float64, the labels recovered by rounding, and the largest
difference from the depth-2 network at fresh points (the two compute the
same function).

Command:
  python experiments/depth_k.py
"""

from __future__ import annotations

import json

from absl import flags
import jax
import numpy as np

from rethink_jax import cli, corruption, data, results
from rethink_jax.theory import expressivity

FLAGS = flags.FLAGS
flags.DEFINE_list("depths", ["2", "3", "5", "10", "50"], "depths (weight "
                  "layers) to build")
flags.DEFINE_integer("seed", 0, "seed of the synthetic data, the random "
                     "labels and the projection direction")
flags.DEFINE_integer("fashion_n", 10000, "Fashion-MNIST points to fit")
flags.DEFINE_string("out", "results/theory/depth_k.json", "results file")


def _fits(name: str, points, targets, fresh, depths, seed: int,
          labels=None) -> list[dict]:
  rows = []
  n, d = points.shape
  for depth in depths:
    fit = expressivity.fit_deep(points, targets, depth,
                                key=jax.random.key(seed),
                                bias_fraction=0.01, num_directions=16)
    row = {
        "data": name, "n": n, "d": d, "depth": depth,
        "hidden_layers": depth - 1, "widths_max": max(fit.widths),
        "widths_min": min(fit.widths), "num_weights": fit.num_weights,
        "two_n_plus_d": 2 * n + d,
        "num_dense_parameters": fit.num_dense_parameters,
        "max_abs_error": fit.max_abs_error,
        "two_layer_max_abs_error": fit.two_layer.conditioning.max_abs_error,
        "float64_rounding_scale":
            fit.two_layer.conditioning.float64_rounding_scale,
        "max_abs_difference_from_depth_2_at_fresh_points": float(np.max(
            np.abs(fit(fresh) - fit.two_layer(fresh)))),
    }
    if labels is not None:
      row["labels_recovered"] = float(np.mean(np.rint(fit(points)) == labels))
    rows.append(row)
    print(json.dumps(row), flush=True)
  return rows


def main(argv: list[str] | None = None) -> dict:
  del argv
  depths = [int(k) for k in FLAGS.depths]
  rng = np.random.default_rng(FLAGS.seed)
  rows = []
  points = rng.standard_normal((1000, 20))
  rows += _fits("Gaussian", points, rng.standard_normal(1000),
                rng.standard_normal((1000, 20)), depths, FLAGS.seed)

  train = data.load("fashion_mnist", "train").take(FLAGS.fashion_n)
  test = data.load("fashion_mnist", "test").take(1000)
  points = train.images.reshape(len(train), -1).astype(np.float64) / 255.0
  fresh = test.images.reshape(len(test), -1).astype(np.float64) / 255.0
  random_labels, _ = corruption.corrupt_labels(
      jax.random.key(FLAGS.seed), train.labels, 1.0, train.num_classes)
  true_labels = np.asarray(train.labels)
  for name, labels in (("Fashion-MNIST, random labels", random_labels),
                       ("Fashion-MNIST, true labels", true_labels)):
    rows += _fits(name, points, labels.astype(np.float64), fresh, depths,
                  FLAGS.seed, labels=labels)

  result = {
      "experiment": "depth_k",
      "paper_section": "4 (remark after Theorem 1: depth k, width O(n/k))",
      **results.provenance(),
      "seed": FLAGS.seed,
      "data": {
          "Gaussian": "1000 points in 20 dimensions and targets, i.i.d. "
                      "standard normal (numpy default_rng(seed)); fresh "
                      "points: 1000 more",
          "Fashion-MNIST": f"first {FLAGS.fashion_n} training images, "
                           "pixels / 255 flattened; targets: random labels "
                           "(corruption.corrupt_labels, p=1) or the true "
                           "labels, as real numbers; fresh points: the first "
                           "1000 test images",
      },
      "construction": "expressivity.fit_deep: Theorem 1's units split into "
                      "depth - 1 consecutive blocks, one per hidden layer, "
                      "plus a carry of relu(<a, x> - b_1) and the partial sum "
                      "as relu(s), relu(-s); bias_fraction 0.01, best "
                      "separated of 16 random directions",
      "fits": rows,
  }
  results.write(FLAGS.out, result)
  return result


if __name__ == "__main__":
  cli.run_script(main)

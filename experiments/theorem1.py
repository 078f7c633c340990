"""Theorem 1: a 2n + d weight ReLU network fits any n labels (paper Section 4).

Builds the Theorem 1 network (``rethink_jax.theory.expressivity``) for
Gaussian points with Gaussian targets, and for Fashion-MNIST images (pixels
/ 255) with random labels, and records the number of weights (2n + d), the
fit's maximum error in float64 next to the float64 rounding scale of the
network's own evaluation, and Lemma 1's conditioning, for the paper's
midpoint biases (bias_fraction 0.5) and the default near-left biases (0.01),
solved by forward substitution ("triangular", the paper's proof) and by the
equivalent slope recursion ("spline"), with one random direction (the
paper) or the best separated of 16.

Command:
  python experiments/theorem1.py
"""

from __future__ import annotations

import dataclasses
import json

from absl import flags
import jax
import numpy as np

from rethink_jax import cli, corruption, data
from rethink_jax import results
from rethink_jax.theory import expressivity

# (n, d, [(bias_fraction, method, num_directions), ...]) for Gaussian data.
SYNTHETIC = (
    (500, 20, ((0.5, "triangular", 1), (0.01, "triangular", 1),
               (0.01, "spline", 1))),
    (1000, 100, ((0.5, "triangular", 1), (0.01, "triangular", 1))),
    (10000, 20, ((0.5, "triangular", 1), (0.01, "triangular", 1),
                 (0.01, "spline", 1), (0.01, "triangular", 16))),
    (10000, 784, ((0.5, "triangular", 1), (0.01, "triangular", 1),
                  (0.01, "triangular", 16))),
)
# (bias_fraction, num_directions) for Fashion-MNIST.
FASHION = ((0.5, 1), (0.01, 1), (0.01, 16))


def _record(fit: expressivity.TwoLayerInterpolant, n: int, d: int) -> dict:
  return {
      "bias_fraction": fit.bias_fraction,
      "method": fit.method,
      "num_weights": fit.num_weights,
      "two_n_plus_d": 2 * n + d,
      "fit_seconds": fit.fit_seconds,
      **dataclasses.asdict(fit.conditioning),
  }


FLAGS = flags.FLAGS
flags.DEFINE_integer("seed", 0, "seed of the synthetic points and targets")
flags.DEFINE_integer("fashion_n", 10000, "Fashion-MNIST points to fit")
flags.DEFINE_string("out", "results/theory/theorem1.json", "results file")


def main(argv: list[str] | None = None) -> dict:
  args = FLAGS
  rng = np.random.default_rng(args.seed)
  synthetic = []
  for n, d, settings in SYNTHETIC:
    points = rng.standard_normal((n, d))
    targets = rng.standard_normal(n)
    for bias_fraction, method, num_directions in settings:
      fit = expressivity.fit_two_layer(
          points, targets, key=jax.random.key(args.seed),
          bias_fraction=bias_fraction, method=method,
          num_directions=num_directions)
      synthetic.append({"n": n, "d": d, **_record(fit, n, d)})
      print(json.dumps(synthetic[-1]), flush=True)

  train = data.load("fashion_mnist", "train").take(args.fashion_n)
  points = train.images.reshape(len(train), -1).astype(np.float64) / 255.0
  labels, _ = corruption.corrupt_labels(jax.random.key(args.seed),
                                        train.labels, 1.0, train.num_classes)
  fashion = []
  for bias_fraction, num_directions in FASHION:
    fit = expressivity.fit_two_layer(points, labels.astype(np.float64),
                                     key=jax.random.key(args.seed),
                                     bias_fraction=bias_fraction,
                                     num_directions=num_directions)
    outputs = fit(points)
    n, d = points.shape
    fashion.append({
        "n": n, "d": d, **_record(fit, n, d),
        "label_accuracy_after_rounding": float(
            np.mean(np.rint(outputs) == labels)),
    })
    print(json.dumps(fashion[-1]), flush=True)

  result = {
      "experiment": "theorem1",
      "paper_section": "4 (Theorem 1, Lemma 1 in Appendix C)",
      **results.provenance(),
      "seed": args.seed,
      "synthetic": {
          "data": "points and targets i.i.d. standard normal "
                  "(numpy default_rng(seed)), direction a ~ N(0, I) from "
                  "jax.random.key(seed)",
          "fits": synthetic,
      },
      "fashion_mnist": {
          "data": f"first {args.fashion_n} Fashion-MNIST training images, "
                  "pixels / 255 flattened; targets: random labels 0..9 "
                  "(corruption.corrupt_labels, p=1) as real numbers",
          "fits": fashion,
      },
      "paper_recipe": "Section 4: n=500, d=20, midpoints -> max error "
                      "about 1.7e-8",
  }
  results.write(args.out, result)
  return result


if __name__ == "__main__":
  cli.run_script(main)

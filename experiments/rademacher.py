"""Empirical Rademacher complexity on CIFAR-10 (paper Section 2.2, Eq. 1).

For several draws of random signs sigma on n CIFAR-10 training images, the
supremum in R_n(H) = E_sigma[sup_h (1/n) sum_i sigma_i h(x_i)] is
approximated from below by fitting sigma:

* MLP 1x512 and MLP 3x512 (Table 1 models), trained by
  ``rethink_jax.train.train_and_evaluate`` with the paper's protocol
  unchanged (SGD, momentum 0.9, lr 0.01 decayed by 0.95 per epoch, batch 128,
  no explicit regularizer) on the 2-class labels (sigma + 1) / 2 until the
  training set is fitted; correlation = 2 * train accuracy - 1.
* Linear classifiers sign(w . phi(x) + b) on the first k principal
  components phi of the same preprocessed inputs (Appendix A pipeline:
  centre 28x28 crop, per-image whitening, 2352 values), fitted to sigma by
  least squares (a lower bound on the supremum over that class; no trainer
  involved). With k + 1 >= n the linear class fits everything too.

Command:
  python experiments/rademacher.py
"""

from __future__ import annotations

import json
import time

from absl import flags
import jax
import numpy as np

from rethink_jax import cli
from rethink_jax.training import config as config_lib
from rethink_jax import data
from rethink_jax.data import preprocessing
from rethink_jax import results
from rethink_jax.theory import rademacher


def _trainer_config(model: str, max_epochs: int, seed: int):
  config = config_lib.base_config()
  config.model = model
  config.dataset = "arrays"
  config.num_epochs = max_epochs
  config.stop_when_fitted = True
  config.progress = "off"
  config.seed = seed
  config.eval_batch_size = 100
  config.checkpoint_every_epochs = max_epochs
  config.checkpoints_to_keep = 1
  return config


FLAGS = flags.FLAGS
flags.DEFINE_integer("n", 1000, "CIFAR-10 training points")
flags.DEFINE_integer("network_draws", 5, "sign draws fitted by each network")
flags.DEFINE_integer("linear_draws", 20, "sign draws fitted by the linear "
                     "classifiers")
flags.DEFINE_string("linear_dims", "1,10,100,500,2352", "comma-separated "
                    "input dimensions of the linear classifiers")
flags.DEFINE_string("models", "mlp_1x512,mlp_3x512", "comma-separated "
                    "networks")
flags.DEFINE_integer("max_epochs", 100, "epoch cap of each network fit")
flags.DEFINE_integer("seed", 0, "seed of the Rademacher signs")
flags.DEFINE_string("out", "results/theory/rademacher.json", "results file")


def main(argv: list[str] | None = None) -> dict:
  args = FLAGS

  train = data.load("cifar10", "train").take(args.n)
  test_images = data.load("cifar10", "test").images[:100]
  key = jax.random.key(args.seed)
  max_draws = max(args.network_draws, args.linear_draws)
  signs = rademacher.rademacher_signs(key, max_draws, args.n)

  models = []
  for model in args.models.split(","):
    start = time.perf_counter()
    correlations, epochs = [], []
    for t in range(args.network_draws):
      config = _trainer_config(model, args.max_epochs, args.seed + t)
      corr, summary = rademacher.network_correlation(
          config, train.images, signs[t], test_images)
      correlations.append(corr)
      epochs.append(summary["epochs_completed"])
      print(f"{model} draw {t}: correlation {corr:.4f} after "
            f"{summary['epochs_completed']} epochs", flush=True)
    est = rademacher.estimate(correlations)
    models.append({
        "model": model, "n": args.n, "draws": args.network_draws,
        "rademacher_estimate": est.mean, "std": est.std,
        "correlations": list(est.correlations),
        "mean_train_accuracy": float(np.mean([(c + 1) / 2
                                              for c in correlations])),
        "epochs_to_fit": epochs,
        "fitted_by": "rethink_jax.train.train_and_evaluate, paper protocol, "
                     f"stop when fitted, at most {args.max_epochs} epochs",
        "seconds": time.perf_counter() - start,
    })

  start = time.perf_counter()
  features = np.asarray(preprocessing.cifar_eval(train.images)).reshape(
      args.n, -1).astype(np.float64)
  features -= features.mean(axis=0)
  _, _, components = np.linalg.svd(features, full_matrices=False)
  pca_seconds = time.perf_counter() - start
  for k in [int(k) for k in args.linear_dims.split(",")]:
    start = time.perf_counter()
    projected = features @ components[:k].T
    correlations = [rademacher.least_squares_correlation(projected, signs[t])
                    for t in range(args.linear_draws)]
    est = rademacher.estimate(correlations)
    models.append({
        "model": f"linear, {k} principal components + bias",
        "n": args.n, "draws": args.linear_draws,
        "rademacher_estimate": est.mean, "std": est.std,
        "correlations": list(est.correlations),
        "mean_train_accuracy": float(np.mean([(c + 1) / 2
                                              for c in correlations])),
        "fitted_by": "least squares on sigma, then sign (lower bound on the "
                     "supremum)",
        "seconds": time.perf_counter() - start,
        "pca_seconds": pca_seconds,
    })
    print(json.dumps({k: models[-1][k] for k in ("model",
                                                 "rademacher_estimate")}))

  result = {
      "experiment": "rademacher",
      "paper_section": "2.2 (Eq. 1)",
      **results.provenance(),
      "seed": args.seed,
      "data": {"dataset": "cifar10", "train_examples": args.n,
               "subset": f"first {args.n} of the stored training order",
               "signs": "jax.random.rademacher(fold_in(key(seed), draw))"},
      "description": (
          f"Estimates of R_n(H) on {args.n} CIFAR-10 training images: the "
          "mean over draws of sigma of (1/n) sum_i sigma_i h(x_i) for the h "
          "fitted to sigma (networks: trained with the paper's protocol on "
          "labels (sigma + 1) / 2; linear classifiers on k principal "
          "components of the whitened 28x28 crops: least squares, then "
          "sign). Each entry is a lower bound on the supremum for its "
          "class."),
      "models": models,
  }
  results.write(args.out, result)
  return result


if __name__ == "__main__":
  cli.run_script(main)

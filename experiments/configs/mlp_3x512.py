r"""MLP 3x512 on CIFAR-10: Table 1's MLP 3x512 rows, Table 4.

One file, one row per variant (the text after the colon; the paper's train
and test accuracy for it is ``rethink_jax.config.table1_paper_row(config)``,
i.e. ``rethink_jax.paper.table1_row("mlp_3x512", random_crop=...,
weight_decay=..., random_labels=...)``):

  python -m rethink_jax.train --workdir=/tmp/mlp_3x512 \
      --config=experiments/configs/mlp_3x512.py
  --config=experiments/configs/mlp_3x512.py:weight_decay
  --config=experiments/configs/mlp_3x512.py:random_labels

Table 4's weight-decay row on random labels
(``paper.TABLE4[("mlp_3x512", "weight_decay")]``) is
``:random_labels,weight_decay``.

Protocol (Appendix A): SGD, momentum 0.9, learning rate
``paper.INITIAL_LEARNING_RATE["mlp_3x512"]`` times 0.95 per epoch, batch 128,
100 epochs (the paper does not state the number of epochs; our choice).

Runtime on the 2-core CPU machines: about 5 minutes for 100 epochs (estimate:
100 epochs of 50,000 images at the device-resident epoch rate, plus
evaluation); the step and epoch rates are in docs/benchmarks.md. GPU runtime is
not measured (no GPU was available to measure it).
"""

from rethink_jax.training import config as config_lib


def get_config(row: str = ""):
  return config_lib.table1_config("mlp_3x512", row)

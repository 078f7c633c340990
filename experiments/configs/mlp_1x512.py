r"""MLP 1x512 on CIFAR-10: Table 1's MLP 1x512 rows, Figure 1b/c, Table 4.

One file, one row per variant (the text after the colon; the paper's train
and test accuracy for it is ``rethink_jax.config.table1_paper_row(config)``,
i.e. ``rethink_jax.paper.table1_row("mlp_1x512", random_crop=...,
weight_decay=..., random_labels=...)``):

  python -m rethink_jax.train --workdir=/tmp/mlp_1x512 \
      --config=experiments/configs/mlp_1x512.py
  --config=experiments/configs/mlp_1x512.py:weight_decay
  --config=experiments/configs/mlp_1x512.py:random_labels

Figure 1b/c adds ``--config.randomization=partially_corrupted_labels
--config.corruption_probability=0.4 --config.stop_when_fitted=True``.
Table 4's weight-decay row on random labels
(``paper.TABLE4[("mlp_1x512", "weight_decay")]``) is
``:random_labels,weight_decay``.

Protocol (Appendix A): SGD, momentum 0.9, learning rate
``paper.INITIAL_LEARNING_RATE["mlp_1x512"]`` times 0.95 per epoch, batch 128,
100 epochs (the paper does not state the number of epochs; our choice).

Runtime on the 2-core CPU machines: 100 epochs took 205-226 s end to end in the
main job (results/main_job/*/summary.json, same model and data, x0.97 decay);
the step and epoch rates are in docs/benchmarks.md. GPU runtime is not measured
(no GPU was available to measure it).
"""

from rethink_jax.training import config as config_lib


def get_config(row: str = ""):
  return config_lib.table1_config("mlp_1x512", row)

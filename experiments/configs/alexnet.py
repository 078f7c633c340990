r"""Small AlexNet on CIFAR-10: Table 1's AlexNet rows, Figure 1b/c, Table 4.

One file, one row per variant (the text after the colon; the paper's train
and test accuracy for it is ``rethink_jax.config.table1_paper_row(config)``,
i.e. ``rethink_jax.paper.table1_row("alexnet", random_crop=...,
weight_decay=..., random_labels=...)``):

  python -m rethink_jax.train --workdir=/tmp/alexnet \
      --config=experiments/configs/alexnet.py
  --config=experiments/configs/alexnet.py:random_crop
  --config=experiments/configs/alexnet.py:weight_decay
  --config=experiments/configs/alexnet.py:random_crop,weight_decay
  --config=experiments/configs/alexnet.py:random_labels

Figure 1b/c adds ``--config.randomization=partially_corrupted_labels
--config.corruption_probability=0.4 --config.stop_when_fitted=True``.
Table 4's "weight decay on random labels" row (AlexNet fails to converge,
``paper.TABLE4[("alexnet", "weight_decay")]``) is
``:random_labels,weight_decay``.

Protocol (Appendix A): SGD, momentum 0.9, learning rate
``paper.INITIAL_LEARNING_RATE["alexnet"]`` times 0.95 per epoch, batch 128,
100 epochs (the paper does not state the number of epochs; our choice).

Runtime on the 2-core CPU machines: about 1.5 hours for 100 epochs (estimate:
100 epochs of 50,000 images at the device-resident epoch rate, plus
evaluation); the step and epoch rates are in docs/benchmarks.md. GPU runtime is
not measured (no GPU was available to measure it).
"""

from rethink_jax.training import config as config_lib


def get_config(row: str = ""):
  return config_lib.table1_config("alexnet", row)

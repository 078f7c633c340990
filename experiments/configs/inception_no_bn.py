r"""Small Inception without BatchNorm on CIFAR-10: Table 1's rows, Figure 2b.

One file, one row per variant (the text after the colon; the paper's train
and test accuracy for it is ``rethink_jax.config.table1_paper_row(config)``,
i.e. ``rethink_jax.paper.table1_row("inception_no_bn", random_crop=...,
weight_decay=..., random_labels=...)``):

  python -m rethink_jax.train --workdir=/tmp/inception_no_bn \
      --config=experiments/configs/inception_no_bn.py
  --config=experiments/configs/inception_no_bn.py:weight_decay
  --config=experiments/configs/inception_no_bn.py:random_labels

Figure 2b compares its plain row with inception.py's (BatchNorm improves
generalization by about 3-4%, Table 1); both metrics files carry
``cumulative_best_test_accuracy``.

Protocol (Appendix A): SGD, momentum 0.9, learning rate
``paper.INITIAL_LEARNING_RATE["inception_no_bn"]`` times 0.95 per epoch, batch 128,
100 epochs (the paper does not state the number of epochs; our choice).

Runtime on the 2-core CPU machines: about 10 hours for 100 epochs (estimate:
100 epochs of 50,000 images at the device-resident epoch rate, plus
evaluation); use a GPU; the step and epoch rates are in docs/benchmarks.md. GPU
runtime is not measured (no GPU was available to measure it).
"""

from rethink_jax.training import config as config_lib


def get_config(row: str = ""):
  return config_lib.table1_config("inception_no_bn", row)

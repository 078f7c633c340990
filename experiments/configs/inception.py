r"""Small Inception on CIFAR-10: Table 1's Inception rows, Figures 1 and 2b.

One file, one row per variant (the text after the colon; the paper's train
and test accuracy for it is ``rethink_jax.config.table1_paper_row(config)``,
i.e. ``rethink_jax.paper.table1_row("inception", random_crop=...,
weight_decay=..., random_labels=...)``):

  python -m rethink_jax.train --workdir=/tmp/inception \
      --config=experiments/configs/inception.py
  --config=experiments/configs/inception.py:random_crop
  --config=experiments/configs/inception.py:weight_decay
  --config=experiments/configs/inception.py:random_crop,weight_decay
  --config=experiments/configs/inception.py:random_labels

Figure 1a (training loss of each randomization) adds
``--config.randomization=shuffled_pixels`` (or ``random_pixels``,
``gaussian``); Figure 1b/c adds ``--config.randomization=
partially_corrupted_labels --config.corruption_probability=0.4
--config.stop_when_fitted=True`` and reads ``steps_to_fit`` and the final
test accuracy from summary.json. Figure 2b is the plain row (its metrics
carry ``cumulative_best_test_accuracy``); compare with inception_no_bn.py.
Table 4's Inception rows on random labels (``paper.TABLE4``) are
``:random_labels,weight_decay``, ``:random_labels,random_crop`` and
``:random_labels --config.flip_and_rotate=True``, the last two with
``--config.lr_decay_factor=0.999`` (``paper.LR_DECAY_PER_EPOCH_AUGMENTED``)
and more epochs, as the paper did.

Protocol (Appendix A): SGD, momentum 0.9, learning rate
``paper.INITIAL_LEARNING_RATE["inception"]`` times 0.95 per epoch, batch 128,
100 epochs (the paper does not state the number of epochs; our choice).

Runtime on the 2-core CPU machines: about 11 hours for 100 epochs (estimate:
100 epochs of 50,000 images at the device-resident epoch rate, plus
evaluation); use a GPU; the step and epoch rates are in docs/benchmarks.md. GPU
runtime is not measured (no GPU was available to measure it).
"""

from rethink_jax.training import config as config_lib


def get_config(row: str = ""):
  return config_lib.table1_config("inception", row)

r"""Inception V3 on Imagenette: the Table 2 pipeline on a 10-class subset.

Imagenette (9,469 training and 3,925 validation ImageNet images of 10
classes) exercises the streamed ImageNet path end to end where ImageNet is
not available; it is not an experiment of the paper, so there is no paper
number to compare with (``rethink_jax.config.table2_paper_row`` names the
ImageNet row of the same switches). Rows as in inception_v3_imagenet.py:

  python -m rethink_jax.train --workdir=/tmp/imagenette \
      --config=experiments/configs/inception_v3_imagenette.py
  --config=experiments/configs/inception_v3_imagenette.py:random_labels
  --config=experiments/configs/inception_v3_imagenette.py:data_aug,dropout,weight_decay

Quick check on CPU: ``--config.image_size=75 --config.train_examples=256
--config.test_examples=64 --config.num_epochs=1 --config.batch_size=32``.

Expected runtime: not measured.
"""

from rethink_jax.training import config as config_lib


def get_config(row: str = ""):
  return config_lib.table2_config("imagenette", row)

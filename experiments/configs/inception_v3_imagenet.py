r"""Inception V3 on ImageNet (ILSVRC 2012): Table 2 and Figure 2a.

One row per variant (the text after the colon, a comma-separated subset of
``data_aug``, ``dropout``, ``weight_decay``, ``random_labels``); the paper's
(top-1 train, top-5 train, top-1 test, top-5 test) for it is
``rethink_jax.config.table2_paper_row(config)``, i.e. an entry of
``rethink_jax.paper.TABLE2`` (best test top-1 during training, the early
stopping column, in ``paper.TABLE2_EARLY_STOPPING_TOP1``):

  python -m rethink_jax.train --workdir=/tmp/inception_v3 \
      --config=experiments/configs/inception_v3_imagenet.py:data_aug,dropout,weight_decay
  --config=experiments/configs/inception_v3_imagenet.py:data_aug
  --config=experiments/configs/inception_v3_imagenet.py:weight_decay
  --config=experiments/configs/inception_v3_imagenet.py
  --config=experiments/configs/inception_v3_imagenet.py:dropout,weight_decay,random_labels
  --config=experiments/configs/inception_v3_imagenet.py:weight_decay,random_labels
  --config=experiments/configs/inception_v3_imagenet.py:random_labels

ImageNet must already be prepared in the tfds data_dir (a manual download;
``--config.data_dir=...``). On several hosts add
``--config.distributed=True``. The paper does not state its ImageNet
optimizer, batch size or training length; the values here follow the
Inception V3 reference it reused (RMSProp, learning rate
``models.inception_v3.LEARNING_RATE`` decayed by 0.94 every 2 epochs,
dropout and weight decay of TF-slim) with batch 128 and 100 epochs, ours;
see rethink_jax/training/config.py (``table2_config``). The reference's
label smoothing and auxiliary head are regularizers Table 2 does not list,
so no row uses them (add ``--config.label_smoothing=0.1
--config.aux_loss_weight=0.4`` for the reference's loss).
Training accuracy is evaluated on a fixed 50,000-image training subset.

Expected runtime: not measured (no ImageNet and no GPU were available here).
"""

from rethink_jax.training import config as config_lib


def get_config(row: str = ""):
  return config_lib.table2_config("imagenet2012", row)

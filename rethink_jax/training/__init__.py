"""The training protocol of Section 3, one module per concern.

- ``config``: the base config (Appendix A's protocol) and its validation.
- ``train``: :func:`~rethink_jax.training.train.train_and_evaluate`, the
  epoch loop over a device mesh.
- ``steps``: the jit-compiled train and evaluation steps.
- ``train_state``: the train state, optimizer and learning-rate schedule.
- ``inputs``: the data of a run (subsets, randomization, fingerprint, feeds).
- ``checkpoint``: Orbax checkpoints with checked, bit-exact resume.
- ``metrics``: per-epoch metrics, ``metrics.jsonl``, the log line.
- ``event_file``: the TensorBoard view of the same metrics.
- ``workdir``: one run per workdir (lock), atomic writes, earlier results.

Each is also ``rethink_jax.<name>`` (e.g. ``from rethink_jax import config,
train``).
"""

"""Orbax checkpoints of the whole train state, numbered by completed epochs.

A checkpoint holds the :class:`~rethink_jax.train_state.TrainState`
(parameters, BatchNorm statistics, optimizer state and step) and a small JSON
record of the run's bookkeeping (epochs done, best test accuracy,
``steps_to_fit``, elapsed time, the config). Restoring both lets a stopped
run continue exactly where it was (paper-spec §3 protocol unchanged).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from rethink_jax.train_state import TrainState


class Checkpoints:
  """The checkpoints of one workdir (``workdir/checkpoints/<epoch>``).

  Saves are asynchronous: the arrays are copied off the device before
  :meth:`save` returns, so the caller may donate the state right after.
  """

  def __init__(self, workdir: str, max_to_keep: int):
    """Opens (or creates) the checkpoint folder.

    Args:
      workdir: the run's working directory.
      max_to_keep: number of most recent checkpoints kept on disk.
    """
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=True))

  def latest_epoch(self) -> int | None:
    """The number of completed epochs of the latest checkpoint, or None."""
    return self._manager.latest_step()

  def save(self, epoch: int, state: TrainState,
           bookkeeping: dict[str, Any]) -> None:
    """Saves the state after ``epoch`` completed epochs (asynchronously)."""
    self._manager.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        bookkeeping=ocp.args.JsonSave(bookkeeping)))

  def restore(self, epoch: int, like: TrainState,
              sharding: jax.sharding.Sharding
              ) -> tuple[TrainState, dict[str, Any]]:
    """Restores the checkpoint of ``epoch`` onto the devices.

    Args:
      epoch: the checkpoint to restore (see :meth:`latest_epoch`).
      like: a state (or ``jax.eval_shape`` of one) with the right structure.
      sharding: where the restored arrays go (replicated over the mesh).

    Returns:
      The train state and the bookkeeping record.
    """
    target = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
        like)
    restored = self._manager.restore(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target),
        bookkeeping=ocp.args.JsonRestore()))
    return restored.state, restored.bookkeeping

  def close(self) -> None:
    """Waits for pending saves to finish and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()

"""Orbax checkpoints of the whole train state, numbered by completed epochs.

A checkpoint holds the :class:`~rethink_jax.train_state.TrainState`
(parameters, BatchNorm statistics, optimizer state and step) and a JSON
record of the run's bookkeeping (epochs done, best test accuracy,
``steps_to_fit``, elapsed time, the config, the data fingerprint and every
epoch's metrics record). Restoring both lets a stopped run continue exactly
where it was (the Section 3 protocol unchanged).

Integrity: the bookkeeping stores the SHA-256 of the state's bytes and of
itself. A checkpoint that cannot be read, or whose bytes do not match, is
reported with its folder; the newest good checkpoint before it is used and
the damaged ones are moved to ``workdir/damaged_checkpoints/``. Saves are
synchronous, so a failed save (e.g. a full disk) is reported at the epoch it
belongs to, and Orbax's write-then-rename keeps an interrupted save from
ever looking finished; unfinished temporary folders are removed at start-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from rethink_jax.training import workdir as workdir_lib
from rethink_jax.training.train_state import TrainState

DAMAGED_DIR = "damaged_checkpoints"


class CheckpointError(RuntimeError):
  """A checkpoint cannot be saved or restored; the message names its folder."""


def state_sha256(state: Any) -> str:
  """SHA-256 over every leaf's path, dtype, shape and bytes (host copies).

  Leaves are read from the first addressable shard, which is the whole array
  for the replicated states this trainer keeps.
  """
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    if isinstance(leaf, jax.Array):
      leaf = leaf.addressable_data(0)
    array = np.ascontiguousarray(np.asarray(leaf))
    digest.update(f"{jax.tree_util.keystr(path)}|{array.dtype}|"
                  f"{array.shape}|".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def _book_sha256(book: dict[str, Any]) -> str:
  body = {k: v for k, v in book.items() if k != "book_sha256"}
  return hashlib.sha256(
      json.dumps(body, sort_keys=True).encode()).hexdigest()


class Checkpoints:
  """The checkpoints of one workdir (``workdir/checkpoints/<epoch>``)."""

  def __init__(self, workdir: str, max_to_keep: int):
    """Opens (or creates) the checkpoint folder.

    Args:
      workdir: the run's working directory.
      max_to_keep: number of most recent checkpoints kept on disk.
    """
    self.workdir = os.path.abspath(workdir)
    self.directory = os.path.join(self.workdir, "checkpoints")
    self._max_to_keep = max_to_keep
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    try:
      return ocp.CheckpointManager(
          self.directory,
          options=ocp.CheckpointManagerOptions(
              max_to_keep=self._max_to_keep, create=True,
              cleanup_tmp_directories=True,
              enable_async_checkpointing=False))
    except OSError as e:
      raise workdir_lib.os_error(e, self.directory, "create",
                                 "Choose a workdir on a writable disk.") from e

  def folder(self, epoch: int) -> str:
    """The folder of the checkpoint after ``epoch`` epochs."""
    return os.path.join(self.directory, str(epoch))

  def all_epochs(self) -> list[int]:
    """Epoch numbers of the checkpoints on disk, oldest first."""
    return sorted(self._manager.all_steps())

  def latest_epoch(self) -> int | None:
    """The number of completed epochs of the latest checkpoint, or None."""
    return self._manager.latest_step()

  def save(self, epoch: int, state: TrainState,
           bookkeeping: dict[str, Any]) -> None:
    """Saves the state after ``epoch`` completed epochs; returns when written.

    Raises:
      CheckpointError: the save failed (e.g. the disk is full); the message
        names the folder and the last good checkpoint, which is kept.
    """
    book = dict(bookkeeping, state_sha256=state_sha256(state))
    book["book_sha256"] = _book_sha256(book)
    try:
      self._manager.save(epoch, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          bookkeeping=ocp.args.JsonSave(book)))
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      # Orbax raises the OSError itself or wraps it; either way this epoch's
      # checkpoint does not exist and the previous one is intact.
      previous = [s for s in self._manager.all_steps() if s < epoch]
      kept = (f"The last good checkpoint, {self.folder(max(previous))}, is "
              f"kept" if previous else "No earlier checkpoint exists")
      raise CheckpointError(
          f"could not save the checkpoint of epoch {epoch} in "
          f"{self.folder(epoch)}: {type(e).__name__}: {e}. {kept}. Free disk "
          f"space (or lower config.checkpoints_to_keep) and run the same "
          f"command again to resume.") from e

  def _restore(self, epoch: int, like: TrainState,
               sharding: jax.sharding.Sharding
               ) -> tuple[TrainState, dict[str, Any]]:
    target = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
        like)
    restored = self._manager.restore(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target),
        bookkeeping=ocp.args.JsonRestore()))
    book = restored.bookkeeping
    if not isinstance(book, dict) or "book_sha256" not in book:
      raise CheckpointError("its bookkeeping record has no checksum")
    if _book_sha256(book) != book["book_sha256"]:
      raise CheckpointError("its bookkeeping record does not match its "
                            "checksum")
    if state_sha256(restored.state) != book["state_sha256"]:
      raise CheckpointError("its arrays do not match the checksum saved "
                            "with them")
    return restored.state, book

  def restore_latest(self, like: TrainState, sharding: jax.sharding.Sharding
                     ) -> tuple[TrainState, dict[str, Any]] | None:
    """Restores the newest good checkpoint, setting damaged newer ones aside.

    Args:
      like: a state (or ``jax.eval_shape`` of one) with the right structure.
      sharding: where the restored arrays go (replicated over the mesh).

    Returns:
      ``(state, bookkeeping)`` of the newest checkpoint that reads back with
      matching checksums, or None when there is no checkpoint.

    Raises:
      CheckpointError: checkpoints exist but none is good; the message names
        each folder and why, and what to remove to start the run over.
    """
    damaged = []
    for epoch in reversed(self.all_epochs()):
      try:
        state, book = self._restore(epoch, like, sharding)
      except Exception as e:  # pylint: disable=broad-except
        why = f"{type(e).__name__}: {str(e)[:300]}"
        logging.warning("Checkpoint %s is damaged (%s).", self.folder(epoch),
                        why)
        damaged.append((epoch, why))
        continue
      if damaged:
        self._set_aside([e for e, _ in damaged])
      return state, book
    if damaged:
      listing = "; ".join(f"{self.folder(e)}: {why}" for e, why in damaged)
      raise CheckpointError(
          f"no checkpoint of the run in {self.workdir} can be restored "
          f"({listing}). Remove {self.directory} to start the run over (its "
          f"metrics.jsonl and summary.json are then moved to "
          f"{workdir_lib.EARLIER_DIR}/), or restore the folder from a "
          f"backup.")
    return None

  def _set_aside(self, epochs: list[int]) -> None:
    target = os.path.join(self.workdir, DAMAGED_DIR)
    self._manager.close()
    for epoch in epochs if jax.process_index() == 0 else ():
      os.makedirs(target, exist_ok=True)
      destination = os.path.join(target, str(epoch))
      suffix = 1
      while os.path.exists(destination):
        destination = os.path.join(target, f"{epoch}.{suffix}")
        suffix += 1
      shutil.move(self.folder(epoch), destination)
      logging.warning("Moved the damaged checkpoint %s to %s; the run "
                      "resumes from the newest good checkpoint.",
                      self.folder(epoch), destination)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("rethink_jax damaged checkpoints")
    self._manager = self._open()

  def close(self) -> None:
    """Waits for pending saves to finish and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()

"""A run's working directory: one run per folder, and no result lost.

A workdir holds exactly one training run (Section 3 protocol): its
``metrics.jsonl``, ``checkpoints/`` and ``summary.json``. This module keeps it
that way:

* :func:`prepare` creates the folder, or says in one sentence why it cannot
  (a file in the way, no write permission, a read-only file system).
* :class:`Lock` admits one process at a time: ``run.lock`` is held with an
  exclusive ``flock`` for the whole run, and records its holder (pid, host,
  start time, command). A second process is refused with the holder named.
  The kernel releases the lock when its holder dies, however it dies, so the
  lock of a killed run is taken over, with a message naming the dead holder.
* :func:`set_aside` moves results that a new run would replace into
  ``earlier/<UTC time>/`` and says where, so nothing is discarded silently.
* :func:`write_json` and :func:`write_lines` replace a file atomically (write
  a temporary file, flush it to disk, rename it over the old one).

See docs/reliability.md for the guarantees and the tests that check them.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import shutil
import socket
import sys
from typing import Any, Iterable, TextIO

from absl import logging

LOCK_NAME = "run.lock"
EARLIER_DIR = "earlier"


class WorkdirError(RuntimeError):
  """The workdir cannot be used; the message names the path and the fix."""


class WorkdirLockedError(WorkdirError):
  """Another process is running in the workdir."""


def _reason(e: OSError) -> str:
  if e.errno == errno.ENOSPC:
    return "the disk is full"
  if e.errno == errno.EROFS:
    return "the file system is read-only"
  if e.errno in (errno.EACCES, errno.EPERM):
    return "permission denied"
  return e.strerror or str(e)


def os_error(e: OSError, path: str, doing: str, fix: str) -> WorkdirError:
  """A WorkdirError for an OSError: what failed, on which path, and the fix."""
  return WorkdirError(f"cannot {doing} {path}: {_reason(e)} "
                      f"[{type(e).__name__} {e.errno}]. {fix}")


def prepare(workdir: str | os.PathLike) -> str:
  """Creates the workdir if needed and checks that it can be written.

  Args:
    workdir: the run's working directory.

  Returns:
    Its absolute path.

  Raises:
    WorkdirError: the path is a file, or the folder cannot be created or
      written (permissions, read-only or full file system).
  """
  path = os.path.abspath(os.fspath(workdir))
  if os.path.exists(path) and not os.path.isdir(path):
    raise WorkdirError(f"workdir {path} is a file, not a folder; pass a "
                       f"folder path (it is created if missing).")
  fix = "Choose a workdir on a writable disk (e.g. --workdir=/tmp/run)."
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise os_error(e, path, "create the workdir", fix) from e
  probe = os.path.join(path, f".write_test.{os.getpid()}")
  try:
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise os_error(e, path, "write in the workdir", fix) from e
  return path


def _holder() -> dict[str, Any]:
  return dict(pid=os.getpid(), host=socket.gethostname(),
              started=datetime.datetime.now(datetime.timezone.utc)
              .isoformat(timespec="seconds"),
              command=" ".join(sys.argv) or sys.executable)


def _describe(holder: dict[str, Any]) -> str:
  return (f"pid {holder.get('pid')} on host {holder.get('host')}, started "
          f"{holder.get('started')} ({holder.get('command')})")


class Lock:
  """The exclusive lock of a workdir, held for the whole of a run.

  Use as a context manager. ``flock`` locks are released by the kernel when
  the holding process exits or is killed, and they work across hosts on NFS
  (Linux emulates them with POSIX locks there). In a multi-host run only
  process 0 takes the lock (``enabled=False`` elsewhere).
  """

  def __init__(self, workdir: str, enabled: bool = True):
    self.path = os.path.join(workdir, LOCK_NAME)
    self.enabled = enabled
    self.took_over: dict[str, Any] | None = None
    self._file: TextIO | None = None

  def _read_holder(self) -> dict[str, Any] | None:
    assert self._file is not None
    self._file.seek(0)
    text = self._file.read()
    if not text.strip():
      return None
    try:
      return json.loads(text)
    except ValueError:
      return {"pid": "?", "host": "?", "started": "?",
              "command": f"unreadable lock file: {text[:80]!r}"}

  def acquire(self) -> None:
    """Takes the lock, or raises naming the process that holds it.

    Raises:
      WorkdirLockedError: another live process holds the lock.
      WorkdirError: the lock file cannot be created.
    """
    if not self.enabled:
      return
    try:
      file = open(self.path, "a+")  # pylint: disable=consider-using-with
    except OSError as e:
      raise os_error(e, self.path, "create the lock file",
                     "Choose a workdir on a writable disk.") from e
    self._file = file
    try:
      fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      holder = self._read_holder()
      file.close()
      self._file = None
      if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
        raise os_error(e, self.path, "lock", "Choose a workdir on a local "
                       "disk or a file system with file locks.") from e
      who = _describe(holder) if holder else "a process that is starting"
      raise WorkdirLockedError(
          f"workdir {os.path.dirname(self.path)} is in use: its lock "
          f"{self.path} is held by {who}. A workdir holds one run; wait for "
          f"that run to end (or stop it), or use another workdir.") from None
    previous = self._read_holder()
    if previous is not None:
      # The lock was free, so its recorded holder ended without releasing it
      # (killed, or its machine went down).
      self.took_over = previous
      logging.warning("Took over the lock %s of %s, which is no longer "
                      "running; the run resumes from its checkpoints.",
                      self.path, _describe(previous))
    file.seek(0)
    file.truncate()
    file.write(json.dumps(_holder()) + "\n")
    file.flush()
    os.fsync(file.fileno())

  def release(self) -> None:
    """Empties the lock file (a clean end) and releases the lock."""
    if self._file is None:
      return
    try:
      self._file.seek(0)
      self._file.truncate()
      self._file.flush()
    except OSError:
      pass  # The lock itself is released below all the same.
    fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
    self._file.close()
    self._file = None

  def __enter__(self) -> "Lock":
    self.acquire()
    return self

  def __exit__(self, *exc_info) -> None:
    self.release()


def _fsync_dir(path: str) -> None:
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def write_lines(path: str, lines: Iterable[str]) -> None:
  """Replaces ``path`` atomically with the given lines (newline-terminated).

  Raises:
    WorkdirError: the file cannot be written (e.g. the disk is full); the
      old file is then left as it was.
  """
  tmp = f"{path}.{os.getpid()}.tmp"
  try:
    with open(tmp, "w") as f:
      for line in lines:
        f.write(line + "\n")
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except OSError as e:
    try:
      os.remove(tmp)
    except OSError:
      pass
    raise os_error(e, path, "write", "Free disk space (or fix the "
                   "permissions) and run again; the run resumes from its "
                   "last checkpoint.") from e
  _fsync_dir(os.path.dirname(path))


def write_json(path: str, record: dict[str, Any]) -> None:
  """Replaces ``path`` atomically with ``record`` as indented JSON."""
  write_lines(path, [json.dumps(record, indent=2, sort_keys=True)])


def set_aside(workdir: str, names: list[str], why: str) -> str:
  """Moves files of an earlier run into ``earlier/<UTC time>/``.

  Args:
    workdir: the run's working directory.
    names: file or folder names inside it (missing ones are skipped).
    why: the reason, for the log message.

  Returns:
    The folder the files were moved into.
  """
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime(
      "%Y%m%dT%H%M%S.%fZ")
  target = os.path.join(workdir, EARLIER_DIR, stamp)
  os.makedirs(target)
  for name in names:
    source = os.path.join(workdir, name)
    if os.path.lexists(source):
      shutil.move(source, os.path.join(target, name))
  logging.warning("%s: moved %s of the earlier run to %s.", why,
                  ", ".join(names), target)
  return target

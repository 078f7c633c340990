"""Results files and their provenance: one way to write both.

Every results file of the project (a run's ``summary.json``, the theory
experiments, the benchmarks, the reproduction report) records where it came
from with :func:`provenance`: the command, the time, the code (package
version and git commit), the machine and the library versions; and is
written by :func:`write` (atomically, so a reader never sees half a file).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import pathlib
import platform
import shlex
import subprocess
import sys
from typing import Any

from rethink_jax.training import workdir

# The distributions whose versions decide a result.
_VERSIONED = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy",
              "scipy", "tensorflow-datasets")


def versions() -> dict[str, str | None]:
  """Python's and the numerical libraries' versions (None: not installed)."""
  out: dict[str, str | None] = {"python": platform.python_version()}
  for name in _VERSIONED:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = None
  return out


def _git(*args: str) -> str | None:
  root = pathlib.Path(__file__).resolve().parent.parent
  try:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True,
                            text=True, timeout=10, check=False)
  except (OSError, subprocess.SubprocessError):
    return None
  return result.stdout.strip() if result.returncode == 0 else None


def code() -> dict[str, Any]:
  """The package version and, in a git checkout, the commit and whether the
  working tree differs from it (None outside a checkout)."""
  from rethink_jax import __version__  # pylint: disable=import-outside-toplevel
  commit = _git("rev-parse", "HEAD")
  status = _git("status", "--porcelain", "--untracked-files=no") if commit \
      else None
  return {"rethink_jax": __version__, "git_commit": commit,
          "git_dirty": None if status is None else bool(status)}


def _memory_gib() -> float | None:
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemTotal:"):
          return round(int(line.split()[1]) / 2**20, 1)
  except OSError:
    return None
  return None


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
  """Where a result comes from.

  Args:
    argv: the command line (default ``sys.argv``).

  Returns:
    ``command`` (as typed, ``python`` first), ``utc_time``, ``code``
    (:func:`code`), ``machine`` (platform, processor, CPU count, memory),
    ``xla_flags`` and ``versions`` (:func:`versions`).
  """
  argv = sys.argv if argv is None else argv
  return {
      "command": "python " + shlex.join(argv),
      "utc_time": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "code": code(),
      "machine": {
          "platform": platform.platform(),
          "processor": platform.processor() or platform.machine(),
          "cpu_count": os.cpu_count(),
          "memory_gib": _memory_gib(),
      },
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "versions": versions(),
  }


def write(path: str | os.PathLike, record: dict[str, Any]) -> pathlib.Path:
  """Writes ``record`` as indented, key-sorted JSON, atomically.

  Creates the folders; returns the path. Add ``provenance()`` to the record
  (as the callers in ``experiments/`` and ``benchmarks/`` do).
  """
  out = pathlib.Path(path)
  out.parent.mkdir(parents=True, exist_ok=True)
  workdir.write_json(os.fspath(out), record)
  return out

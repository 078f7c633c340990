"""The command line: ``rethink-jax train ...`` (or ``python -m rethink_jax.train``).

Examples::

  rethink-jax train --config=experiments/configs/mlp_1x512.py \\
      --workdir=/tmp/mlp --config.num_epochs=3
  rethink-jax train --config=experiments/configs/inception.py:random_labels \\
      --workdir=/tmp/inception_random --config.train_examples=1024
  rethink-jax train --help

Multi-process (TPU pods, several GPU hosts, or several processes on one
machine): run the same command in every process. On a cluster that
``jax.distributed.initialize()`` recognizes (Cloud TPU, SLURM, Open MPI,
Kubernetes) add ``--config.distributed=True``; elsewhere name the
coordinator and the processes::

  rethink-jax train --config=... --workdir=/shared/run \\
      --coordinator_address=host0:1234 --num_processes=2 --process_id=0

Errors in the config, the data, the workdir or a checkpoint are printed as
one ``error:`` line (``--traceback`` for the traceback), exit status 1.

Compiled programs are kept in JAX's persistent compilation cache, so the
runs of a sweep and every restart or resume of a run skip compiling a
program seen before: ``~/.cache/rethink_jax/jax_compilation_cache`` by
default, another directory in ``RETHINK_JAX_COMPILATION_CACHE`` (``off``:
none); a cache directory already set in JAX's own config
(``JAX_COMPILATION_CACHE_DIR``) is kept.

The flags of each command live in a private ``absl.flags.FlagValues``, so
importing this module (or any of ``rethink_jax``) defines no flag in the
process's global ``absl.flags.FLAGS``, and a script with its own
``--config`` or ``--workdir`` flag can import everything.
"""

from __future__ import annotations

import json
import logging as std_logging
import os
import sys
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

import rethink_jax

COMPILATION_CACHE_ENV = "RETHINK_JAX_COMPILATION_CACHE"
DEFAULT_COMPILATION_CACHE = os.path.join(
    "~", ".cache", "rethink_jax", "jax_compilation_cache")


def enable_compilation_cache() -> str | None:
  """Turns on JAX's persistent compilation cache (see the module doc).

  Returns:
    The cache directory, or None when it is off.
  """
  import jax  # pylint: disable=import-outside-toplevel
  configured = jax.config.jax_compilation_cache_dir  # type: ignore[attr-defined]
  if configured:
    return configured
  directory = os.environ.get(COMPILATION_CACHE_ENV) or (
      DEFAULT_COMPILATION_CACHE)
  if directory == "off":
    return None
  directory = os.path.expanduser(directory)
  jax.config.update("jax_compilation_cache_dir", directory)
  # Every program: the per-epoch and evaluation programs of a small model
  # compile in under JAX's default threshold of a second, and a sweep
  # compiles them once per run.
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  return directory


_COMMANDS = {"train": "train one model on one (randomized) data set and "
                      "evaluate it every epoch (Section 3)"}


def _train_flags() -> flags.FlagValues:
  """The flags of ``rethink-jax train``, in a fresh FlagValues."""
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file(
      "config", None, "Training config file (experiments/configs/*.py), "
      "optionally with ':variant'; override fields with --config.FIELD=VALUE.",
      flag_values=fv, lock_config=True)
  flags.DEFINE_string(
      "workdir", None, "Directory for metrics, checkpoints and the summary; "
      "an existing run there is resumed.", flag_values=fv)
  flags.DEFINE_bool(
      "traceback", False, "On a configuration, data, workdir or checkpoint "
      "error, print the full traceback, not just the message.",
      flag_values=fv)
  flags.DEFINE_string(
      "coordinator_address", None, "Multi-process runs: host:port of "
      "process 0's coordinator (see train.initialize_distributed).",
      flag_values=fv)
  flags.DEFINE_integer(
      "num_processes", None, "Multi-process runs: the number of processes.",
      flag_values=fv)
  flags.DEFINE_integer(
      "process_id", None, "Multi-process runs: this process's id, 0 .. "
      "num_processes - 1.", flag_values=fv)
  return fv


def _fail(message: str) -> int:
  print(f"error: {message}", file=sys.stderr)
  return 1


def _parse(fv: flags.FlagValues, argv: list[str]) -> int | None:
  """Parses ``argv`` into ``fv``; an exit status if it cannot be used.

  A misspelt or mistyped ``--config.FIELD`` raises inside ml_collections
  while the flags are parsed; it becomes one message like the others.
  """
  try:
    rest = fv(argv)
  except flags.Error as e:
    return _fail(f"{e}\nPass --help for the flags.")
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    if "--traceback" in argv:
      raise
    message = str(e).strip("'\"").replace("\\n", " ").replace("\\'", "'")
    return _fail(f"a --config override cannot be applied: {message}")
  if len(rest) > 1:
    return _fail(f"unexpected arguments: {rest[1:]}. Pass --help for the "
                 "flags.")
  missing = [f"--{name}" for name in ("config", "workdir")
             if fv[name].value is None]
  if missing:
    return _fail(f"{' and '.join(missing)} must be given. Pass --help for "
                 "the flags.")
  return None


def _ours_or_warning(record: std_logging.LogRecord) -> bool:
  """Keeps this package's INFO lines and everyone's warnings; drops the
  INFO chatter of libraries (Orbax logs several lines per checkpoint)."""
  return (record.levelno >= std_logging.WARNING or
          f"{os.sep}rethink_jax{os.sep}" in record.pathname)


def _start_logging() -> None:
  """absl INFO lines on stderr (one per epoch), timestamped."""
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()  # absl warns when logging before parsing.
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)
  handler = logging.get_absl_handler()
  if _ours_or_warning not in handler.filters:
    handler.addFilter(_ours_or_warning)


def train_command(argv: list[str]) -> int:
  """``rethink-jax train``: see the module docstring; returns the exit code."""
  from rethink_jax.training import train  # pylint: disable=import-outside-toplevel
  fv = _train_flags()
  if any(a in ("-h", "--help", "-help", "--helpshort") for a in argv[1:]):
    print(f"{argv[0]}: {_COMMANDS['train']}.\n\n{fv.get_help()}")
    return 0
  status = _parse(fv, argv)
  if status is not None:
    return status
  _start_logging()
  try:
    if (fv.coordinator_address, fv.num_processes,
        fv.process_id) != (None, None, None):
      train.initialize_distributed(fv.coordinator_address, fv.num_processes,
                                   fv.process_id)
    summary = train.train_and_evaluate(fv.config, fv.workdir)
  except train.USER_ERRORS as e:
    if fv.traceback:
      raise
    print(f"error: {e}", file=sys.stderr)
    print("(run with --traceback for the full traceback)", file=sys.stderr)
    return 1
  print(json.dumps(dict(final=summary["final"],
                        steps_to_fit=summary["steps_to_fit"],
                        steps_to_converge=summary["steps_to_converge"],
                        best_test_accuracy=summary["best_test_accuracy"],
                        stopped=summary["stopped"]), indent=2))
  return 0


_RUNNERS: dict[str, Callable[[list[str]], int]] = {"train": train_command}


def main(argv: Sequence[str] | None = None, prog: str = "rethink-jax") -> int:
  """The ``rethink-jax`` console script: ``rethink-jax COMMAND [FLAGS]``.

  Applies :func:`rethink_jax.configure_xla_cpu` before any JAX computation
  and :func:`enable_compilation_cache`.

  Args:
    argv: the arguments after the program name (default ``sys.argv[1:]``).
    prog: the program name shown in messages.

  Returns:
    The exit status.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  usage = "\n".join([f"usage: {prog} COMMAND [FLAGS]   (--help after a "
                     "command for its flags)", "", "commands:"] +
                    [f"  {name:8s}{text}" for name, text in _COMMANDS.items()])
  if not argv or argv[0] in ("-h", "--help", "help"):
    print(usage)
    return 0 if argv else 2
  if argv[0] not in _RUNNERS:
    print(f"error: unknown command {argv[0]!r}\n\n{usage}", file=sys.stderr)
    return 2
  rethink_jax.configure_xla_cpu()
  enable_compilation_cache()
  command = argv[0]
  name = prog if prog != "rethink-jax" else f"{prog} {command}"
  return _RUNNERS[command]([name, *argv[1:]])


def run_script(main_fn: Callable[[list[str]], Any]) -> None:
  """Runs a script of ``experiments/`` or ``benchmarks/`` like every command.

  :func:`rethink_jax.configure_xla_cpu` and :func:`enable_compilation_cache`
  first, then ``absl.app.run``: the
  script's absl flags (defined in the script, its own entry point), ``--help``
  and absl INFO logging on stderr (this package's lines, everyone's
  warnings). ``main_fn``'s return value is ignored.
  """
  rethink_jax.configure_xla_cpu()
  enable_compilation_cache()

  def _main(argv: list[str]) -> None:
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    _start_logging()
    main_fn(argv)

  app.run(_main)


if __name__ == "__main__":
  sys.exit(main())

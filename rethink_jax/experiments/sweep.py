"""Running a set of training runs: each run once, resumably, shardable.

An experiment declares the configs it needs (:mod:`rethink_jax.experiments.
suite`). A run's workdir is derived from its config alone
(:func:`run_name`), so two experiments that need the same run (Table 1's
random-label row and Figure 1b's p = 1 point, say) share one workdir and it
is trained once. :func:`run` trains what is missing, resumes what is
partial (the trainer resumes from the workdir's checkpoints) and skips what
is done; ``shard=(i, n)`` takes every n-th run so that n hosts can split a
sweep, and ``runs_per_program=K`` trains up to K compatible runs together
in one compiled program (:mod:`rethink_jax.training.multi_run`), which is
what fills a GPU or a TPU VM with paper-sized models.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Callable, Iterable, Sequence

import ml_collections

from rethink_jax.training import config as config_lib

SUMMARY = "summary.json"


def _identity(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The fields that make a run what it is (not the run-control ones).

  Fields added after runs were recorded are left out while they hold the
  value older runs had (``config.ADDED_FIELDS``), so those runs keep their
  names.
  """
  return {k: v for k, v in config.to_dict().items()
          if k not in config_lib.RESUMABLE_FIELDS and not (
              k in config_lib.ADDED_FIELDS and
              v == config_lib.ADDED_FIELDS[k])}


def run_key(config: ml_collections.ConfigDict) -> str:
  """10 hex digits of the SHA-256 of the config's identifying fields."""
  text = json.dumps(_identity(config), sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:10]


def run_name(config: ml_collections.ConfigDict) -> str:
  """``<model>/<randomization>[_p..][+regularizers][_n..][_s..]-<key>``.

  Readable, and unique through the key: configs that differ in any field
  other than the run-control ones (``config.RESUMABLE_FIELDS``) get
  different names; the same config always gets the same one.
  """
  parts = [config.randomization]
  if config.randomization == "partially_corrupted_labels":
    parts = [f"corrupted_p{config.corruption_probability:g}"]
  for field, tag in (("random_crop", "crop"), ("flip_and_rotate", "flip"),
                     ("weight_decay", "wd"), ("dropout_rate", "dropout"),
                     ("per_example_every_epochs", "examples")):
    if config[field]:
      parts.append(f"+{tag}")
  if config.train_examples:
    parts.append(f"_n{config.train_examples}")
  parts.append(f"_s{config.seed}")
  return f"{config.model}/{''.join(parts)}-{run_key(config)}"


def workdir(root: str, config: ml_collections.ConfigDict) -> str:
  """Where the run of ``config`` lives under ``root``."""
  return os.path.join(root, run_name(config))


def read_summary(path: str) -> dict[str, Any] | None:
  """A run's summary.json, or None if it has none (or it is unreadable)."""
  try:
    with open(os.path.join(path, SUMMARY)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def status(root: str, config: ml_collections.ConfigDict) -> str:
  """``"done"``, ``"partial"`` or ``"missing"``.

  Done: the workdir's summary.json was written by this very config (run
  control included, so raising ``num_epochs`` makes a done run partial
  again). Partial: anything else in the workdir.
  """
  path = workdir(root, config)
  summary = read_summary(path)
  if summary is not None and config_lib.complete(
      summary.get("config") or {}) == config.to_dict():
    return "done"
  if os.path.isdir(path) and os.listdir(path):
    return "partial"
  return "missing"


def unique(configs: Iterable[ml_collections.ConfigDict]
           ) -> list[ml_collections.ConfigDict]:
  """One config per run name, sorted by name (a stable order to shard)."""
  by_name: dict[str, ml_collections.ConfigDict] = {}
  for config in configs:
    name = run_name(config)
    if name in by_name and by_name[name].to_dict() != config.to_dict():
      raise ValueError(
          f"two declarations of run {name} differ in run-control fields: "
          f"{by_name[name].to_dict()} vs {config.to_dict()}; declare one.")
    by_name[name] = config
  return [by_name[name] for name in sorted(by_name)]


def parse_shard(text: str) -> tuple[int, int]:
  """``"i/n"`` -> ``(i, n)`` with 0 <= i < n."""
  try:
    index, count = (int(x) for x in text.split("/"))
  except ValueError:
    raise ValueError(f"--shard must look like i/n (e.g. 0/2); got "
                     f"{text!r}.") from None
  if not 0 <= index < count:
    raise ValueError(f"--shard {text}: need 0 <= i < n.")
  return index, count


def programs(configs: Sequence[ml_collections.ConfigDict],
             runs_per_program: int) -> list[list[ml_collections.ConfigDict]]:
  """Configs grouped into programs of at most ``runs_per_program`` runs.

  Configs with the same :func:`rethink_jax.training.multi_run.program_key`
  (same model, data, batch and schedule; they may differ in seed, data
  seed, randomization, learning rate, weight decay and run length) share a
  program, in the order given; streamed data sets always run alone.
  """
  from rethink_jax import data  # pylint: disable=g-import-not-at-top
  from rethink_jax.training import multi_run  # pylint: disable=g-import-not-at-top
  groups: dict[str, list[ml_collections.ConfigDict]] = {}
  out = []
  for config in configs:
    if runs_per_program <= 1 or data.is_streamed(config.dataset):
      out.append([config])
      continue
    group = groups.setdefault(multi_run.program_key(config), [])
    group.append(config)
    if len(group) == 1:
      out.append(group)
    if len(group) == runs_per_program:
      del groups[multi_run.program_key(config)]
  return out


def run(configs: Sequence[ml_collections.ConfigDict], root: str, *,
        shard: tuple[int, int] = (0, 1), runs_per_program: int = 1,
        train_fn: Callable[..., dict[str, Any]] | None = None,
        train_many_fn: Callable[..., list[dict[str, Any]]] | None = None,
        dry_run: bool = False,
        log: Callable[[str], None] = lambda line: print(line, flush=True)
        ) -> list[dict[str, Any]]:
  """Trains the runs of this shard that are not done.

  Example::

    from rethink_jax.training import config
    from rethink_jax.experiments import sweep
    configs = []
    for name in ("", "random_labels"):
      cfg = config.table1_config("mlp_1x512", name)
      with cfg.unlocked():
        cfg.num_epochs, cfg.train_examples = 1, 1024
      configs.append(cfg)
    sweep.run(configs, "/tmp/my_sweep", runs_per_program=2)  # one program
    sweep.run(configs, "/tmp/my_sweep")  # again: both runs are skipped

  Args:
    configs: the runs' configs (duplicates are merged).
    root: the folder the workdirs go under.
    shard: ``(i, n)``: this host takes runs i, i + n, i + 2n, ... of the
      sorted unique runs.
    runs_per_program: train up to this many compatible runs that are not
      done in one compiled program (:mod:`rethink_jax.training.multi_run`);
      1 trains each run alone.
    train_fn: ``train_fn(config, workdir)``; default
      :func:`rethink_jax.train.train_and_evaluate`.
    train_many_fn: ``train_many_fn(configs, workdirs)``; default
      :func:`rethink_jax.training.multi_run.train_and_evaluate_many`.
    dry_run: only report each run's status.
    log: where the one line per run goes (default: standard output).

  Returns:
    One entry per run of the shard: ``name``, ``workdir``, ``before``
    (status before) and ``seconds`` spent training (0 when skipped; the
    program's time for each run trained in a program of several).

  Raises:
    NonFiniteLossError: after every other run has been trained, naming the
      runs whose loss became NaN or infinite.
  """
  from rethink_jax.training import train  # pylint: disable=g-import-not-at-top
  if train_fn is None:
    train_fn = train.train_and_evaluate
  if train_many_fn is None:
    from rethink_jax.training import multi_run  # pylint: disable=g-import-not-at-top
    train_many_fn = multi_run.train_and_evaluate_many
  index, count = shard
  mine = unique(configs)[index::count]
  report = {}
  todo = []
  for number, config in enumerate(mine, 1):
    name, path = run_name(config), workdir(root, config)
    before = status(root, config)
    report[name] = dict(name=name, workdir=path, before=before, seconds=0.0)
    log(f"[{number}/{len(mine)}] {name}: {before}")
    if before != "done":
      todo.append(config)
  if dry_run:
    return list(report.values())
  failed: list[str] = []
  for group in programs(todo, runs_per_program):
    names = [run_name(c) for c in group]
    paths = [workdir(root, c) for c in group]
    start = time.perf_counter()
    try:
      if len(group) == 1:
        train_fn(group[0], paths[0])
      else:
        log(f"training {len(group)} runs in one program: {', '.join(names)}")
        train_many_fn(group, paths)
    except train.NonFiniteLossError as e:
      # A diverging run is a result: the others of the sweep go on.
      failed.append(str(e))
      log(f"{', '.join(names)}: failed: {e}")
    seconds = time.perf_counter() - start
    for name in names:
      report[name]["seconds"] = seconds
      log(f"{name}: finished in {seconds:.0f} s")
  if failed:
    raise train.NonFiniteLossError(
        f"{len(failed)} program(s) of the sweep diverged (the other runs "
        f"finished): " + "; ".join(failed))
  return list(report.values())

"""Reliability: a workdir holds one run, and nothing a user does loses results.

Each test reproduces one misuse or fault on a tiny MLP 1x512 run (synthetic
data through ``from_arrays``) and checks that it is refused with a message
naming the problem and the fix, or repaired. docs/reliability.md lists the
guarantees and the test behind each.
"""

import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import chex
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds

from rethink_jax.training import checkpoint
from rethink_jax.training import config as config_lib
from rethink_jax import data
from rethink_jax.training import metrics
from rethink_jax.data import streaming
from rethink_jax.training import train
from rethink_jax.training import workdir as workdir_lib
from rethink_jax.data.dataset import DataError, from_arrays
from conftest import synthetic, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING_FIELDS = ("images_per_second", "train_time_s", "eval_time_s",
                 "wall_time_s")


pytestmark = pytest.mark.usefixtures("persistent_compilation_cache")
DATA = (synthetic(64), synthetic(16, 1, split="test"))


def make_config(**changes):
  return tiny_config(**{"eval_batch_size": 16, **changes})


def run(workdir, data=DATA, **changes):
  return train.train_and_evaluate(make_config(**changes), str(workdir), *data)


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def without_timing(records):
  return [{k: v for k, v in r.items() if k not in TIMING_FIELDS}
          for r in records]


def final_state(workdir):
  """The latest checkpointed state's leaves, on this process's first device.

  (Read with an explicit target so that checkpoints written by several
  processes can be read by one.)
  """
  folder = os.path.join(workdir, "checkpoints")
  latest = max(int(name) for name in os.listdir(folder) if name.isdigit())
  path = os.path.join(folder, str(latest), "state")
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  with ocp.StandardCheckpointer() as checkpointer:
    target = jax.tree_util.tree_map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
        checkpointer.metadata(path).item_metadata)
    return jax.tree_util.tree_leaves(checkpointer.restore(path, target))


def assert_same_run(a, b):
  """Bit-identical final states and equal metrics (timings aside)."""
  chex.assert_trees_all_equal(final_state(a), final_state(b), strict=True)
  assert without_timing(read_metrics(a)) == without_timing(read_metrics(b))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """An uninterrupted 3-epoch run to compare repaired runs against."""
  workdir = tmp_path_factory.mktemp("straight")
  run(workdir, num_epochs=3)
  return workdir


# --------------------------------------------------------------------------
# One run per workdir: the lock
# --------------------------------------------------------------------------

HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from rethink_jax.training import workdir
    lock = workdir.Lock(sys.argv[1])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(600)
""")


def test_second_process_is_refused_and_a_dead_holders_lock_taken_over(
    tmp_path, caplog):
  holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(workdir_lib.WorkdirLockedError) as e:
      run(tmp_path)
    message = str(e.value)
    assert os.path.join(str(tmp_path), "run.lock") in message
    assert f"pid {holder.pid} on host {socket.gethostname()}" in message
    assert not os.path.exists(tmp_path / "checkpoints")
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # The holder died without releasing: its lock is taken over, with a word.
  with caplog.at_level(logging.WARNING):
    summary = run(tmp_path)
  assert summary["epochs_completed"] == 1
  assert f"pid {holder.pid}" in caplog.text and "Took over" in caplog.text
  # A clean end leaves the lock free and empty.
  assert (tmp_path / "run.lock").read_text() == ""


def test_two_runs_started_together_on_one_workdir(tmp_path):
  """Two real trainer processes: one trains, the other is refused."""
  script = textwrap.dedent(f"""
      import sys
      sys.path.insert(0, {os.path.join(REPO, 'tests')!r})
      import test_reliability as t
      from rethink_jax.training import workdir
      try:
        t.run(sys.argv[1], num_epochs=2)
        print("trained")
      except workdir.WorkdirLockedError as e:
        print("refused:", e)
  """)
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env=env) for _ in range(2)]
  outputs = [p.communicate(timeout=600)[0] for p in procs]
  assert sorted(o.split()[0] for o in outputs) == ["refused:", "trained"], \
      outputs
  assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2]


KILLABLE_RUN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import test_reliability as t
    t.run(sys.argv[1], data=t.killable_data(), num_epochs=8)
""")


def killable_data():
  """Enough steps per epoch (256) for a kill to land inside an epoch, on
  small gray 28 x 28 images so that each step is cheap."""
  return (synthetic(4096, 2, shape=(28, 28, 1)),
          synthetic(64, 3, shape=(28, 28, 1), split="test"))


def log_lines(workdir):
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      return f.read().count("\n")
  except FileNotFoundError:
    return 0


def test_killed_runs_resume_to_the_uninterrupted_result(tmp_path):
  """SIGKILL, SIGTERM and SIGINT at three moments, then one run to the end."""
  straight = tmp_path / "straight"
  run(straight, data=killable_data(), num_epochs=8)
  workdir = tmp_path / "killed"
  script = KILLABLE_RUN.format(tests=os.path.join(REPO, "tests"))
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  for signum, after_lines in ((signal.SIGKILL, 1), (signal.SIGTERM, 3),
                              (signal.SIGINT, 5)):
    proc = subprocess.Popen([sys.executable, "-c", script, str(workdir)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while (proc.poll() is None and log_lines(workdir) < after_lines and
           time.monotonic() < deadline):
      time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signum)
    proc.wait(timeout=300)
  subprocess.run([sys.executable, "-c", script, str(workdir)], cwd=REPO,
                 env=env, check=True, timeout=600)
  assert_same_run(workdir, straight)


def test_unusable_workdirs_are_named_with_the_fix(tmp_path, monkeypatch):
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  with pytest.raises(workdir_lib.WorkdirError, match="is a file, not a"):
    run(a_file)
  with pytest.raises(workdir_lib.WorkdirError,
                     match=f"cannot create the workdir {a_file}/run.*"
                     "writable"):
    run(a_file / "run")

  def denied(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied")

  monkeypatch.setattr(workdir_lib.os, "makedirs", denied)
  with pytest.raises(workdir_lib.WorkdirError,
                     match="permission denied.*writable disk"):
    run(tmp_path / "new")


# --------------------------------------------------------------------------
# The log: atomic, repaired from the checkpoint
# --------------------------------------------------------------------------


def test_torn_and_damaged_log_lines_are_repaired_from_the_checkpoint(
    tmp_path, straight):
  run(tmp_path, num_epochs=2)
  log = tmp_path / "metrics.jsonl"
  lines = log.read_text().splitlines()
  # A garbled earlier line and a torn last one (a kill mid-append).
  log.write_text(lines[0][:40] + "\n" + lines[1] + "\n" + '{"epoch": 3, "tr')
  run(tmp_path, num_epochs=3)
  assert_same_run(tmp_path, straight)


def test_failed_log_append_names_the_file_and_the_run_resumes(
    tmp_path, straight, monkeypatch):
  real_write = os.write
  calls = []

  def full_disk(fd, payload):
    calls.append(payload)
    if len(calls) == 2:  # Epoch 2's line.
      real_write(fd, payload[:25])
      raise OSError(errno.ENOSPC, "No space left on device")
    return real_write(fd, payload)

  monkeypatch.setattr(metrics.os, "write", full_disk)
  with pytest.raises(workdir_lib.WorkdirError) as e:
    run(tmp_path, num_epochs=3)
  assert "disk is full" in str(e.value)
  assert "append epoch 2 to" in str(e.value)
  assert str(tmp_path / "metrics.jsonl") in str(e.value)
  monkeypatch.undo()
  run(tmp_path, num_epochs=3)
  assert_same_run(tmp_path, straight)


# --------------------------------------------------------------------------
# Earlier results are never discarded silently
# --------------------------------------------------------------------------


def test_results_without_checkpoints_are_kept(tmp_path):
  first = run(tmp_path)
  shutil.rmtree(tmp_path / "checkpoints")
  old_summary = (tmp_path / "summary.json").read_text()
  old_log = (tmp_path / "metrics.jsonl").read_text()
  # Another run in the same workdir is refused, naming the field...
  with pytest.raises(config_lib.ConfigError,
                     match=r"learning_rate.*summary.json remains"):
    run(tmp_path, learning_rate=0.5)
  # ...and so is the same config on other data.
  with pytest.raises(DataError, match="train.labels_sha256"):
    run(tmp_path, data=(synthetic(64, 5), DATA[1]))
  assert (tmp_path / "summary.json").read_text() == old_summary
  # The same run starts over; the earlier files are moved, not overwritten.
  again = run(tmp_path)
  (earlier,) = (tmp_path / "earlier").iterdir()
  assert (earlier / "summary.json").read_text() == old_summary
  assert (earlier / "metrics.jsonl").read_text() == old_log
  assert without_timing([again["final"]]) == without_timing([first["final"]])


def test_fewer_epochs_than_already_done_is_refused(tmp_path):
  run(tmp_path, num_epochs=2)
  summary = (tmp_path / "summary.json").read_text()
  with pytest.raises(config_lib.ConfigError,
                     match=r"config.num_epochs.*completed 2 epochs"):
    run(tmp_path, num_epochs=1)
  assert (tmp_path / "summary.json").read_text() == summary
  assert run(tmp_path, num_epochs=2)["epochs_completed"] == 2


# --------------------------------------------------------------------------
# Resume checks the data and the checkpoint's bytes
# --------------------------------------------------------------------------


def test_resume_on_other_data_is_refused(tmp_path):
  run(tmp_path)
  train_set, test_set = DATA
  other_labels = train_set.replace(labels=(train_set.labels + 1) % 10,
                                   true_labels=(train_set.labels + 1) % 10)
  with pytest.raises(DataError, match=r"train.labels_sha256.*new workdir"):
    run(tmp_path, data=(other_labels, test_set), num_epochs=2)
  with pytest.raises(DataError, match=r"test.examples: 16 -> 8"):
    run(tmp_path, data=(train_set, synthetic(8, 1)), num_epochs=2)
  # The randomization is part of the data.
  with pytest.raises(config_lib.ConfigError, match="randomization"):
    run(tmp_path, randomization="random_labels", num_epochs=2)
  assert run(tmp_path, num_epochs=2)["epochs_completed"] == 2


def flip_a_byte(folder):
  """Flips one byte in the middle of the largest file under ``folder``."""
  files = [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs]
  path = max(files, key=os.path.getsize)
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0x10]))
  return path


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(
    tmp_path, straight, caplog):
  run(tmp_path, num_epochs=2)
  flip_a_byte(tmp_path / "checkpoints" / "2")
  with caplog.at_level(logging.WARNING):
    run(tmp_path, num_epochs=3)
  assert f"{tmp_path}/checkpoints/2 is damaged" in caplog.text
  assert (tmp_path / "damaged_checkpoints" / "2").is_dir()
  assert_same_run(tmp_path, straight)


def test_damaged_only_checkpoint_names_its_folder(tmp_path):
  run(tmp_path)
  flip_a_byte(tmp_path / "checkpoints" / "1" / "state")
  with pytest.raises(checkpoint.CheckpointError) as e:
    run(tmp_path, num_epochs=2)
  assert f"{tmp_path}/checkpoints/1:" in str(e.value)
  assert f"Remove {tmp_path}/checkpoints to start the run over" in str(
      e.value)


def test_edited_bookkeeping_is_detected(tmp_path):
  run(tmp_path)
  path = tmp_path / "checkpoints" / "1" / "bookkeeping" / "metadata"
  with open(path) as f:
    book = json.load(f)
  book["best_test_accuracy"] = 1.0
  with open(path, "w") as f:
    json.dump(book, f)
  with pytest.raises(checkpoint.CheckpointError,
                     match="bookkeeping record does not match"):
    run(tmp_path, num_epochs=2)


def test_failed_save_is_reported_at_its_epoch_and_the_run_resumes(
    tmp_path, straight, monkeypatch):
  real_save = ocp.CheckpointManager.save

  def disk_full_at_epoch_2(self, step, *args, **kwargs):
    if step == 2:
      raise OSError(errno.ENOSPC, "No space left on device")
    return real_save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "save", disk_full_at_epoch_2)
  with pytest.raises(checkpoint.CheckpointError) as e:
    run(tmp_path, num_epochs=3)
  message = str(e.value)
  assert f"checkpoint of epoch 2 in {tmp_path}/checkpoints/2" in message
  assert f"{tmp_path}/checkpoints/1, is kept" in message
  assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2]
  monkeypatch.undo()
  run(tmp_path, num_epochs=3)
  assert_same_run(tmp_path, straight)


# --------------------------------------------------------------------------
# Bad input data
# --------------------------------------------------------------------------


def test_test_labels_beyond_the_training_classes_are_refused(tmp_path):
  rng = np.random.default_rng(0)
  test_set = from_arrays(rng.integers(0, 256, (16, 32, 32, 3), np.uint8),
                         np.arange(16) % 11)  # 11 classes
  with pytest.raises(DataError, match="10 classes but the test set has 11"):
    run(tmp_path, data=(DATA[0], test_set))


def test_nonfinite_pixels_are_refused_naming_count_and_index(tmp_path):
  images = np.zeros((6, 8, 8, 3), np.float32)
  images[3, 1, 1, 0] = np.nan
  images[5, 0, 0, 2] = np.inf
  with pytest.raises(DataError, match=r"2 of 6 images.*first at index 3"):
    from_arrays(images, np.arange(6) % 2)
  # Data sets edited with replace() are checked before training too.
  test_set = DATA[1].replace(images=DATA[1].images.astype(np.float32))
  bad = test_set.images.copy()
  bad[7, 0, 0, 0] = np.nan
  with pytest.raises(DataError, match=r"test images: 1 of 16.*index 7"):
    run(tmp_path, data=(DATA[0], test_set.replace(images=bad)))


@pytest.mark.parametrize("images, labels, kwargs, message", [
    (np.zeros((4, 3, 32, 32), np.uint8), [0, 1, 0, 1], {},
     "channels-first.*transpose(0, 2, 3, 1)"),
    (np.zeros((2, 8, 8, 3), np.uint8), np.asarray([0, 2**32], np.int64), {},
     "labels must lie in"),
    (np.zeros((2, 8, 8, 3), np.uint8), np.asarray([1, 2**63], np.uint64),
     {"num_classes": 10}, "found values up to 9223372036854775808"),
    (np.zeros((2, 8, 8, 3), np.uint8), [0, 1], {"num_classes": 2.5},
     "whole number"),
    (np.zeros((2, 8, 8, 3), np.uint8), [0, 0], {"num_classes": 0},
     r"num_classes must lie in \[1,"),
    (np.zeros((2, 8, 8, 3), np.uint8), [0, -11], {},
     "negative labels.*minimum -11"),
])
def test_from_arrays_refuses_what_it_would_misread(images, labels, kwargs,
                                                   message):
  with pytest.raises(DataError, match=message.replace("(", r"\(").replace(
      ")", r"\)") if "transpose" in message else message):
    from_arrays(images, np.asarray(labels), **kwargs)


def test_from_arrays_wide_integer_labels_keep_their_values():
  ds = from_arrays(np.zeros((2, 8, 8, 3), np.uint8),
                   np.asarray([3, 1], np.uint64), 4)
  assert ds.labels.tolist() == [3, 1] and ds.labels.dtype == np.int32


@pytest.mark.parametrize("field", ["seed", "data_seed"])
def test_seeds_beyond_jax_are_config_errors(field):
  with pytest.raises(config_lib.ConfigError,
                     match=rf"config.{field}: .*\[0, 2\*\*32\)"):
    config_lib.validate(make_config(**{field: 99999999999999999999}))


# --------------------------------------------------------------------------
# Damaged or missing prepared data
# --------------------------------------------------------------------------


class ReliabilityTiny(tfds.core.GeneratorBasedBuilder):
  """Eight 8x8 images in three classes, prepared for real as ArrayRecord."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=(
        tfds.features.FeaturesDict(
            {"image": tfds.features.Image(shape=(8, 8, 3)),
             "label": tfds.features.ClassLabel(num_classes=3)})))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    rng = np.random.default_rng(0)
    for i in range(8):
      yield i, {"image": rng.integers(0, 256, (8, 8, 3), np.uint8),
                "label": i % 3}


@pytest.fixture
def tiny(tmp_path):
  builder = ReliabilityTiny(data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(file_format="array_record")
  return builder


def test_damaged_array_cache_is_rebuilt(tiny, caplog):
  images, labels = data._read_all(tiny, "train")
  (cache,) = (tiny.data_path / "rethink_jax_arrays").iterdir()
  cache.write_bytes(cache.read_bytes()[:100])
  with caplog.at_level(logging.WARNING):
    again_images, again_labels = data._read_all(tiny, "train")
  assert f"{cache} is damaged" in caplog.text
  np.testing.assert_array_equal(again_images, images)
  np.testing.assert_array_equal(again_labels, labels)
  with np.load(cache) as rebuilt:  # Rewritten whole.
    np.testing.assert_array_equal(rebuilt["labels"], labels)


def test_damaged_records_name_the_folder_to_delete(tiny):
  stream = streaming.StreamingDataset.from_builder(
      tiny, "train", name="tiny", image_size=8)
  for path in tiny.data_path.glob("*.array_record*"):
    path.write_bytes(path.read_bytes()[:60] + b"\x00" * 400)
  fix = f"delete {tiny.data_dir} and run again"
  with pytest.raises(DataError, match=fix):
    data._read_all(tiny, "train")
  with pytest.raises(DataError, match=rf"indices \[5\] .*{fix}"):
    stream.batch(np.asarray([5]), epoch=0, train=False)


@pytest.mark.real_data("fashion_mnist", offline=True)
def test_unwritable_data_dir_names_the_folder(tmp_path):
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  with pytest.raises(DataError, match=f"into {a_file}/.*writable folder"):
    data.load("fashion_mnist", data_dir=a_file / "tfds", source="offline")


def test_missing_offline_archive_fails_in_seconds(tmp_path, monkeypatch):
  monkeypatch.setenv("RETHINK_JAX_OFFLINE_DIR", str(tmp_path / "empty"))
  start = time.perf_counter()
  with pytest.raises(DataError, match=rf"cifar10-jpeg.tar.gz.*not found in "
                     rf"{tmp_path}/empty"):
    data.load("cifar10", data_dir=tmp_path / "tfds")
  # Without an offline folder named and no network, the download host is
  # probed once instead of retrying for minutes.
  monkeypatch.delenv("RETHINK_JAX_OFFLINE_DIR")
  monkeypatch.setitem(data.DATASETS, "mnist", data.DATASETS["mnist"].__class__(
      **{**data.DATASETS["mnist"].__dict__,
         "download_host": "no-such-host.invalid"}))
  with pytest.raises(DataError, match="no-such-host.invalid cannot be "
                     "reached"):
    data.load("mnist", data_dir=tmp_path / "tfds")
  assert time.perf_counter() - start < 30


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------


def test_command_line_prints_one_message_per_user_error(tmp_path):
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  base = [sys.executable, "-m", "rethink_jax.train",
          "--config=experiments/configs/mlp_1x512.py"]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  cases = [(base + [f"--workdir={a_file}"], "is a file, not a folder"),
           (base + [f"--workdir={tmp_path}/run",
                    "--config.seed=99999999999999999999"], "config.seed"),
           (base + [f"--workdir={tmp_path}/run", "--config.num_epoch=3"],
            'Did you mean "num_epochs"')]
  for command, message in cases:
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "error: " in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr
  result = subprocess.run(cases[0][0] + ["--traceback"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode != 0 and "Traceback" in result.stderr


# --------------------------------------------------------------------------
# Multi-process: the documented flags
# --------------------------------------------------------------------------


def free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.real_data("cifar10")
def test_two_processes_end_equal_to_one_process_with_two_devices(tmp_path):
  command = [sys.executable, "-m", "rethink_jax.train",
             "--config=experiments/configs/mlp_1x512.py:random_labels",
             "--config.num_epochs=2", "--config.train_examples=256",
             "--config.test_examples=128", "--config.batch_size=32",
             "--config.eval_batch_size=64", "--config.progress=off"]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  two_devices = dict(env, XLA_FLAGS=env.get("XLA_FLAGS", "") +
                     " --xla_force_host_platform_device_count=2")
  single = subprocess.run(command + [f"--workdir={tmp_path}/one"],
                          env=two_devices, cwd=REPO, capture_output=True,
                          text=True, timeout=600)
  assert single.returncode == 0, single.stderr[-3000:]
  address = f"localhost:{free_port()}"
  procs = [subprocess.Popen(
      command + [f"--workdir={tmp_path}/two", f"--coordinator_address="
                 f"{address}", "--num_processes=2", f"--process_id={i}"],
      env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for i in range(2)]
  for p in procs:
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
  with open(tmp_path / "two" / "summary.json") as f:
    summary = json.load(f)
  assert summary["devices"]["processes"] == 2
  assert summary["devices"]["count"] == 2
  chex.assert_trees_all_equal(final_state(tmp_path / "one"),
                              final_state(tmp_path / "two"), strict=True)
  assert without_timing(read_metrics(tmp_path / "one")) == without_timing(
      read_metrics(tmp_path / "two"))

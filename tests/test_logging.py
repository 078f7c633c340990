"""Per-epoch log lines and TensorBoard event files."""

from __future__ import annotations

import glob
import json
import logging
import os

from conftest import synthetic, tiny_config
import pytest

from rethink_jax.training import event_file
from rethink_jax.training import metrics
from rethink_jax.training import train


def _read_events(path):
  """(step, {tag: value}) of each event, read by TensorFlow's own reader."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  events = []
  for raw in tf.data.TFRecordDataset(path):  # checks both CRCs
    event = tf.compat.v1.Event.FromString(raw.numpy())
    events.append((event.step, event.file_version,
                   {v.tag: v.simple_value for v in event.summary.value}))
  return events


def test_crc32c_known_answer():
  # RFC 3720, B.4: CRC-32C of the ASCII digits "123456789".
  assert event_file.crc32c(b"123456789") == 0xE3069283
  assert event_file.crc32c(b"") == 0


def test_event_file_is_read_by_tensorflow(tmp_path):
  records = [dict(epoch=1, step=10, train_loss=2.25, test_accuracy=0.125,
                  steps_to_fit=None, flag=True)]
  writer = event_file.EventFile(str(tmp_path), records)
  writer.write(dict(epoch=2, step=20, train_loss=1.5, test_accuracy=0.25))
  events = _read_events(writer.path)
  assert events[0][:2] == (0, "brain.Event:2")
  assert events[1][0] == 10 and events[2][0] == 20
  assert events[1][2] == {"train_loss": 2.25, "test_accuracy": 0.125}
  assert events[2][2] == {"train_loss": 1.5, "test_accuracy": 0.25}


def test_event_file_is_rebuilt_from_the_records(tmp_path):
  first = event_file.EventFile(str(tmp_path), [])
  first.write(dict(epoch=1, step=5, train_loss=1.0))
  first.write(dict(epoch=2, step=10, train_loss=0.5))  # not checkpointed
  again = event_file.EventFile(str(tmp_path), [dict(epoch=1, step=5,
                                                    train_loss=1.0)])
  files = glob.glob(str(tmp_path / (event_file.PREFIX + "*")))
  assert files == [again.path]
  assert [e[0] for e in _read_events(again.path)] == [0, 5]


def test_epoch_line():
  record = dict(epoch=3, step=240, train_loss=1.83421, train_accuracy=0.412,
                test_accuracy=0.3875, learning_rate=0.09025,
                images_per_second=1240.4)
  line = metrics.epoch_line(record, 50, 391.2)
  assert line == ("epoch 3/50  step 240  loss 1.8342  train 41.20%  "
                  "test 38.75%  lr 0.09025  1,240 img/s  ETA 6m31s")
  assert metrics.duration(7500) == "2h05m"
  assert "loss n/a" in metrics.epoch_line(dict(record, train_loss=None), 50,
                                          None)


def test_training_logs_every_epoch_and_writes_events(tmp_path, caplog):
  train_set, test_set = synthetic(64), synthetic(32, seed=1, split="test")
  with caplog.at_level(logging.INFO, logger="absl"):
    summary = train.train_and_evaluate(tiny_config(num_epochs=3),
                                       str(tmp_path), train_set, test_set)
  lines = [r.getMessage() for r in caplog.records
           if r.pathname.endswith("train.py")]
  epochs = [line for line in lines if line.startswith("epoch ")]
  assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]
  assert "ETA 0s" in epochs[-1] and "img/s" in epochs[0]
  assert "stopped (num_epochs) after 3 epochs" in lines[-1]
  with open(tmp_path / metrics.LOG_NAME) as f:
    records = [json.loads(line) for line in f]
  (path,) = glob.glob(os.path.join(tmp_path, event_file.PREFIX + "*"))
  events = _read_events(path)[1:]
  assert [e[0] for e in events] == [r["step"] for r in records]
  for (_, _, values), record in zip(events, records):
    assert values["train_loss"] == pytest.approx(record["train_loss"])
    assert values["test_accuracy"] == pytest.approx(record["test_accuracy"])
  assert summary["epochs_completed"] == 3

"""TensorBoard event files of a run's per-epoch scalars.

``metrics.jsonl`` is the record of a run; the event file beside it is a view
of the same numbers for TensorBoard (``tensorboard --logdir results/runs``)
and is rebuilt from the records whenever a run starts or resumes, so it
never disagrees with the log.

The writer is this module's ~50 lines rather than ``tf.summary``,
tensorboardX or TensorBoard itself: it needs no dependency and does not
import TensorFlow (the in-memory data path never does), it starts no
background thread, and each epoch's values are on disk when the call
returns, as the JSON lines are. It writes what TensorBoard reads: TFRecord
framing (length, masked CRC-32C of the length, payload, masked CRC-32C of
the payload) around ``Event`` protocol buffers holding scalar ``Summary``
values; ``tests/test_logging.py`` reads the files back with TensorFlow's own
reader.
"""

from __future__ import annotations

import glob
import math
import os
import socket
import struct
import time
from typing import Any, Iterable

PREFIX = "events.out.tfevents."


def _crc32c_table() -> list[int]:
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    table.append(crc)
  return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli), the checksum of TFRecord framing."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> bytes:
  crc = crc32c(data)
  return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8)
                     & 0xFFFFFFFF)


def _varint(value: int) -> bytes:
  out = bytearray()
  while True:
    bits, value = value & 0x7F, value >> 7
    out.append(bits | (0x80 if value else 0))
    if not value:
      return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
  """A length-delimited protocol-buffer field."""
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: int, *, file_version: str | None = None,
           scalars: dict[str, float] | None = None) -> bytes:
  """An ``Event``: wall_time (1), step (2), file_version (3), summary (5)."""
  out = b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step)
  if file_version is not None:
    out += _field(3, file_version.encode())
  if scalars:
    values = b"".join(
        _field(1, _field(1, tag.encode()) + b"\x15" + struct.pack("<f", v))
        for tag, v in scalars.items())
    out += _field(5, values)
  return out


def _record(payload: bytes) -> bytes:
  length = struct.pack("<Q", len(payload))
  return length + _masked_crc(length) + payload + _masked_crc(payload)


def scalars(record: dict[str, Any]) -> dict[str, float]:
  """The finite numbers of a metrics record, by field name."""
  return {k: float(v) for k, v in sorted(record.items())
          if k not in ("epoch", "step") and isinstance(v, (int, float))
          and not isinstance(v, bool) and math.isfinite(v)}


class EventFile:
  """One event file in ``directory`` holding the scalars of each epoch.

  Opening it removes the directory's earlier event files and writes the
  given records again, so the file always mirrors ``metrics.jsonl``.
  """

  def __init__(self, directory: str, records: Iterable[dict[str, Any]]):
    for old in glob.glob(os.path.join(directory, PREFIX + "*")):
      os.remove(old)
    self.path = os.path.join(
        directory, f"{PREFIX}{int(time.time())}.{socket.gethostname()}")
    with open(self.path, "wb") as f:
      f.write(_record(_event(time.time(), 0, file_version="brain.Event:2")))
    for record in records:
      self.write(record)

  def write(self, record: dict[str, Any]) -> None:
    """Appends one epoch's record (its ``step`` is the x axis)."""
    event = _event(time.time(), int(record.get("step", 0)),
                   scalars=scalars(record))
    with open(self.path, "ab") as f:
      f.write(_record(event))

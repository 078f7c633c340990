"""What every benchmark results file records, and how it is written."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import jax


def write_report(script: str, out: str | None, **fields: Any) -> None:
  """Prints the benchmark's JSON and writes it to ``out`` (if given).

  The report records the exact command, the XLA_FLAGS in effect (after
  ``rethink_jax.configure_xla_cpu``), the devices and the JAX version, then
  ``fields``.
  """
  report = dict(command=" ".join(["python", script, *sys.argv[1:]]),
                xla_flags=os.environ.get("XLA_FLAGS", ""),
                devices=dict(count=jax.device_count(),
                             kind=jax.devices()[0].device_kind,
                             platform=jax.devices()[0].platform),
                cpu_count=os.cpu_count(), jax=jax.__version__, **fields)
  text = json.dumps(report, indent=2)
  print(text)
  if out:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
      f.write(text + "\n")

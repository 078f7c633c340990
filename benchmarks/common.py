"""What every benchmark results file records, and how it is written."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import jax

from rethink_jax import results


def write_report(script: str, out: str | None, **fields: Any) -> None:
  """Prints the benchmark's JSON and writes it to ``out`` (if given).

  The report records its provenance (:func:`rethink_jax.results.provenance`:
  the exact command, the XLA_FLAGS in effect after
  ``rethink_jax.configure_xla_cpu``, code, machine and versions), the
  devices, then ``fields``.
  """
  report = dict(results.provenance([script, *sys.argv[1:]]),
                devices=dict(count=jax.device_count(),
                             kind=jax.devices()[0].device_kind,
                             platform=jax.devices()[0].platform),
                cpu_count=os.cpu_count(), jax=jax.__version__, **fields)
  print(json.dumps(report, indent=2, sort_keys=True))
  if out:
    results.write(out, report)

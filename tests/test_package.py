"""Importing rethink_jax sets the measured XLA:CPU flag, never over a user's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import rethink_jax


def _flags_after_import(xla_flags: str | None) -> str:
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  if xla_flags is not None:
    env["XLA_FLAGS"] = xla_flags
  out = subprocess.run(
      [sys.executable, "-c",
       "import os, rethink_jax; print(os.environ.get('XLA_FLAGS', ''))"],
      env=env, capture_output=True, text=True, check=True)
  return out.stdout.strip()


@pytest.mark.parametrize("user,expected", [
    (None, rethink_jax.CPU_XLA_FLAGS),
    ("--xla_force_host_platform_device_count=8",
     "--xla_force_host_platform_device_count=8 " + rethink_jax.CPU_XLA_FLAGS),
    ("--xla_cpu_experimental_ynn_fusion_type=-individual_dot",
     "--xla_cpu_experimental_ynn_fusion_type=-individual_dot"),
])
def test_cpu_xla_flags_on_import(user, expected):
  assert _flags_after_import(user) == expected

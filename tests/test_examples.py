"""The ``Example::`` blocks of the main entry points' docstrings run."""

from __future__ import annotations

import contextlib
import io
import textwrap

import pytest

import rethink_jax
from rethink_jax import corruption, data, models
from rethink_jax.training import train
from rethink_jax.experiments import sweep


def example(obj) -> str:
  """The code of the ``Example::`` block of ``obj``'s docstring."""
  doc = obj.__doc__
  assert "Example::" in doc, f"{obj.__name__} has no Example:: block"
  lines = doc.split("Example::", 1)[1].split("\n")[1:]
  code = [line for line in lines if line.strip()]
  indent = len(code[0]) - len(code[0].lstrip())
  block = []
  for line in lines:
    if line.strip() and len(line) - len(line.lstrip()) < indent:
      break  # the next section, less indented than the code
    block.append(line)
  return textwrap.dedent("\n".join(block)).strip()


def run(code: str, tmp_path) -> tuple[str, dict]:
  """Runs an example (its /tmp paths moved under tmp_path): (stdout, names)."""
  code = code.replace('"/tmp/', f'"{tmp_path}/')
  out, names = io.StringIO(), {}
  with contextlib.redirect_stdout(out):
    exec(compile(code, "<example>", "exec"), names)  # noqa: S102
  return out.getvalue(), names


def test_every_entry_point_has_an_example():
  for obj in (rethink_jax, rethink_jax.configure_xla_cpu, models.create,
              data.load, corruption.randomize, train.train_and_evaluate,
              sweep.run):
    assert example(obj)


def test_model_example(tmp_path):
  _, names = run(example(models.create), tmp_path)
  assert models.count_params(names["variables"]) == 1_387_786


@pytest.mark.real_data("cifar10", "fashion_mnist")
@pytest.mark.parametrize("obj", [rethink_jax, data.load, corruption.randomize,
                                 train.train_and_evaluate, sweep.run],
                         ids=lambda o: o.__name__)
def test_data_examples(obj, tmp_path):
  out, names = run(example(obj), tmp_path)
  if obj is data.load:
    assert out.strip() == "(10000, 28, 28, 1) uint8"
  if obj is corruption.randomize:
    assert 0.34 * 50_000 < int(out) < 0.38 * 50_000
  if obj is train.train_and_evaluate:
    assert names["summary"]["epochs_completed"] == 2
  if obj is sweep.run:
    again = sweep.run(names["configs"], str(tmp_path / "my_sweep"))
    assert [entry["before"] for entry in again] == ["done", "done"]

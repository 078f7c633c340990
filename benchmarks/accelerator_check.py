r"""The check to run on a GPU or TPU host, in one go (about 8 minutes).

1. the fast test subset on that backend (``pytest -m "not slow"`` style
   selection of the trainer, multi-run and model tests);
2. ``benchmarks/multi_run.py`` for the CIFAR models at K = 1 and the larger
   K (vmapped, the accelerator layout);
3. one small paper-scale run for a few epochs (MLP 1x512 on full CIFAR-10
   with random labels, 8 seeds in one program);

and writes everything to one results file::

  python benchmarks/accelerator_check.py \
      --out=results/benchmarks/<machine>_accelerator_check.json

(``make accelerator-check``). Each part has its own time limit, so a part
that hangs leaves the others' results in the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(__file__))

import common  # noqa: E402  # pylint: disable=wrong-import-position

from rethink_jax import cli  # noqa: E402  # pylint: disable=wrong-import-position

_OUT = flags.DEFINE_string("out", None, "The results file.")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/rethink_jax_accelerator_check",
                               "Where the paper-scale runs go.")

FAST_TESTS = ["tests/test_train.py", "tests/test_multi_run.py",
              "tests/test_models.py", "-k", "not killed"]
RUN = r"""
import sys
from rethink_jax.experiments import suite
from rethink_jax.training import multi_run
configs = []
for seed in range(8):
  c = suite.base_config("mlp_1x512", "paper", seed,
                        randomization="random_labels")
  with c.unlocked():
    c.num_epochs = 3
  configs.append(c)
summaries = multi_run.train_and_evaluate_many(
    configs, [f"{sys.argv[1]}/s{s}" for s in range(8)])
for s in summaries:
  print("RESULT", s["final"]["train_accuracy"], s["final"]["test_accuracy"],
        s["final"]["images_per_second"], s["program"])
"""


def _part(name: str, command: list[str], timeout: int) -> dict:
  start = time.perf_counter()
  try:
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    status, out = done.returncode, done.stdout + done.stderr
  except subprocess.TimeoutExpired as e:
    status = "timeout"
    out = (e.stdout or b"").decode() + (e.stderr or b"").decode()
  seconds = time.perf_counter() - start
  print(f"{name}: {status} in {seconds:.0f} s", flush=True)
  return dict(command=" ".join(command), status=status, seconds=seconds,
              tail=out[-4000:])


def main(argv):
  del argv
  bench_out = os.path.join(_WORKDIR.value, "multi_run.json")
  os.makedirs(_WORKDIR.value, exist_ok=True)
  parts = dict(
      tests=_part("tests", [sys.executable, "-m", "pytest", "-q", "-x",
                            *FAST_TESTS], 180),
      multi_run=_part("multi_run", [
          sys.executable, "benchmarks/multi_run.py",
          "--models=mlp_1x512,alexnet,inception", "--runs=1,16",
          "--strategies=vmap", "--steps=20", f"--out={bench_out}"], 150),
      paper_scale_run=_part("paper_scale_run", [
          sys.executable, "-c", RUN, os.path.join(_WORKDIR.value, "runs")],
          150))
  if os.path.isfile(bench_out):
    with open(bench_out) as f:
      parts["multi_run"]["rows"] = json.load(f).get("rows")
  common.write_report("benchmarks/accelerator_check.py", _OUT.value,
                      parts=parts)


if __name__ == "__main__":
  cli.run_script(main)

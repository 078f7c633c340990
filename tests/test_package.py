"""The package as a user's code meets it: import, flags, entry points."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

import pytest

import rethink_jax
from rethink_jax import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str, **env_changes: str | None) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  for key, value in env_changes.items():
    if value is None:
      env.pop(key, None)
    else:
      env[key] = value
  return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def test_import_has_no_side_effects_and_exposes_submodules():
  result = _python(
      "import os, sys\n"
      "import rethink_jax\n"
      "assert 'XLA_FLAGS' not in os.environ, os.environ['XLA_FLAGS']\n"
      "assert 'jax' not in sys.modules\n"
      "import rethink_jax.training.train, rethink_jax.cli\n"
      "from absl import flags\n"
      "assert 'XLA_FLAGS' not in os.environ\n"
      "defined = {'config', 'workdir', 'traceback'} & set(flags.FLAGS)\n"
      "assert not defined, defined\n"
      "for name in rethink_jax.__all__:\n"
      "  getattr(rethink_jax, name)\n"
      "assert rethink_jax.models.count_params\n"
      "assert set(rethink_jax.__all__) <= set(dir(rethink_jax))\n"
      "print('ok')\n", XLA_FLAGS=None)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == "ok"


def test_a_script_with_its_own_config_and_workdir_flags_can_import_all():
  result = _python(
      "from absl import app, flags\n"
      "flags.DEFINE_string('config', None, 'mine')\n"
      "flags.DEFINE_string('workdir', None, 'mine')\n"
      "import rethink_jax\n"
      "from rethink_jax import cli, train\n"
      "for name in rethink_jax.__all__:\n"
      "  getattr(rethink_jax, name)\n"
      "def main(argv):\n"
      "  print(flags.FLAGS.config, flags.FLAGS.workdir)\n"
      "app.run(main, argv=['x', '--config=a', '--workdir=b'])\n")
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == "a b"


def test_every_module_imports_first_in_a_fresh_interpreter():
  """No import cycle that only one import order survives.

  (The offline tfds builders of data.sources register once per process, so
  that module stays loaded.)
  """
  result = _python(
      "import importlib, pkgutil, sys\n"
      "import rethink_jax\n"
      "names = [m.name for m in pkgutil.walk_packages(\n"
      "    rethink_jax.__path__, 'rethink_jax.')]\n"
      "for name in names + ['rethink_jax.' + s for s in\n"
      "                     rethink_jax._SHORT_NAMES]:\n"
      "  for loaded in [m for m in sys.modules if m.startswith('rethink_jax.')\n"
      "                 and m != 'rethink_jax.data.sources']:\n"
      "    del sys.modules[loaded]\n"
      "  importlib.import_module(name)\n"
      "print(' '.join(names))\n")
  assert result.returncode == 0, result.stderr[-3000:]
  names = set(result.stdout.split())
  assert {"rethink_jax.data.streaming", "rethink_jax.corruption.labels",
          "rethink_jax.models.registry", "rethink_jax.training.train",
          "rethink_jax.experiments.sweep", "rethink_jax.theory.kernels",
          "rethink_jax.cli"} <= names


def test_short_names_are_the_subpackage_modules():
  import rethink_jax.train  # pylint: disable=import-outside-toplevel
  from rethink_jax import config, dataset  # pylint: disable=import-outside-toplevel
  from rethink_jax.data import dataset as real_dataset  # pylint: disable=import-outside-toplevel
  from rethink_jax.training import config as real_config  # pylint: disable=import-outside-toplevel
  from rethink_jax.training import train as real_train  # pylint: disable=import-outside-toplevel
  assert rethink_jax.train is real_train
  assert config is real_config and dataset is real_dataset
  assert real_train.__spec__.name == "rethink_jax.training.train"


def test_unknown_attribute_is_an_attribute_error():
  with pytest.raises(AttributeError, match="no attribute 'modles'"):
    _ = rethink_jax.modles


@pytest.mark.parametrize("user,expected", [
    (None, rethink_jax.CPU_XLA_FLAGS),
    ("--xla_force_host_platform_device_count=8",
     "--xla_force_host_platform_device_count=8 " + rethink_jax.CPU_XLA_FLAGS),
    ("--xla_cpu_experimental_ynn_fusion_type=-individual_dot",
     "--xla_cpu_experimental_ynn_fusion_type=-individual_dot"),
])
def test_configure_xla_cpu_adds_the_flag_never_over_a_users(user, expected):
  result = _python("import os, rethink_jax\n"
                   "rethink_jax.configure_xla_cpu()\n"
                   "print(os.environ.get('XLA_FLAGS', ''))", XLA_FLAGS=user)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == expected


@pytest.mark.parametrize("platforms,expected", [
    ("cpu", rethink_jax.CPU_XLA_FLAGS), ("cpu,cuda", rethink_jax.CPU_XLA_FLAGS),
    ("cuda", ""), ("tpu", ""), ("gpu,cpu", "")])
def test_the_cpu_flag_is_set_only_where_jax_computes_on_the_cpu(
    platforms, expected):
  result = _python("import os, rethink_jax\n"
                   "rethink_jax.configure_xla_cpu()\n"
                   "print(os.environ.get('XLA_FLAGS', ''))", XLA_FLAGS=None,
                   JAX_PLATFORMS=platforms)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == expected


def test_the_entry_points_keep_compiled_programs(tmp_path):
  code = ("import os, jax, jax.numpy as jnp\n"
          "from rethink_jax import cli\n"
          "print(cli.enable_compilation_cache())\n"
          "jax.jit(lambda x: jnp.sin(x) * 3)(jnp.ones(5)).block_until_ready()\n")
  cache = tmp_path / "cache"
  result = _python(code, RETHINK_JAX_COMPILATION_CACHE=str(cache),
                   JAX_COMPILATION_CACHE_DIR=None)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split()[0] == str(cache)
  assert any(cache.iterdir())  # the program was written
  result = _python(code, RETHINK_JAX_COMPILATION_CACHE="off",
                   JAX_COMPILATION_CACHE_DIR=None)
  assert result.stdout.split()[0] == "None"
  # JAX's own setting wins.
  result = _python(code, RETHINK_JAX_COMPILATION_CACHE=str(cache),
                   JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax"))
  assert result.stdout.split()[0] == str(tmp_path / "jax")


def test_console_script_is_declared():
  scripts = {e.name: e.value for e in
             importlib.metadata.entry_points(group="console_scripts")}
  assert scripts.get("rethink-jax") == "rethink_jax.cli:main"


def test_cli_usage_and_errors(capsys):
  assert cli.main(["--help"]) == 0
  assert "train" in capsys.readouterr().out
  assert cli.main([]) == 2
  assert cli.main(["trian"]) == 2
  assert "unknown command 'trian'" in capsys.readouterr().err
  assert cli.main(["train", "--help"]) == 0
  out = capsys.readouterr().out
  assert "--workdir" in out and "--config" in out
  assert cli.main(["train", f"--config={REPO}/experiments/configs/mlp_1x512.py"]) == 1
  assert "--workdir must be given" in capsys.readouterr().err
  # Private flag values: parsing again in the same process is fine.
  assert cli.main(["train", "--workdir=/tmp/x"]) == 1
  assert "--config must be given" in capsys.readouterr().err
  assert cli.main(["train", f"--config={REPO}/experiments/configs/mlp_1x512.py",
                   "--workdir=/tmp/x", "--config.num_epoch=3"]) == 1
  assert "num_epoch" in capsys.readouterr().err


def test_package_files():
  for name in ("LICENSE", "rethink_jax/py.typed"):
    assert os.path.isfile(os.path.join(REPO, name)), name
  with open(os.path.join(REPO, "LICENSE")) as f:
    assert "Apache License" in f.read(200)


def test_results_files_record_their_provenance(tmp_path):
  from rethink_jax import results  # pylint: disable=import-outside-toplevel
  record = dict(results.provenance(["experiments/x.py", "--seed=1"]), y=1)
  assert record["command"] == "python experiments/x.py --seed=1"
  assert record["versions"]["jax"] and record["machine"]["cpu_count"]
  commit = record["code"]["git_commit"]
  assert commit is None or len(commit) == 40
  path = results.write(tmp_path / "a" / "b.json", record)
  with open(path) as f:
    text = f.read()
  assert json.loads(text) == record and text.endswith("}\n")
  assert list(json.loads(text)) == sorted(record)

"""The experiment layer: declarations of the paper's runs and the sweep runner.

The runner is tested on tiny MLP runs on synthetic data (seconds each).
"""

import json
import os

import numpy as np
import pytest

from rethink_jax.training import config as config_lib
from rethink_jax import paper
from rethink_jax.training import multi_run
from rethink_jax.training import train
from rethink_jax.data.dataset import from_arrays
from rethink_jax.experiments import suite
from rethink_jax.experiments import sweep


def test_shared_runs_are_declared_once():
  entries = suite.entries([], "cpu")
  names = {e.experiment: {} for e in entries}
  for e in entries:
    names[e.experiment][tuple(sorted(e.row.items()))] = sweep.run_name(
        e.config)
  random_inception = names["table1"][tuple(sorted(dict(
      model="inception", random_crop=False, weight_decay=False,
      random_labels=True, seed=0).items()))]
  # Figure 1a's cpu-scale rows are the size probe's runs at their n.
  figure1a_random = names["figure1a"][(("randomization", "random_labels"),
                                       ("seed", 0))]
  assert figure1a_random != random_inception
  assert figure1a_random in {
      sweep.run_name(e.config) for e in suite.probe_figure1a_scale("cpu")
      if e.row["n"] == suite.FIGURE1_INCEPTION_EXAMPLES}
  paper_scale = {(e.experiment, e.row.get("randomization"), e.row.get("p")):
                 sweep.run_name(e.config) for e in suite.entries([], "paper")
                 if e.config.model == "inception"}
  assert paper_scale["figure1a", "random_labels", None] == paper_scale[
      "figure1bc", None, 1.0]
  assert names["figure1bc"][(("model", "inception"), ("p", 1.0),
                             ("seed", 0))] == figure1a_random
  clean = names["figure1bc"][(("model", "alexnet"), ("p", 0.0), ("seed", 0))]
  assert clean == names["table1"][tuple(sorted(dict(
      model="alexnet", random_crop=False, weight_decay=False,
      random_labels=False, seed=0).items()))]
  # 19 Table 1 rows + 5 Figure 1a curves + 12 new Figure 1b/c points + 6
  # Table 4 rows (Figure 2b is two Table 1 rows) + 7 Table 2 rows (Figure 2a
  # is four of them).
  assert len(entries) == 19 + 5 + 18 + 2 + 6 + 7 + 4
  assert len(sweep.unique(e.config for e in entries)) == 42 + 7
  assert {names["figure2a"][k] for k in names["figure2a"]} <= set(
      names["table2"].values())
  assert len(suite.entries(["table1"], "cpu", seeds=3)) == 3 * len(
      paper.TABLE1)


def test_run_names_identify_configs():
  a = suite.base_config("mlp_1x512", "cpu", 0)
  b = suite.base_config("mlp_1x512", "cpu", 0)
  assert sweep.run_name(a) == sweep.run_name(b)
  other = [suite.base_config("mlp_1x512", "cpu", 1),
           suite.base_config("mlp_1x512", "cpu", 0, train_examples=1024),
           suite.base_config("mlp_1x512", "cpu", 0, weight_decay=True),
           suite.base_config("mlp_1x512", "cpu", 0,
                             randomization="partially_corrupted_labels",
                             p=0.4)]
  assert len({sweep.run_name(c) for c in [a] + other}) == 5
  # Run control (e.g. more epochs) does not make another run.
  with a.unlocked():
    a.num_epochs = 7
  assert sweep.run_name(a) == sweep.run_name(b)


def test_scales_follow_the_protocol():
  cpu = suite.base_config("inception", "cpu", 0)
  full = suite.base_config("inception", "paper", 0)
  config_lib.validate(cpu)
  config_lib.validate(full)
  assert full.train_examples == 0 and full.num_epochs == 100
  assert full.lr_decay_factor == pytest.approx(0.95)
  n = suite.CPU_SCALE["inception"].train_examples
  assert cpu.train_examples == n and n % cpu.batch_size == 0
  # The paper's decay per pass over the (sub)set; stop once fitted.
  assert cpu.lr_decay_factor == pytest.approx(0.95)
  assert cpu.stop_when_fitted and full.stop_when_fitted
  assert cpu.fit_threshold == full.fit_threshold == suite.FIT_THRESHOLD
  # The MLPs run on the full splits at both scales, with one schedule.
  for model in ("mlp_1x512", "mlp_3x512"):
    small, big = (suite.base_config(model, s, 0) for s in suite.SCALES)
    assert small.train_examples == small.test_examples == 0
    assert sweep.run_name(small) == sweep.run_name(big)  # the same run
    assert small.lr_decay_factor == pytest.approx(0.97)
  assert cpu.bn_momentum == suite.CPU_BN_MOMENTUM
  assert full.bn_momentum is None
  assert suite.base_config("alexnet", "cpu", 0).bn_momentum is None
  augmented = suite.table4("cpu")[-1].config
  assert augmented.flip_and_rotate and augmented.randomization == (
      "random_labels")
  assert augmented.lr_decay_factor == pytest.approx(0.999)
  assert augmented.num_epochs == round(1.5 * cpu.num_epochs)
  alexnet_wd = suite.table4("cpu")[1].config
  assert alexnet_wd.model == "alexnet" and alexnet_wd.weight_decay == 0.004
  for e in suite.entries([], "cpu"):
    if e.config.model == "inception_v3":  # batch 32 on one host, probed
      assert e.config.learning_rate == suite.CPU_IMAGENET_LEARNING_RATE
    elif e.config.model == "inception_no_bn":  # probed, see below
      assert e.config.learning_rate == 0.01
    else:
      assert e.config.learning_rate is None  # The paper's rate per model.
  for e in suite.entries(["table2"], "paper"):
    assert (e.config.dataset, e.config.image_size) == ("imagenet2012", 299)
    assert e.config.learning_rate is None
    config_lib.validate(e.config)


def test_batch_norm_free_rows_train_with_the_probed_setting_that_fits():
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  rows = {e.row["random_labels"]: e.config for e in suite.table1("cpu")
          if e.config.model == "inception_no_bn" and
          not e.row["weight_decay"]}
  long_name, cap = suite.NO_BN_LONG
  probed = {e.row["randomization"] == "random_labels": e.config
            for e in suite.probe_no_bn_schedule("cpu")
            if e.row["schedule"] == long_name}
  for random_labels, config in rows.items():
    # Table 1's rows (and Figure 2b's) are the probe's runs ...
    assert sweep.run_name(config) == sweep.run_name(probed[random_labels])
    assert config.num_epochs == cap
    assert (config.learning_rate, config.kernel_init) == (0.01, "he_normal")
    # x0.95 per 390 steps: 8 steps a pass over 1,024 examples.
    assert config.lr_decay_factor ** (390 / 8) == pytest.approx(0.95,
                                                                rel=0.01)
    # ... which fitted within the cap (the committed results).
    with open(os.path.join(repo, sweep.workdir("results/runs/cpu", config),
                           "summary.json")) as f:
      summary = json.load(f)
    assert summary["stopped"] == "fitted", random_labels
    assert summary["fitted_epoch"] <= cap
  # At the paper scale the same rate and init, x0.95 per (paper) epoch.
  full = suite.base_config("inception_no_bn", "paper", 0)
  assert (full.learning_rate, full.kernel_init) == (0.01, "he_normal")
  assert full.lr_decay_factor == pytest.approx(0.95)
  # The other probed settings keep their own rate and init (and run names).
  for name, lr, per_paper_epoch, init in suite.NO_BN_SCHEDULES:
    c = suite.no_bn_config("cpu", 0, name)
    assert (c.learning_rate, c.kernel_init) == (lr, init)
    assert c.lr_decay_factor == pytest.approx(
        0.95 ** (8 / 390) if per_paper_epoch else 0.95, rel=1e-3)


def _first_fitted_epoch(path, threshold):
  with open(os.path.join(path, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  return next((r["epoch"] for r in records
               if r["train_accuracy"] >= threshold), None)


def test_every_paper_scale_row_has_a_reachable_stopping_rule():
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  entries = [e for e in suite.entries([], "paper")
             if e.config.dataset == "cifar10"]
  assert entries
  for e in entries:
    c = e.config
    # A rule below 100%: the paper's own fitted rows include 99.34%.
    assert c.stop_when_fitted and c.fit_threshold == suite.FIT_THRESHOLD < 1
    assert c.num_epochs >= suite.schedule(c.model).num_epochs
  for model, run in suite.FULL_DATA_FIT_EVIDENCE.items():
    with open(os.path.join(repo, run, "summary.json")) as f:
      evidence = json.load(f)["config"]
    declared = suite.base_config(model, "paper", 0,
                                 randomization="random_labels")
    # The evidence ran the declared schedule on the full set ...
    for field in ("model", "learning_rate", "lr_decay_factor", "batch_size",
                  "randomization", "train_examples", "momentum"):
      assert evidence[field] == declared[field], (model, field)
    # ... and fitted within the declared cap.
    epoch = _first_fitted_epoch(os.path.join(repo, run), suite.FIT_THRESHOLD)
    assert epoch is not None and epoch <= declared.num_epochs, (model, epoch)


def _stand_in(learning_rate, lr_decay_factor, num_epochs, fit_threshold):
  """A tiny stand-in for a paper-scale row: MLP 1x512 on 1,024 random-pixel,
  random-label examples (8 steps an epoch), under a row's schedule and
  stopping rule; its summary."""
  rng = np.random.default_rng(0)

  def data(n):
    return from_arrays(rng.integers(0, 256, (n, 32, 32, 3), np.uint8),
                       rng.integers(0, 10, n), 10)

  c = config_lib.base_config()
  c.model, c.dataset, c.progress = "mlp_1x512", "arrays", "off"
  c.batch_size, c.eval_batch_size = 128, 256
  c.learning_rate, c.lr_decay_factor = learning_rate, lr_decay_factor
  c.num_epochs, c.fit_threshold, c.stop_when_fitted = (num_epochs,
                                                        fit_threshold, True)
  c.checkpoint_every_epochs = num_epochs
  c.lock()
  import tempfile
  with tempfile.TemporaryDirectory() as workdir:
    return train.train_and_evaluate(c, workdir, data(1024), data(128))


def test_every_paper_scale_schedule_fits_a_stand_in():
  # Each distinct schedule and stopping rule of the paper-scale rows (the
  # rows' own learning rate, decay, cap and threshold) ends a stand-in run
  # by its stopping rule within its cap ...
  schedules = sorted({(config_lib.learning_rate(e.config),
                       e.config.lr_decay_factor, e.config.num_epochs,
                       e.config.fit_threshold)
                      for e in suite.entries([], "paper")
                      if e.config.dataset == "cifar10"})
  assert len(schedules) >= 3
  for lr, decay, cap, threshold in schedules:
    summary = _stand_in(lr, decay, cap, threshold)
    assert summary["fitted_epoch"] is not None, (lr, decay, cap)
    assert summary["epochs_completed"] == summary["fitted_epoch"] <= cap
  # ... where a rate that decays too fast (x0.5 an epoch: twice the first
  # epoch's rate in all) leaves the same stand-in short of the rule.
  summary = _stand_in(0.01, 0.5, 30, suite.FIT_THRESHOLD)
  assert summary["fitted_epoch"] is None
  assert summary["final"]["train_accuracy"] < suite.FIT_THRESHOLD


def tiny_configs(epochs=2):
  configs = []
  for seed in range(3):
    c = config_lib.base_config()
    c.model, c.dataset, c.num_epochs = "mlp_1x512", "arrays", epochs
    c.batch_size, c.eval_batch_size, c.progress = 16, 16, "off"
    c.seed = seed
    c.lock()
    configs.append(c)
  return configs


def tiny_train(config, workdir, calls=None):
  rng = np.random.default_rng(0)

  def data(n):
    return from_arrays(rng.integers(0, 256, (n, 32, 32, 3), np.uint8),
                       rng.integers(0, 10, n), 10)

  if calls is not None:
    calls.append(config.seed)
  return train.train_and_evaluate(config, workdir, data(32), data(16))


def test_runner_trains_missing_skips_done_resumes_partial(tmp_path):
  configs = tiny_configs()
  calls = []
  report = sweep.run(configs + configs[:1], str(tmp_path),
                     train_fn=lambda c, w: tiny_train(c, w, calls),
                     log=lambda line: None)
  assert [r["before"] for r in report] == ["missing"] * 3
  assert sorted(calls) == [0, 1, 2]
  for c in configs:
    assert sweep.status(str(tmp_path), c) == "done"
    assert os.path.isfile(os.path.join(sweep.workdir(str(tmp_path), c),
                                       "summary.json"))
  # Done runs are skipped.
  calls.clear()
  report = sweep.run(configs, str(tmp_path),
                     train_fn=lambda c, w: tiny_train(c, w, calls),
                     log=lambda line: None)
  assert calls == [] and {r["before"] for r in report} == {"done"}
  # More epochs: the same workdir, partial, resumed from its checkpoint.
  longer = tiny_configs(epochs=3)
  assert sweep.run_name(longer[0]) == sweep.run_name(configs[0])
  report = sweep.run(longer[:1], str(tmp_path),
                     train_fn=lambda c, w: tiny_train(c, w, calls),
                     log=lambda line: None)
  assert report[0]["before"] == "partial"
  with open(os.path.join(report[0]["workdir"], "metrics.jsonl")) as f:
    assert [json.loads(line)["epoch"] for line in f] == [1, 2, 3]


def test_compatible_runs_share_programs_and_done_runs_are_skipped(tmp_path):
  configs = tiny_configs()
  other = config_lib.base_config()
  other.update(configs[0].to_dict())
  other.batch_size = 8  # Another program.
  other.lock()
  rng = np.random.default_rng(0)
  pair = (from_arrays(rng.integers(0, 256, (32, 32, 32, 3), np.uint8),
                      rng.integers(0, 10, 32), 10),
          from_arrays(rng.integers(0, 256, (16, 32, 32, 3), np.uint8),
                      rng.integers(0, 10, 16), 10))
  programs = []

  def many(group, workdirs):
    programs.append(sorted(c.seed for c in group))
    return multi_run.train_and_evaluate_many(group, workdirs,
                                             data=[pair] * len(group))

  alone = []
  sweep.run(configs + [other], str(tmp_path), runs_per_program=2,
            train_fn=lambda c, w: alone.append(c.batch_size) or tiny_train(
                c, w), train_many_fn=many, log=lambda line: None)
  assert programs == [[0, 1]] and sorted(alone) == [8, 16]
  assert all(sweep.status(str(tmp_path), c) == "done"
             for c in configs + [other])
  # Rerun with a longer run: only it is trained; the done ones are skipped.
  programs.clear()
  longer = tiny_configs(epochs=3)
  report = sweep.run(longer[:2] + configs[2:], str(tmp_path),
                     runs_per_program=4, train_many_fn=many,
                     train_fn=tiny_train, log=lambda line: None)
  assert [r["before"] for r in report] == ["partial", "partial", "done"]
  assert programs == [[0, 1]]


def test_a_sweep_stopped_midway_continues(tmp_path):
  configs = tiny_configs()

  def fails_on_second(config, workdir):
    if config.seed == sweep.unique(configs)[1].seed:
      raise KeyboardInterrupt
    return tiny_train(config, workdir)

  with pytest.raises(KeyboardInterrupt):
    sweep.run(configs, str(tmp_path), train_fn=fails_on_second,
              log=lambda line: None)
  report = sweep.run(configs, str(tmp_path), train_fn=tiny_train,
                     log=lambda line: None)
  assert [r["before"] for r in report] == ["done", "missing", "missing"]


def test_a_diverging_run_does_not_stop_the_sweep(tmp_path):
  configs = tiny_configs()

  def diverges_on_first(config, workdir):
    if config.seed == sweep.unique(configs)[0].seed:
      raise train.NonFiniteLossError("loss became NaN at step 3")
    return tiny_train(config, workdir)

  with pytest.raises(train.NonFiniteLossError, match="1 program.*NaN"):
    sweep.run(configs, str(tmp_path), train_fn=diverges_on_first,
              log=lambda line: None)
  report = sweep.run(configs, str(tmp_path), dry_run=True,
                     log=lambda line: None)
  assert [r["before"] for r in report] == ["missing", "done", "done"]


def test_shards_split_a_sweep(tmp_path):
  configs = tiny_configs()
  names = [sweep.run_name(c) for c in sweep.unique(configs)]
  shards = [[r["name"] for r in sweep.run(configs, str(tmp_path),
                                          shard=(i, 2), dry_run=True,
                                          log=lambda line: None)]
            for i in range(2)]
  assert sorted(shards[0] + shards[1]) == sorted(names)
  assert not set(shards[0]) & set(shards[1])
  assert sweep.parse_shard("1/2") == (1, 2)
  for bad in ("2/2", "x", "1"):
    with pytest.raises(ValueError, match="shard"):
      sweep.parse_shard(bad)


def test_the_runner_script_selects_rows_by_run_name():
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      "paper_script", os.path.join(os.path.dirname(__file__), os.pardir,
                                   "experiments", "paper.py"))
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  entries = suite.entries(["table1"], "paper", 2)
  chosen = script.select_runs(entries, ["alexnet/random_labels_s1",
                                        "mlp_3x512/true_labels+wd_s0"])
  assert sorted(sweep.run_name(e.config).split("-")[0] for e in chosen) == [
      "alexnet/random_labels_s1", "mlp_3x512/true_labels+wd_s0"]
  assert script.select_runs(entries, []) == entries
  with pytest.raises(ValueError, match="--dry_run"):
    script.select_runs(entries, ["no_such_run"])


def fake_finished_run(root, config, steps_to_fit, test_accuracy):
  path = sweep.workdir(root, config)
  os.makedirs(path)
  final = dict(epoch=3, step=24, train_accuracy=1.0, test_accuracy=test_accuracy,
               train_loss_running=0.005)
  with open(os.path.join(path, "summary.json"), "w") as f:
    json.dump(dict(config=config.to_dict(), final=final, total_time_s=60.0,
                   epochs_completed=3,
                   steps_to_fit=steps_to_fit,
                   best_test_accuracy=test_accuracy), f)
  with open(os.path.join(path, "metrics.jsonl"), "w") as f:
    f.write(json.dumps(final) + "\n")


def test_report_rows_come_from_the_results_files(tmp_path):
  from rethink_jax.experiments import report  # pylint: disable=g-import-not-at-top
  root = str(tmp_path / "runs")
  points = {e.row["p"]: e.config for e in suite.figure1bc("cpu")
            if e.row["model"] == "alexnet"}
  fake_finished_run(root, points[0.0], 100, 0.7)
  fake_finished_run(root, points[0.4], 250, 0.4)
  rows = report.collect("cpu", root, str(tmp_path))
  by_p = {r["p"]: r for r in rows["figure1b"] if r["model"] == "alexnet"}
  assert by_p[0.4]["measured"] == {"steps_to_fit": 250, "epochs": 3,
                                   "relative_time": 2.5}
  assert by_p[0.0]["measured"]["relative_time"] == 1.0
  assert by_p[0.6]["measured"] is None and by_p[0.6]["status"] == "not run"
  errors = {r["p"]: r for r in rows["figure1c"] if r["model"] == "alexnet"}
  assert errors[0.4]["measured"] == {"test_error": 60.0, "train": 100.0,
                                     "epochs": 3}
  (clean,) = [r for r in rows["table1"] if r["model"] == "alexnet" and not
              (r["random_crop"] or r["weight_decay"] or r["random_labels"])]
  assert clean["measured"] == {"train": 100.0, "test": 70.0, "epochs": 3}
  assert clean["paper"] == {"train": 100.0, "test": 76.07}
  assert clean["runs"] == [os.path.relpath(sweep.workdir(root, points[0.0]),
                                           str(tmp_path))]
  assert len(rows["table1"]) == 19 and len(rows["table4"]) == 6
  assert clean["unfitted"] == []
  # A run that stopped at its cap without fitting is named with its seed.
  fake_finished_run(root, points[0.6], None, 0.3)
  rows = report.collect("cpu", root, str(tmp_path))
  (p06,) = [r for r in rows["figure1b"] if r["model"] == "alexnet"
            and r["p"] == 0.6]
  assert p06["unfitted"] == [dict(seed=0, epochs=3, train=100.0,
                                  peak_train=100.0, peak_epoch=3)]


def test_seed_coverage_prices_the_runs_to_go_from_their_rows(tmp_path):
  from rethink_jax.experiments import report
  (row,) = [e.config for e in suite.table1("cpu", 1)
            if e.config.model == "mlp_3x512" and not e.config.weight_decay
            and e.config.randomization == "true_labels"]
  fake_finished_run(str(tmp_path), row, 100, 0.5)  # 60 s
  coverage = {c["model"]: c for c in report.seed_coverage("cpu",
                                                          str(tmp_path), 3)}
  declared = {sweep.run_name(c) for c in sweep.unique(
      [e.config for e in suite.entries([], "cpu", 3)])}
  assert sum(c["done"] + c["to_go"] for c in coverage.values()) == len(
      declared)
  mlp = coverage["mlp_3x512"]
  assert mlp["done"] == 1 and mlp["to_go"] == 11
  # Seeds 1 and 2 of the finished row, at its minute each; the other rows
  # have no finished seed to price them.
  assert mlp["minutes_to_go"] == 2.0 and mlp["unpriced"] == 9
  assert coverage["alexnet"]["done"] == 0
  assert coverage["alexnet"]["unpriced"] == coverage["alexnet"]["to_go"]


def test_curves_average_the_seeds_that_reached_each_step(tmp_path):
  from rethink_jax.experiments import report  # pylint: disable=g-import-not-at-top
  root = str(tmp_path / "runs")
  configs = {e.row["seed"]: e.config for e in suite.figure1a("cpu", seeds=3)
             if e.row["randomization"] == "gaussian"}
  for seed, losses in ((0, [2.0, 1.0, 0.5]), (1, [1.0, 0.0])):
    path = sweep.workdir(root, configs[seed])
    os.makedirs(path)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
      for epoch, loss in enumerate(losses, 1):
        f.write(json.dumps(dict(step=8 * epoch, train_loss_running=loss))
                + "\n")
  series = dict((row["randomization"], runs) for row, runs in
                report.figure_series("cpu", root, "figure1a", seeds=3))
  assert len(series["gaussian"]) == 2 and series["true_labels"] == []
  steps, mean, low, high = report.band(series["gaussian"],
                                       "train_loss_running", factor=10.0)
  assert steps == [8, 16, 24]
  assert mean == [15.0, 5.0, 5.0]
  assert low == [10.0, 0.0, 5.0] and high == [20.0, 10.0, 5.0]


def test_probe_rows_read_finished_and_running_runs(tmp_path):
  from rethink_jax.experiments import report  # pylint: disable=g-import-not-at-top
  root = str(tmp_path / "runs")
  (entry,) = [e for e in suite.probe_no_bn_schedule("cpu")
              if e.row["schedule"] == "lr0.01_per_paper_epoch"]
  path = sweep.workdir(root, entry.config)
  os.makedirs(path)
  accuracies = [0.5, None, 0.9995, 0.999]  # epoch 2 did not evaluate train
  with open(os.path.join(path, "metrics.jsonl"), "w") as f:
    for epoch, accuracy in enumerate(accuracies, 1):
      record = dict(epoch=epoch, step=8 * epoch, test_accuracy=0.3)
      if accuracy is not None:
        record["train_accuracy"] = accuracy
      f.write(json.dumps(record) + "\n")
  rows = report.collect_probes(root, str(tmp_path))
  (row,) = [r for r in rows["probe_no_bn_schedule"]
            if r["schedule"] == "lr0.01_per_paper_epoch"]
  assert row["status"] == "partial" and row["epochs"] == 4
  assert (row["train"], row["best_train"], row["test"]) == (99.9, 99.95,
                                                             30.0)
  assert row["steps_to_fit"] == 24
  assert all(r["status"] == "missing" for r in rows["probe_figure1a_scale"])

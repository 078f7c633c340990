"""The claim checks (rethink_jax.experiments.claims) on hand-made rows."""

import pytest

from rethink_jax.experiments import claims


def row(measured, spread=None, seeds=(0,), **keys):
  return dict(keys, measured=measured, spread=spread, seeds=list(seeds),
              test_examples=keys.pop("test_examples", 1000),
              train_examples=1024, num_epochs=50)


def empty_rows():
  return {name: [] for name in ("table1", "figure1a", "figure1b", "figure1c",
                                "figure2b", "table4", "table2", "figure2a")}


def table1_row(model, train, test, random_labels=True, weight_decay=False):
  return row(dict(train=train, test=test, epochs=20), model=model,
             random_crop=False, weight_decay=weight_decay,
             random_labels=random_labels)


def test_standard_error():
  assert claims.standard_error(50.0, 1000) == pytest.approx(1.58, abs=0.01)
  assert claims.standard_error(100.0, 1000) == 0.0


def test_random_labels_fitted_names_the_models_that_fail():
  rows = empty_rows()
  rows["table1"] = [table1_row("inception", 100.0, 9.5),
                    table1_row("alexnet", 99.95, 10.4)]
  assert claims.random_labels_fitted(rows).verdict == claims.HOLDS
  rows["table1"].append(table1_row("inception_no_bn", 18.0, 9.0))
  claim = claims.random_labels_fitted(rows)
  assert claim.verdict == claims.PARTLY
  assert "Inception w/o BatchNorm: train 18.00%" in claim.evidence
  # Test accuracy far from chance is not "at chance" (3 standard errors of
  # 10% on 1,000 images is 2.8 points).
  rows["table1"] = [table1_row("inception", 100.0, 14.0)]
  assert claims.random_labels_fitted(rows).verdict == claims.FAILS
  assert claims.random_labels_fitted(empty_rows()).verdict == claims.UNTESTED


def figure1a(steps, spread=None):
  return [row(dict(steps_to_fit=s, final_loss=0.0, epochs=1),
              spread=None if spread is None else dict(steps_to_fit=spread),
              seeds=(0, 1, 2) if spread else (0,), randomization=name)
          for name, s in steps.items()]


def test_figure1a_order_needs_a_margin_beyond_the_seeds_spread():
  rows = empty_rows()
  order = dict(true_labels=100, shuffled_pixels=150, random_pixels=180,
               gaussian=200, random_labels=400)
  rows["figure1a"] = figure1a(order)
  assert claims.figure1a_order(rows).verdict == claims.HOLDS
  # Curves with different numbers of seeds: the largest spread is the noise.
  mixed = figure1a(order)
  mixed[0] = figure1a(dict(true_labels=100), spread=9.0)[0]
  rows["figure1a"] = mixed
  claim = claims.figure1a_order(rows)
  assert claim.verdict == claims.HOLDS
  assert "(1-3 seeds a curve; by more than the largest spread, 9 steps)" in (
      claim.evidence)
  # With curves still to run, the order of the rest is not yet known.
  rows["figure1a"] = figure1a(dict(true_labels=100, random_labels=400))
  claim = claims.figure1a_order(rows)
  assert claim.verdict == claims.PARTLY
  assert claim.evidence.endswith(
      "not finished: shuffled pixels, random pixels, gaussian")
  rows["figure1a"] = figure1a(order, spread=60.0)  # 100 + 60 > 150
  claim = claims.figure1a_order(rows)
  assert claim.verdict == claims.PARTLY
  assert "not seen: true labels fastest" in claim.evidence
  rows["figure1a"] = figure1a(dict(true_labels=144, gaussian=112,
                                   random_labels=136))
  assert claims.figure1a_order(rows).verdict == claims.FAILS
  # A random-label run that never fitted is the slowest.
  rows["figure1a"] = figure1a(dict(order, random_labels=None))
  assert claims.figure1a_order(rows).verdict == claims.HOLDS


def test_figure1b_and_1c_per_model():
  rows = empty_rows()
  for model, rel in (("inception", 0.94), ("alexnet", 1.6)):
    for p, r, error in ((0.0, 1.0, 20.0), (0.5, (1 + rel) / 2, 60.0),
                        (1.0, rel, 90.0)):
      rows["figure1b"].append(row(dict(steps_to_fit=100, epochs=1,
                                       relative_time=r), model=model, p=p))
      rows["figure1c"].append(row(dict(test_error=error, train=100.0,
                                       epochs=1), model=model, p=p))
  claim = claims.figure1b_factor(rows)
  assert claim.verdict == claims.PARTLY
  assert "Inception: 0.94x at p = 1 (no slowdown)" in claim.evidence
  assert claims.figure1c_monotone(rows).verdict == claims.HOLDS
  # A fall of test error by more than two standard errors breaks it.
  rows["figure1c"][1]["measured"]["test_error"] = 95.0
  claim = claims.figure1c_monotone(rows)
  assert claim.verdict == claims.PARTLY
  assert "falls from p = 0.5 to 1" in claim.evidence


def test_table4_expects_alexnet_with_weight_decay_to_fail():
  rows = empty_rows()
  rows["table4"] = [
      row(dict(train=100.0, test=10.0), model="inception",
          regularizer="weight_decay", paper=dict(train=100.0, note=None)),
      row(dict(train=99.95, test=10.0), model="alexnet",
          regularizer="weight_decay", paper=dict(train=None, note="failed"))]
  claim = claims.regularizers_do_not_prevent_fitting(rows)
  assert claim.verdict == claims.PARTLY
  assert "fitted, where the paper's failed to converge" in claim.evidence
  rows["table4"][1]["measured"]["train"] = 40.0
  assert claims.regularizers_do_not_prevent_fitting(rows).verdict == (
      claims.HOLDS)
  # A row the paper fitted but that stopped short here names its cap.
  rows["table4"].append(row(dict(train=98.8, test=10.0, epochs=50),
                            seeds=(0, 1), model="inception",
                            regularizer="augmentation",
                            paper=dict(train=99.28, note=None)))
  claim = claims.regularizers_do_not_prevent_fitting(rows)
  assert claim.verdict == claims.PARTLY
  assert ("Inception + augmentation: train 98.80% (not fitted: 50 of at "
          "most 50 epochs, mean over 2 seed(s))") in claim.evidence


def test_batch_norm_comparison_needs_a_fitted_network_without_it():
  rows = empty_rows()
  rows["figure2b"] = [
      row(dict(final_test_accuracy=52.0, best_test_accuracy=52.0),
          model="inception"),
      row(dict(final_test_accuracy=48.0, best_test_accuracy=48.0),
          model="inception_no_bn")]
  rows["table1"] = [table1_row("inception_no_bn", 40.0, 37.0,
                               random_labels=False)]
  claim = claims.batch_norm_helps_but_is_not_needed(rows)
  assert claim.verdict == claims.FAILS and "under-trained" in claim.evidence
  rows["table1"] = [table1_row("inception_no_bn", 100.0, 48.0,
                               random_labels=False)]
  claim = claims.batch_norm_helps_but_is_not_needed(rows)
  assert claim.verdict == claims.HOLDS
  assert "(+4.00 points, noise 3.2, beyond it)" in claim.evidence
  # A gain within the seeds' spread is not counted; the network without
  # BatchNorm still generalizes, so the claim partly holds.
  rows["figure2b"][0]["spread"] = dict(final_test_accuracy=2.5)
  claim = claims.batch_norm_helps_but_is_not_needed(rows)
  assert claim.verdict == claims.PARTLY
  assert "(+4.00 points, noise 5.0, within it)" in claim.evidence
  assert claims.batch_norm_free_fits(rows).verdict == claims.HOLDS


def test_table2_regularizers_count_beyond_noise_only():
  rows = empty_rows()

  def table2_row(test, data_aug=False, weight_decay=False):
    return row(dict(train_top1=100.0, test_top1=test), test_examples=500,
               data_aug=data_aug, dropout=False, weight_decay=weight_decay,
               random_labels=False)

  rows["table2"] = [table2_row(30.0), table2_row(29.0, data_aug=True),
                    table2_row(40.0, weight_decay=True)]
  claim = claims.imagenet_regularizers_help(rows, classes=10)
  assert claim.verdict == claims.PARTLY
  assert ("data aug: 29.00% (-1.00 points, noise 4.1, within it)"
          in claim.evidence)
  assert "weight decay: 40.00% (+10.00 points, noise 4.1, beyond it)" in (
      claim.evidence)
  # A seeds' spread larger than the standard error widens the noise.
  rows["table2"][2]["spread"] = dict(test_top1=6.0)
  claim = claims.imagenet_regularizers_help(rows, classes=10)
  assert "(+10.00 points, noise 12.0, within it)" in claim.evidence
  assert claim.verdict == claims.FAILS
  assert [c.key for c in claims.check(rows, "cpu")][-2:] == [
      "imagenet_regularizers_help", "imagenet_random_labels"]


def test_claims_that_fail_cite_the_probes():
  rows = empty_rows()
  rows["figure1a"] = figure1a(dict(true_labels=144, gaussian=112,
                                   random_labels=136))
  probe = lambda n, name, steps, seed=0: dict(  # noqa: E731
      n=n, randomization=name, steps_to_fit=steps, seed=seed, status="done",
      steps_per_epoch=n // 128)
  probes = {"probe_figure1a_scale": [
      probe(1024, "true_labels", 144), probe(1024, "random_labels", 136),
      probe(2048, "true_labels", 272), probe(2048, "random_labels", 304),
      probe(2048, "true_labels", 288, 1), probe(2048, "random_labels", 320, 1),
      dict(probe(4096, "true_labels", None), status="partial")]}
  (claim,) = [c for c in claims.check(rows, "cpu", probes)
              if c.key == "figure1a_order"]
  assert claim.evidence.endswith(
      "(probe): 1024: 0.94 (-1.0 epochs against noise 1.0, 1 seed), "
      "2048: 1.11 (+2.0 epochs against noise 1.4, 2 seeds)")


def test_the_size_probe_counts_the_order_only_beyond_the_noise():
  from rethink_jax.experiments import report
  probe = lambda n, name, steps, seed=0: dict(  # noqa: E731
      n=n, randomization=name, steps_to_fit=steps, seed=seed, status="done",
      steps_per_epoch=n // 128)
  rows = report.figure1a_scale([
      probe(1024, "true_labels", 144), probe(1024, "random_labels", 160),
      probe(2048, "true_labels", 272), probe(2048, "random_labels", 320),
      probe(2048, "true_labels", 272, 1), probe(2048, "random_labels", 416, 1),
      probe(4096, "true_labels", 640), probe(4096, "random_labels", None),
      probe(8192, "random_labels", 100)])
  assert [r["n"] for r in rows] == [1024, 2048, 4096]  # 8192: no true labels
  # One epoch more at 1024 is within the resolution of the steps to fit.
  assert rows[0]["margin"] == 2.0 and rows[0]["noise"] == 1.0
  assert rows[0]["shown"]
  # At 2048 the seeds disagree by 96 steps (sd 67.9): a 6-epoch margin
  # against 8.5 epochs of noise.
  assert rows[1]["margin"] == 6.0 and not rows[1]["shown"]
  assert round(rows[1]["noise"], 2) == 8.49
  assert rows[1]["random_labels"]["seeds"] == 2
  # A run that never fits is slower than any that does.
  assert rows[2]["random_labels"]["mean"] == float("inf") and rows[2]["shown"]
  # The whole order needs all five randomizations.
  assert [r["order"] for r in rows] == [None, None, None]


def test_the_size_probe_checks_figure1a_whole_order():
  from rethink_jax.experiments import report
  probe = lambda n, name, steps: dict(  # noqa: E731
      n=n, randomization=name, steps_to_fit=steps, seed=0, status="done",
      steps_per_epoch=n // 128)
  between = lambda n, steps: [  # noqa: E731
      probe(n, name, steps) for name in
      ("shuffled_pixels", "random_pixels", "gaussian")]
  rows = report.figure1a_scale(
      [probe(2048, "true_labels", 272), probe(2048, "random_labels", 304),
       *between(2048, 160),
       probe(4096, "true_labels", 480), probe(4096, "random_labels", 736),
       *between(4096, 640),
       # Gaussian 32 steps after true labels: within one epoch (64 steps).
       probe(8192, "true_labels", 960), probe(8192, "random_labels", 1600),
       *between(8192, 1200)[:2], probe(8192, "gaussian", 992)])
  assert [r["order"] for r in rows] == [False, True, False]
  assert all(r["shown"] for r in rows)
  assert rows[0]["faster_than_true"] == ["shuffled_pixels", "random_pixels",
                                         "gaussian"]
  assert [r["faster_than_true"] for r in rows[1:]] == [[], []]
  # One run faster than true labels beyond the noise decides it before the
  # rest (random labels included) are run; one within the noise does not.
  early = report.figure1a_scale(
      [probe(8192, "true_labels", 960), probe(8192, "gaussian", 832),
       probe(16384, "true_labels", 1920), probe(16384, "gaussian", 1856)])
  assert [(r["order"], r["margin"], r["shown"]) for r in early] == [
      (False, None, None), (None, None, None)]
  assert claims.figure1a_probe_text(
      [probe(8192, "true_labels", 960), probe(8192, "gaussian", 832)]
  ).endswith("(probe): 8192: whole order does not hold (random labels not "
             "run)")
  probes = {"probe_figure1a_scale": [
      probe(4096, "true_labels", 480), probe(4096, "random_labels", 736),
      *between(4096, 640)]}
  assert claims.figure1a_probe_text(probes["probe_figure1a_scale"]).endswith(
      "4096: 1.53 (+8.0 epochs against noise 1.0, 1 seed; whole order "
      "holds)")


def test_regularizer_effects_count_beyond_the_larger_noise():
  rows = empty_rows()
  rows["table1"] = [
      table1_row("alexnet", 100.0, 50.0, random_labels=False),
      row(dict(train=100.0, test=56.0, epochs=1), model="alexnet",
          random_crop=True, weight_decay=False, random_labels=False),
      row(dict(train=100.0, test=51.0, epochs=1), model="alexnet",
          random_crop=False, weight_decay=True, random_labels=False)]
  claim = claims.regularizer_effects(rows)
  assert claim.verdict == claims.PARTLY
  assert "AlexNet + crop: +6.00 points (noise 3.2, beyond it)" in (
      claim.evidence)
  assert "AlexNet + weight decay: +1.00 points (noise 3.2, within it)" in (
      claim.evidence)
  # A seeds' spread larger than the standard error widens the noise.
  rows["table1"][1]["spread"] = dict(test=4.0)
  assert "noise 8.0, within it" in claims.regularizer_effects(rows).evidence


def test_a_row_fitted_as_far_as_the_papers_counts_as_fitted():
  rows = empty_rows()
  mlp = table1_row("mlp_1x512", 99.5, 10.0)
  mlp["paper"] = dict(train=99.34, test=10.61)
  rows["table1"] = [mlp]
  assert claims.random_labels_fitted(rows).verdict == claims.HOLDS
  mlp["paper"] = dict(train=100.0, test=10.0)
  assert claims.random_labels_fitted(rows).verdict == claims.FAILS


def test_a_row_names_its_seeds_that_did_not_fit():
  """A seed that fitted and then diverged pulls a row's mean below the
  fitting rule; the evidence says which seed, where it ended and where it
  had got to."""
  rows = empty_rows()
  rows["table1"] = [row(
      dict(train=70.2, test=10.1, epochs=224.0), seeds=(0, 1, 2),
      model="inception_no_bn", random_crop=False, weight_decay=False,
      random_labels=True, paper=dict(train=100.0, test=10.12),
      unfitted=[dict(seed=2, epochs=300, train=10.74, peak_train=94.43,
                     peak_epoch=109)])]
  expected = ("2 of 3 seeds reached 99.9%; seed 2: 10.74% after 300 epochs, "
              "best 94.43% at epoch 109")
  for check in (claims.random_labels_fitted, claims.batch_norm_free_fits):
    claim = check(rows)
    assert claim.verdict == claims.FAILS
    assert f"(not fitted: {expected})" in claim.evidence
  # A fitted mean still names a seed that stopped at its cap.
  rows["table1"][0]["measured"]["train"] = 99.93
  rows["table1"][0]["unfitted"][0].update(train=99.8, peak_train=99.85)
  claim = claims.batch_norm_free_fits(rows)
  assert claim.verdict == claims.HOLDS
  assert "(2 of 3 seeds reached 99.9%; seed 2: 99.80% after 300" in (
      claim.evidence)
  rows["table1"][0]["unfitted"] = []
  assert "seeds reached" not in claims.batch_norm_free_fits(rows).evidence


def test_the_batch_norm_free_probe_text_names_each_seed():
  probe = [dict(schedule="he_init", randomization=name, seed=seed,
                best_train=best, epochs=epochs)
           for name, seed, best, epochs in (
               ("true_labels", 0, 99.9, 94), ("random_labels", 2, 94.43, 300),
               ("random_labels", 1, None, 0))]
  assert claims.no_bn_probe_text(probe) == (
      "best training accuracy of each probed setting: he_init (seed 0): "
      "99.9% after 94 epochs, he_init, random labels (seed 2): 94.4% after "
      "300 epochs")

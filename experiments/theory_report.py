"""Writes docs/theory.md and the section5 rows from results/theory/.

The ``section5`` key of results/reproduction.json (one row per Section 5
kernel result: data, features, ridge, the paper's and our test error, the
RKHS norm, the results file and command) is rewritten; its other keys,
written by experiments/report.py, are kept.

Every number in the generated page comes from a results file written by an
experiment script (whose exact command is printed next to its table) or from
``rethink_jax.paper`` (the paper's numbers). Sections whose results file is
missing say so and give the command that writes it.

Command:
  python experiments/theory_report.py
"""

from __future__ import annotations

import json
import pathlib

from absl import flags

from rethink_jax import cli
from rethink_jax import paper
from rethink_jax.results import write as write_results

RESULTS = pathlib.Path("results/theory")


def _load(path: pathlib.Path) -> dict | None:
  return json.loads(path.read_text()) if path.exists() else None


def _sci(value) -> str:
  return "n/a" if value is None else f"{value:.2e}"


def _pct(value) -> str:
  return "n/a" if value is None else f"{value:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return lines


def _provenance(result: dict, path: pathlib.Path) -> list[str]:
  versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
  machine = result["machine"]
  return [
      f"Command: `{result['command']}` (seed {result['seed']}), results file "
      f"`{path.as_posix()}`, run {result['utc_time']} on "
      f"{machine['cpu_count']} CPU cores / {machine['memory_gib']} GiB "
      f"({versions}).", ""]


def _open_section(title: str, path: pathlib.Path, command: str
                  ) -> tuple[list[str], dict | None]:
  """A section's title and provenance, or a note that it has not run."""
  lines = [title, ""]
  result = _load(path)
  if result is None:
    return lines + [f"Not run yet: `{command}` writes "
                    f"`{path.as_posix()}`.", ""], None
  return lines + _provenance(result, path), result


def theorem1_section(results: pathlib.Path) -> list[str]:
  path = results / "theorem1.json"
  lines = ["## Finite-sample expressivity (Section 4, Theorem 1)", ""]
  result = _load(path)
  if result is None:
    return lines + [f"Not run yet: `python experiments/theorem1.py` writes "
                    f"`{path.as_posix()}`.", ""]
  lines += [
      "The network c(x) = sum_j w_j max(<a, x> - b_j, 0) with one hidden "
      "unit per sample point, built by `rethink_jax.theory.fit_two_layer`: "
      "a random direction a, sorted projections x_i, interleaving biases "
      "b_j = x_{j-1} + f (x_j - x_{j-1}) (f = 0.5: the paper's midpoints), "
      "and w from Lemma 1's lower-triangular system. \"max error\" is "
      "max_i |c(z_i) - y_i| evaluated with the Flax module in float64; "
      "\"float64 rounding scale\" is eps * max_i sum_j |A_ij w_j|, the scale "
      "of the rounding error of evaluating the network itself (terms of "
      "that size cancel in the sum; a worst-case bound is about n times "
      "larger). \"directions\": random directions drawn, the best "
      "separated kept. "
      "\"labels recovered\": fraction of the random labels equal to the "
      "rounded network output. The paper states the weight count "
      "2n + d; it reports no error.", ""]
  lines += _provenance(result, path)
  header = ["data", "n", "d", "f", "solver", "directions", "weights",
            "2n + d",
            "max error", "float64 rounding scale", "Lemma 1 min eigenvalue",
            "min gap", "max abs w", "norm of w", "labels recovered", "fit s"]
  rows = []
  for name, group in (("Gaussian", result["synthetic"]["fits"]),
                      ("Fashion-MNIST, random labels",
                       result["fashion_mnist"]["fits"])):
    for fit in group:
      rows.append([name, fit["n"], fit["d"], fit["bias_fraction"],
                   fit["method"], fit["direction_attempts"],
                   fit["num_weights"], fit["two_n_plus_d"],
                   _sci(fit["max_abs_error"]),
                   _sci(fit["float64_rounding_scale"]),
                   _sci(fit["lemma1_smallest_eigenvalue"]),
                   _sci(fit["min_gap"]), _sci(fit["max_abs_weight"]),
                   _sci(fit["weight_norm"]),
                   "" if "label_accuracy_after_rounding" not in fit else
                   f"{fit['label_accuracy_after_rounding']:.4f}",
                   f"{fit['fit_seconds']:.1f}"])
  lines += _table(header, rows)
  lines += ["", f"Data: {result['synthetic']['data']}. "
            f"{result['fashion_mnist']['data']}.", ""]
  return lines


def min_norm_section(results: pathlib.Path) -> list[str]:
  lines, result = _open_section(
      "## Minimum norm and SGD (Section 5)", results / "min_norm.json",
      "python experiments/min_norm.py")
  if result is None:
    return lines
  syn = result["synthetic"]
  lines += [
      f"Synthetic least squares, n = {syn['n']} points in d = {syn['d']} "
      f"dimensions ({syn['data']}); SGD with step {syn['learning_rate']:.4g} "
      f"for {syn['epochs']} epochs. The Hessian X^T X / n has rank "
      f"{syn['hessian_rank']} < d at every solution.", ""]
  header = ["solution", "norm", "max train residual",
            "distance to row space of X"]
  rows = [[name, f"{s['norm']:.6f}", _sci(s["max_abs_train_residual"]),
           _sci(s["distance_to_row_space"])]
          for name, s in syn["solutions"].items()]
  lines += _table(header, rows)
  sgd = syn["solutions"]["sgd_from_zero"]
  lines += ["", f"SGD from zero vs X^T (X X^T)^-1 y: max abs difference "
            f"{_sci(sgd['max_abs_difference_to_min_norm'])} (Section 5 "
            f"check: about 4e-15).", ""]
  fm = result["fashion_mnist"]
  lines += [
      f"Fashion-MNIST linear interpolants ({fm['input']}), "
      f"{fm['train_examples']} training images; the last row also forces "
      f"random labels on {fm['forced_test_examples']} test images (the "
      f"paper's example of a fit that does not generalize); test error on "
      f"the other, clean test images.", ""]
  header = ["targets", "Frobenius norm", "train accuracy",
            "max train residual", "test error %"]
  rows = [[name, f"{r['frobenius_norm']:.3f}", f"{r['train_accuracy']:.4f}",
           _sci(r["max_abs_train_residual"]), _pct(r["test_error_percent"])]
          for name, r in fm.items() if isinstance(r, dict)]
  lines += _table(header, rows) + [""]
  return lines


def _paper_kernel(dataset: str) -> tuple[str, str]:
  key = ("cifar10" if dataset == "cifar10" else "mnist", "rbf_pixels")
  error = paper.KERNEL_TEST_ERROR[key]
  norm = paper.KERNEL_NORM.get(key)
  label = "CIFAR-10" if dataset == "cifar10" else "MNIST"
  return (f"{error} ({label})",
          "n/a" if norm is None else f"about {norm:g} ({label})")


def kernel_section(results: pathlib.Path) -> list[str]:
  lines = ["## Kernel interpolation (Section 5, Eq. 3 with a Gaussian kernel)",
           ""]
  paths = sorted(results.glob("kernel_*.json"))
  if not paths:
    return lines + ["Not run yet: `python experiments/kernel_interpolation.py"
                    "` writes `results/theory/kernel_<dataset>_<n>.json`.", ""]
  lines += [
      "K alpha = Y solved for one-hot true labels and one-hot random labels "
      "(drawn once, uniform over the classes) on pixels / 255; test error on "
      "the clean test labels; RKHS norm sqrt(trace(alpha^T K alpha)). The "
      "paper's MNIST numbers are listed next to Fashion-MNIST, which stands "
      "in for MNIST here (MNIST is not available offline); the paper does "
      "not define its norm (presumably this one).", ""]
  for path in paths:
    result = _load(path)
    data, kernel = result["data"], result["kernel"]
    paper_error, paper_norm = _paper_kernel(data["dataset"])
    lines += [f"### {data['dataset']}, {data['train_examples']} training "
              f"points", ""]
    lines += _provenance(result, path)
    lines += [
        f"Kernel {kernel['formula']}, gamma = {kernel['gamma']:.6g} "
        f"({kernel['gamma_rule']}); {data['input']}; {data['subset']}; "
        f"{data['test_examples']} clean test images.", ""]
    header = ["ridge", "labels", "train accuracy", "max train residual",
              "test error %", "paper test error %", "RKHS norm",
              "paper norm"]
    rows = []
    for run in result["runs"]:
      for labels in ("true_labels", "random_labels"):
        r = run[labels]
        rows.append([f"{run['ridge']:g}", labels.replace("_", " "),
                     f"{r['train_accuracy']:.4f}",
                     _sci(r["train_max_abs_residual"]),
                     _pct(r["test_error_percent"]),
                     paper_error if labels == "true_labels" and
                     run["ridge"] == 0 else "",
                     f"{r['rkhs_norm']:.1f}",
                     paper_norm if labels == "true_labels" and
                     run["ridge"] == 0 else ""])
    lines += _table(header, rows) + [""]
    header = ["ridge", "kernel dtype", "kernel GiB", "kernel s",
              "Cholesky s", "preconditioner shift", "CG iterations", "CG s", "final residual",
              "train check s", "test predict s", "peak memory GiB"]
    rows = []
    for run in result["runs"]:
      s = run["solve"]
      rows.append([f"{run['ridge']:g}", s["dtype"],
                   f"{s['kernel_bytes'] / 2**30:.2f}",
                   f"{s['kernel_seconds']:.0f}", f"{s['factor_seconds']:.0f}",
                   f"{s['preconditioner_shift']:g}", s["refine_iterations"], f"{s['refine_seconds']:.0f}",
                   _sci(s["max_abs_residual"]),
                   "" if s.get("train_check_seconds") is None
                   else f"{s['train_check_seconds']:.0f}",
                   f"{s['predict_test_seconds']:.0f}",
                   f"{run['peak_memory_gib']:.1f}"])
    lines += ["Cost (CG residuals: " + kernel["residuals"] + "; the "
              "Cholesky factor of K + (ridge + shift) I is stored in "
              + kernel["dtype"] + " and preconditions CG on the unshifted "
              "system; \"final residual\" is CG's max abs residual, "
              "\"train check\" the extra float64 pass that evaluates the fit "
              "at the training points with the exact kernel when CG read the "
              "stored matrix):", ""]
    lines += _table(header, rows) + [""]
  return lines


def _selected_run(result: dict) -> tuple[dict, dict, dict] | None:
  """(sweep, solved, run) chosen on the validation split, if any."""
  chosen = result.get("selected")
  if not chosen:
    return None
  sweep = next(s for s in result["sweeps"]
               if s["preprocess"] == chosen["preprocess"])
  solved = sweep["solved"][chosen["solved_index"]]
  return sweep, solved, solved["runs"][chosen["run_index"]]


def _feature_rows(result: dict) -> list[list[str]]:
  chosen = _selected_run(result)
  rows = []
  for sweep in result["sweeps"]:
    for solved in sweep["solved"]:
      for run in solved["runs"]:
        true, rand = run["true_labels"], run["random_labels"]
        mark = "**selected**" if chosen and run is chosen[2] else ""
        rows.append([
            sweep["preprocess"],
            "" if solved["num_filters"] is None else solved["num_filters"],
            solved["features"].get("num_features", sweep["num_features"]),
            f"{run['gamma_scale']:g}", f"{run['gamma']:.4g}",
            f"{run['ridge']:g}", _pct(run["val_error_percent"]),
            _pct(true["test_error_percent"]), f"{true['train_accuracy']:.4f}",
            _sci(true["train_max_abs_residual"]), f"{true['rkhs_norm']:.1f}",
            _pct(rand["test_error_percent"]), f"{rand['train_accuracy']:.4f}",
            f"{rand['rkhs_norm']:.1f}", mark])
  return rows


FEATURE_HEADER = ["preprocessing", "filters", "features", "gamma scale",
                  "gamma", "ridge", "val error %", "test error %",
                  "train acc.", "max train residual", "RKHS norm",
                  "random labels: test error %", "train acc.", "RKHS norm",
                  ""]


def _feature_result(path: pathlib.Path, result: dict) -> list[str]:
  data = result["data"]
  lines = [f"#### `{path.name}`", ""]
  lines += _provenance(result, path)
  val = (f"validation: {data['validation']}" if data.get("validation")
         else "no validation split")
  jpeg = (f"; every image re-encoded once more as JPEG (quality "
          f"{data['jpeg_reencoded_quality']})"
          if data.get("jpeg_reencoded_quality") else "")
  lines += [
      f"{data['dataset']}: {data['train_examples']} training images "
      f"({data['subset']}), {val}, {data['test_examples']} clean test "
      f"images{jpeg}. Features: {result['features']['description']}. "
      f"Kernel {result['kernel']['formula']} ({result['kernel']['dtype']}); "
      f"gamma = scale x {result['sweeps'][0]['solved'][0]['runs'][0]['gamma_rule'].split(' x ', 1)[1]}.",
      ""]
  if result.get("selected"):
    lines += [f"Selection: {result['selected']['rule']}.", ""]
  lines += _table(FEATURE_HEADER, _feature_rows(result)) + [""]
  return lines


def _feature_results(results: pathlib.Path, pattern: str
                     ) -> list[tuple[pathlib.Path, dict]]:
  return [(p, _load(p)) for p in sorted(results.glob(pattern))]


# The results files whose rows stand beside the paper's (others: sweeps and
# checks, shown in full below the summary).
SUMMARY_FILES = (
    "section5_cifar10_pixels_full_scale.json",
    "section5_cifar10_pixels_full.json",
    "section5_fashion_mnist_pixels_n20000.json",
    "section5_fashion_mnist_gabor_n20000.json",
    "section5_cifar10_random_conv_n10000.json",
    "section5_cifar10_random_conv_full.json",
    "section5_cifar10_random_conv_full_ridge.json",
)


def section5_rows(results: pathlib.Path) -> list[dict]:
  """The ``section5`` rows of results/reproduction.json.

  One row per paper row of Section 5 that has a measurement: data,
  features, ridge, the paper's and our test error, and the RKHS norm, with
  the results file (and its command) that produced the number.
  """
  rows = []

  def add(path, result, run, *, data, features, paper_key, preprocess,
          num_filters=None):
    true = run["true_labels"]
    rows.append({
        "data": data, "features": features, "preprocess": preprocess,
        "num_filters": num_filters, "ridge": run["ridge"],
        "gamma": run.get("gamma", result.get("kernel", {}).get("gamma")),
        "train_examples": result["data"]["train_examples"],
        "paper_test_error": (None if paper_key is None else
                             paper.KERNEL_TEST_ERROR.get(paper_key)),
        "test_error": round(true["test_error_percent"], 2),
        "train_accuracy": true["train_accuracy"],
        "rkhs_norm": round(true["rkhs_norm"], 1),
        "paper_norm": (None if paper_key is None else
                       paper.KERNEL_NORM.get(paper_key)),
        "results_file": path.as_posix(), "command": result["command"]})

  for name, dataset in (("kernel_fashion_mnist_full.json", "fashion_mnist"),
                        ("kernel_cifar10_full.json", "cifar10")):
    path = results / name
    result = _load(path)
    if result is None:
      continue
    key = ("mnist" if dataset == "fashion_mnist" else "cifar10", "rbf_pixels")
    for run in result["runs"]:
      add(path, result, run, data=dataset, features="pixels",
          paper_key=key, preprocess="scale")
  for name in SUMMARY_FILES:
    path = results / name
    result = _load(path)
    if result is None:
      continue
    dataset = result["data"]["dataset"]
    kind = result["features"]["map"]
    chosen = _selected_run(result)
    sweeps = [chosen[0]] if chosen else result["sweeps"]
    for sweep in sweeps:
      solved = sweep["solved"][-1]  # All filters.
      runs = solved["runs"]
      if chosen:  # For each ridge, its bandwidth chosen on validation.
        runs = [min((r for r in runs if r["ridge"] == ridge),
                    key=lambda r: r["val_error_percent"])
                for ridge in sorted({r["ridge"] for r in runs})]
      for run in runs:
        if kind == "random_conv":
          key = ("cifar10", "random_conv_features" if run["ridge"] == 0
                 else "random_conv_features_l2")
        elif run["ridge"]:
          key = None  # "adding regularization does not improve" (no number)
        elif kind == "gabor":
          key = ("mnist", "gabor")
        else:
          key = ("cifar10" if dataset == "cifar10" else "mnist", "rbf_pixels")
        add(path, result, run, data=dataset, features=kind, paper_key=key,
            preprocess=sweep["preprocess"],
            num_filters=solved["num_filters"])
  return rows


FIGURES = pathlib.Path("docs/figures")


def section5_plots(results: pathlib.Path, figures: pathlib.Path
                   ) -> list[str]:
  """Plots of the bandwidth sweep and the filter-count sweep (Markdown)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  lines = []
  meta = {"Software": None}
  figures.mkdir(parents=True, exist_ok=True)
  sweep = _load(results / "section5_cifar10_pixels_sweep.json")
  if sweep is not None:
    fig, ax = plt.subplots(figsize=(6, 4))
    # Curves that coincide (centering moves every image by one vector, which
    # a Gaussian kernel cannot see) are drawn once, with both names.
    curves: dict[tuple, list[str]] = {}
    for s in sweep["sweeps"]:
      runs = s["solved"][-1]["runs"]
      points = tuple((r["gamma_scale"], r["val_error_percent"]) for r in runs)
      curves.setdefault(points, []).append(s["preprocess"])
    for points, names in curves.items():
      ax.plot([x for x, _ in points], [y for _, y in points], marker="o",
              label=" = ".join(names) + (" (identical)" if len(names) > 1
                                         else ""))
    ax.axhline(paper.KERNEL_TEST_ERROR[("cifar10", "rbf_pixels")],
               color="grey", linestyle="--",
               label="paper (test, 50,000 images)")
    ax.set(xscale="log", xlabel="gamma / median heuristic",
           ylabel="validation error (%)",
           title=f"CIFAR-10 Gaussian kernel, "
                 f"{sweep['data']['train_examples']} training images")
    ax.legend(fontsize=8)
    path = figures / "section5_cifar10_bandwidth.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=meta)
    plt.close(fig)
    lines += [f"![CIFAR-10 bandwidth sweep](figures/{path.name})", ""]
  filters = _load(results / "section5_cifar10_random_conv_n10000.json")
  if filters is not None:
    fig, ax = plt.subplots(figsize=(6, 4))
    solved = filters["sweeps"][0]["solved"]
    for ridge in sorted({r["ridge"] for r in solved[0]["runs"]}):
      points = []
      for sol in solved:  # The best bandwidth (on validation) per count.
        runs = [r for r in sol["runs"] if r["ridge"] == ridge]
        best = min(runs, key=lambda r: r["val_error_percent"])
        points.append((sol["num_filters"],
                       best["true_labels"]["test_error_percent"]))
      ax.plot(*zip(*points), marker="o", label=f"ridge {ridge:g}")
    for key, style in ((("cifar10", "random_conv_features"), "--"),
                       (("cifar10", "random_conv_features_l2"), ":")):
      ax.axhline(paper.KERNEL_TEST_ERROR[key], color="grey", linestyle=style,
                 label=f"paper, {'l2' if 'l2' in key[1] else 'no ridge'} "
                       "(50,000 images)")
    ax.set(xscale="log", xlabel="random filters", ylabel="test error (%)",
           title=f"Random conv features, "
                 f"{filters['data']['train_examples']} training images")
    ax.legend(fontsize=8)
    path = figures / "section5_random_conv_filters.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=meta)
    plt.close(fig)
    lines += [f"![Random conv features](figures/{path.name})", "",
              "Each point: the bandwidth with the lowest validation error "
              "for that filter count and ridge; the test error is plotted.",
              ""]
  return lines


def _best(result: dict, preprocess: str | None = None, ridge=None,
          key: str = "val_error_percent") -> dict:
  """The run with the lowest ``key`` among the final solves."""
  runs = [r for s in result["sweeps"]
          if preprocess is None or s["preprocess"] == preprocess
          for r in s["solved"][-1]["runs"]
          if ridge is None or r["ridge"] == ridge]
  return min(runs, key=lambda r: r[key])


def _at(result: dict, preprocess: str, scale: float, ridge: float = 0.0
        ) -> dict | None:
  for s in result["sweeps"]:
    if s["preprocess"] == preprocess:
      for r in s["solved"][-1]["runs"]:
        if r["gamma_scale"] == scale and r["ridge"] == ridge:
          return r
  return None


def _norm_range(result: dict) -> str:
  norms = [r["true_labels"]["rkhs_norm"]
           for r in result["sweeps"][0]["solved"][-1]["runs"]
           if r["ridge"] == 0]
  return f"{min(norms):.0f}-{max(norms):.0f}"


def section5_findings(results: pathlib.Path) -> list[str]:
  """What the Section 5 results say, each number read from its file."""
  lines = []
  sweep = _load(results / "section5_cifar10_pixels_sweep.json")
  if sweep is not None:
    chosen = _selected_run(sweep)
    base = _at(sweep, "scale", 1.0)
    centered = _at(sweep, "center", 1.0)
    if chosen and base:
      sel = chosen[2]
      per_mode = "; ".join(
          f"{m['preprocess']} {_best(sweep, m['preprocess'])['val_error_percent']:.2f}% "
          f"(at {_best(sweep, m['preprocess'])['gamma_scale']:g} x)"
          for m in sweep["sweeps"])
      lines.append(
          f"- **The CIFAR-10 Gaussian-kernel gap.** On "
          f"{sweep['data']['train_examples']} training images, pixels / 255 "
          f"with the median-heuristic bandwidth give "
          f"{base['val_error_percent']:.2f}% validation error "
          f"({base['true_labels']['test_error_percent']:.2f}% test). Each "
          f"preprocessing at its best bandwidth (validation error, "
          f"multiple of the median): {per_mode}. Selected: "
          f"{chosen[0]['preprocess']} at {sel['gamma_scale']:g} x the median, "
          f"{sel['true_labels']['test_error_percent']:.2f}% test error. "
          + ("Subtracting the mean training image leaves the kernel "
             "unchanged (it depends on differences only): "
             f"{centered['val_error_percent']:.2f}% at the median again."
             if centered else ""))
    jpeg = _load(results / "section5_cifar10_pixels_jpeg75.json")
    if jpeg is not None:
      moves, largest = [], 0.0
      for s in jpeg["sweeps"]:
        for r in s["solved"][-1]["runs"]:
          ref = _at(sweep, s["preprocess"], r["gamma_scale"], r["ridge"])
          if ref:
            before = ref["true_labels"]["test_error_percent"]
            after = r["true_labels"]["test_error_percent"]
            largest = max(largest, abs(after - before))
            moves.append(f"{s['preprocess']} at {r['gamma_scale']:g} x: "
                         f"{before:.2f} -> {after:.2f}%")
      lines.append(
          "  JPEG artefacts: re-encoding every image once more at quality "
          f"{jpeg['data']['jpeg_reencoded_quality']} moves the test error "
          f"by at most {largest:.2f} points (" + "; ".join(moves) + "). A "
          "second encoding changes an image less than the first did, so "
          "this underestimates the first encoding's effect, but it makes "
          "the JPEG copy an unlikely cause of a gap of several points.")
    full = _load(results / "section5_cifar10_pixels_full.json")
    old = _load(results / "kernel_cifar10_full.json")
    if full is not None and old is not None:
      run = full["sweeps"][0]["solved"][-1]["runs"][0]
      plain = _load(results / "section5_cifar10_pixels_full_scale.json")
      middle = ""
      if plain is not None:
        p_run = plain["sweeps"][0]["solved"][-1]["runs"][0]
        middle = (f"{p_run['true_labels']['test_error_percent']:.2f}% with "
                  f"pixels / 255 at {p_run['gamma_scale']:g} x the median "
                  "(the bandwidth alone), ")
      lines.append(
          f"  On all 50,000 training images: "
          f"{old['runs'][0]['true_labels']['test_error_percent']:.2f}% with "
          f"pixels / 255 and the median bandwidth, {middle}"
          f"{run['true_labels']['test_error_percent']:.2f}% with the "
          f"selected {full['sweeps'][0]['preprocess']} at "
          f"{run['gamma_scale']:g} x the median (paper: "
          f"{paper.KERNEL_TEST_ERROR[('cifar10', 'rbf_pixels')]:g}%).")
  raw = _load(results / "section5_fashion_mnist_pixels_n20000.json")
  gabor = _load(results / "section5_fashion_mnist_gabor_n20000.json")
  if raw is not None and gabor is not None:
    r, g = _selected_run(raw), _selected_run(gabor)
    if r and g:
      r_run, g_run = r[2], g[2]
      r0 = _best(raw, ridge=0.0)
      g0 = _best(gabor, ridge=0.0)
      better = (g0["true_labels"]["test_error_percent"]
                < r0["true_labels"]["test_error_percent"])
      larger = g0["true_labels"]["rkhs_norm"] > r0["true_labels"]["rkhs_norm"]
      lines.append(
          f"- **Gabor wavelets (Fashion-MNIST for MNIST, "
          f"{raw['data']['train_examples']} training images).** Exact "
          f"interpolation (ridge 0, bandwidth chosen on validation): raw "
          f"pixels {r0['true_labels']['test_error_percent']:.2f}% test error "
          f"with RKHS norm {r0['true_labels']['rkhs_norm']:.1f}, Gabor "
          f"features {g0['true_labels']['test_error_percent']:.2f}% with "
          f"norm {g0['true_labels']['rkhs_norm']:.1f}. The paper (MNIST): "
          f"{paper.KERNEL_TEST_ERROR[('mnist', 'rbf_pixels')]:g}% -> "
          f"{paper.KERNEL_TEST_ERROR[('mnist', 'gabor')]:g}% with norms "
          f"about {paper.KERNEL_NORM[('mnist', 'rbf_pixels')]:g} -> "
          f"{paper.KERNEL_NORM[('mnist', 'gabor')]:g}. Here the features "
          f"{'lower' if better else 'do not lower'} the error and the norm "
          f"{'grows' if larger else 'shrinks'}: "
          + ("as in the paper, the smaller norm belongs to the worse "
             "model, so the norm does not predict generalization across "
             "feature maps." if better and larger else
             "the better model also has the smaller norm here, so on this "
             "data the norm orders the two the same way as the test error "
             "(the paper found the opposite on MNIST)." if better else
             "the feature map does not help on this data.")
          + " (A caveat: the norm depends as much on the bandwidth as on "
            "the features; over the bandwidths swept at ridge 0 it ranges "
            f"{_norm_range(raw)} on pixels and {_norm_range(gabor)} on "
            "Gabor features.)"
          + f" With the ridge chosen on validation: pixels "
            f"{r_run['true_labels']['test_error_percent']:.2f}% (ridge "
            f"{r_run['ridge']:g}), Gabor "
            f"{g_run['true_labels']['test_error_percent']:.2f}% (ridge "
            f"{g_run['ridge']:g}); the paper found that regularization did "
            "not improve either MNIST model"
          + (", here it does (by "
             f"{r0['true_labels']['test_error_percent'] - r_run['true_labels']['test_error_percent']:.2f}"
             " and "
             f"{g0['true_labels']['test_error_percent'] - g_run['true_labels']['test_error_percent']:.2f}"
             " points)." if r_run["ridge"] and g_run["ridge"] else "."))
  conv = _load(results / "section5_cifar10_random_conv_n10000.json")
  if conv is not None:
    solved = conv["sweeps"][0]["solved"]
    errors = [min((r for r in sol["runs"] if r["ridge"] == 0),
                  key=lambda r: r["val_error_percent"])["true_labels"][
                      "test_error_percent"] for sol in solved]
    steps = [f"{sol['num_filters']:,} filters {e:.2f}%"
             for sol, e in zip(solved, errors)]
    chosen = _selected_run(conv)
    lines.append(
        f"- **Random convolutional features** "
        f"({conv['data']['train_examples']} training images): exact "
        "interpolation (ridge 0, best bandwidth on validation): "
        + ", ".join(steps) + f": {len(steps)} filter counts over a factor "
        f"of {solved[-1]['num_filters'] // solved[0]['num_filters']} move "
        "the error by "
        f"{abs(errors[0] - errors[-1]):.2f} points."
        + (f" Selected on validation (filters, bandwidth and ridge): "
           f"{chosen[1]['num_filters']:,} filters, ridge "
           f"{chosen[2]['ridge']:g}: "
           f"{chosen[2]['true_labels']['test_error_percent']:.2f}% test "
           f"error." if chosen else ""))
  for name in ("section5_cifar10_random_conv_full.json",
               "section5_cifar10_random_conv_full_ridge.json"):
    full = _load(results / name)
    if full is not None:
      for run in full["sweeps"][0]["solved"][-1]["runs"]:
        key = ("cifar10", "random_conv_features" if run["ridge"] == 0 else
               "random_conv_features_l2")
        lines.append(
            f"  All 50,000 training images, "
            f"{full['features']['num_filters']:,} filters, ridge "
            f"{run['ridge']:g}: "
            f"{run['true_labels']['test_error_percent']:.2f}% test error, "
            f"training accuracy {run['true_labels']['train_accuracy']:.4f} "
            f"(paper: {paper.KERNEL_TEST_ERROR[key]:g}%).")
  stride1 = _load(results / "section5_cifar10_random_conv_stride1_n10000.json")
  stride_gain = None
  if conv is not None and stride1 is not None:
    count = stride1["features"]["num_filters"]
    same = [sol for sol in conv["sweeps"][0]["solved"]
            if sol["num_filters"] == count]
    if same:
      def best_at(runs, ridge):
        return min((r for r in runs if r["ridge"] == ridge),
                   key=lambda r: r["val_error_percent"])
      one = stride1["sweeps"][0]["solved"][-1]["runs"]
      two = same[0]["runs"]
      stride_gain = (best_at(two, 0.0)["true_labels"]["test_error_percent"]
                     - best_at(one, 0.0)["true_labels"]["test_error_percent"])
      lines.append(
          f"  Stride 1 against stride 2 at {count:,} filters on the same "
          f"images (best bandwidth on validation): ridge 0 "
          f"{best_at(two, 0.0)['true_labels']['test_error_percent']:.2f}% "
          f"(stride 2) vs "
          f"{best_at(one, 0.0)['true_labels']['test_error_percent']:.2f}% "
          "(stride 1); best ridge on validation "
          f"{min(two, key=lambda r: r['val_error_percent'])['true_labels']['test_error_percent']:.2f}%"
          " vs "
          f"{min(one, key=lambda r: r['val_error_percent'])['true_labels']['test_error_percent']:.2f}%.")
  full_conv = _load(results / "section5_cifar10_random_conv_full.json")
  if conv is not None and full_conv is not None:
    data_gain = errors[-1] - full_conv["sweeps"][0]["solved"][-1]["runs"][0][
        "true_labels"]["test_error_percent"]
    ratio = (full_conv["data"]["train_examples"]
             / conv["data"]["train_examples"])
    others = [abs(errors[0] - errors[-1])] + (
        [stride_gain] if stride1 is not None and stride_gain is not None
        else [])
    lines.append(
        f"  {ratio:g} times the data gains {data_gain:.2f} points at ridge 0"
        + (", more than the filter count"
           + (" or stride 1" if len(others) > 1 else "")
           + " does on the subset" if data_gain > max(others) else "")
        + ". The paper describes its network by its "
        "filter count only; our one-layer reading (`docs/ambiguities.md`) "
        "stays well above its errors, so its network was probably richer "
        "(more layers, or another nonlinearity or pooling).")
  return (["### What the results show", ""] + lines + [""]) if lines else []


def section5_features_section(results: pathlib.Path) -> list[str]:
  lines = ["## Section 5 feature maps: Gabor wavelets, random convolutional "
           "features, the CIFAR-10 bandwidth and preprocessing", ""]
  found = _feature_results(results, "section5_*.json")
  if not found:
    return lines + ["Not run yet: `python experiments/kernel_features.py` "
                    "writes `results/theory/section5_*.json`.", ""]
  lines += [
      "`python experiments/kernel_features.py` solves (K + ridge I) alpha = "
      "Y with a Gaussian kernel on a fixed feature map; true and random "
      "labels share the factorization. Choices are made on a validation "
      "split held out from the training set (the last training images in "
      "the stored order); the test set selects nothing. The readings of the "
      "paper's unstated details are in `docs/ambiguities.md`.", ""]
  lines += section5_findings(results)
  summary = section5_rows(results)
  if summary:
    lines += ["### Against the paper", "",
              "Also the `section5` key of `results/reproduction.json` "
              "(written by this command). Rows of a run with a validation "
              "split: for each ridge, the bandwidth with the lowest "
              "validation error. The paper gives a number for a ridge only "
              "on the random features ("
              f"{paper.KERNEL_TEST_ERROR[('cifar10', 'random_conv_features_l2')]:g}"
              "%); of MNIST it says that \"adding regularization does not "
              "improve either model\".",
              ""]
    header = ["data", "features", "preprocessing", "filters", "gamma",
              "ridge", "training points", "paper test error %", "test error %",
              "train accuracy", "RKHS norm", "paper norm", "results file"]
    lines += _table(header, [[
        r["data"], r["features"], r["preprocess"],
        "" if r["num_filters"] is None else r["num_filters"],
        f"{r['gamma']:.4g}", f"{r['ridge']:g}", r["train_examples"],
        "" if r["paper_test_error"] is None else r["paper_test_error"],
        _pct(r["test_error"]), f"{r['train_accuracy']:.4f}",
        f"{r['rkhs_norm']:.1f}",
        "" if r["paper_norm"] is None else f"about {r['paper_norm']:g}",
        f"`{pathlib.Path(r['results_file']).name}`"] for r in summary])
    lines += [""]
  lines += section5_plots(results, FIGURES)
  lines += ["### Every setting", ""]
  for path, result in found:
    lines += _feature_result(path, result)
  return lines


def depth_k_section(results: pathlib.Path) -> list[str]:
  lines, result = _open_section(
      "## Depth-k expressivity (Section 4, remark after Theorem 1)",
      results / "depth_k.json", "python experiments/depth_k.py")
  if result is None:
    return lines
  lines += [
      "The paper: depth k, width O(n/k). Construction: "
      f"{result['construction']}. \"weights\" counts as Theorem 1 counts "
      "2n + d (the shared projection once); \"dense parameters\" are those of "
      "the Dense layers that hold the network (mostly structural zeros). "
      "\"difference from depth 2\": max |deep(x) - two_layer(x)| at fresh "
      "points (the construction computes the same function everywhere).",
      ""]
  header = ["data", "n", "d", "depth", "width (max)", "weights", "2n + d",
            "dense parameters", "max error", "depth-2 max error",
            "difference from depth 2", "labels recovered"]
  rows = [[f["data"], f["n"], f["d"], f["depth"], f["widths_max"],
           f["num_weights"], f["two_n_plus_d"], f["num_dense_parameters"],
           _sci(f["max_abs_error"]), _sci(f["two_layer_max_abs_error"]),
           _sci(f["max_abs_difference_from_depth_2_at_fresh_points"]),
           "" if "labels_recovered" not in f else
           f"{f['labels_recovered']:.4f}"] for f in result["fits"]]
  lines += _table(header, rows)
  lines += ["", "Data: " + " ".join(f"{k}: {v}." for k, v in
                                    result["data"].items()), ""]
  return lines


def rademacher_section(results: pathlib.Path) -> list[str]:
  lines, result = _open_section(
      "## Empirical Rademacher complexity (Section 2.2)",
      results / "rademacher.json", "python experiments/rademacher.py")
  if result is None:
    return lines
  lines += [result["description"] + " The paper gives no number; it argues "
            "that R_n is about 1 for the networks it trains, which makes the "
            "Rademacher bound vacuous.", ""]
  header = ["model class", "n", "draws of sigma", "estimate of R_n",
            "std over draws", "train accuracy on sigma (mean)",
            "epochs to fit", "how the sup is approximated", "seconds"]
  rows = [[m["model"], m["n"], m["draws"], f"{m['rademacher_estimate']:.3f}",
           f"{m['std']:.3f}", f"{m['mean_train_accuracy']:.4f}",
           ", ".join(str(e) for e in m.get("epochs_to_fit", [])),
           m["fitted_by"], f"{m['seconds']:.0f}"] for m in result["models"]]
  lines += _table(header, rows) + [""]
  return lines


def build(results: pathlib.Path = RESULTS) -> str:
  lines = [
      "# Theory experiments (Sections 2.2, 4 and 5)", "",
      "Generated by `python experiments/theory_report.py` from the results "
      "files in `results/theory/`; do not edit by hand. Paper numbers come "
      "from `rethink_jax.paper`.", ""]
  for section in (theorem1_section, depth_k_section, min_norm_section,
                  kernel_section, section5_features_section,
                  rademacher_section):
    lines += section(results)
  return "\n".join(lines).rstrip() + "\n"


FLAGS = flags.FLAGS
flags.DEFINE_string("results", str(RESULTS), "folder of the theory results")
flags.DEFINE_string("out", "docs/theory.md", "the report")
flags.DEFINE_string("reproduction", "results/reproduction.json",
                    "results file whose section5 key is rewritten")


def main(argv: list[str] | None = None) -> None:
  args = FLAGS
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(build(pathlib.Path(args.results)))
  # The section5 rows beside the paper experiments' rows (other keys kept).
  reproduction = pathlib.Path(args.reproduction)
  merged = _load(reproduction) or {}
  merged["section5"] = section5_rows(pathlib.Path(args.results))
  write_results(reproduction, merged)
  print(f"wrote {out} and the section5 key of {reproduction}")


if __name__ == "__main__":
  cli.run_script(main)

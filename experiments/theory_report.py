"""Writes docs/theory.md from the results files in results/theory/.

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
  path = results / "min_norm.json"
  lines = ["## Minimum norm and SGD (Section 5)", ""]
  result = _load(path)
  if result is None:
    return lines + [f"Not run yet: `python experiments/min_norm.py` writes "
                    f"`{path.as_posix()}`.", ""]
  syn = result["synthetic"]
  lines += _provenance(result, path)
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


def rademacher_section(results: pathlib.Path) -> list[str]:
  path = results / "rademacher.json"
  lines = ["## Empirical Rademacher complexity (Section 2.2)", ""]
  result = _load(path)
  if result is None:
    return lines + [f"Not run yet: `python experiments/rademacher.py` writes "
                    f"`{path.as_posix()}`.", ""]
  lines += _provenance(result, path)
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
  for section in (theorem1_section, min_norm_section, kernel_section,
                  rademacher_section):
    lines += section(results)
  return "\n".join(lines).rstrip() + "\n"


FLAGS = flags.FLAGS
flags.DEFINE_string("results", str(RESULTS), "folder of the theory results")
flags.DEFINE_string("out", "docs/theory.md", "the report")


def main(argv: list[str] | None = None) -> None:
  args = FLAGS
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(build(pathlib.Path(args.results)))
  print(f"wrote {out}")


if __name__ == "__main__":
  cli.run_script(main)

"""rethink_jax: Zhang et al., "Understanding deep learning requires rethinking
generalization" (ICLR 2017) in JAX/Flax.

Submodules: ``data`` (tfds data sets, offline sources), ``corruption`` (the
randomization tests of Section 2.1), ``preprocessing`` (Appendix A pipeline),
``models`` (Table 1 models and Inception V3), ``train`` (the Section 3
protocol), ``theory`` (Sections 2.2, 4 and 5), ``paper`` (reported numbers).
"""

import os as _os

__version__ = "0.1.0"

# XLA:CPU hands convolutions to YNNPACK by default; on the 2-core x86 machines
# we measured, XLA's own (Eigen) convolutions train the small Inception twice
# as fast (docs/benchmarks.md). This only affects the CPU backend and only
# takes effect if set before JAX starts its backends, which importing
# rethink_jax before running any JAX computation ensures. A user's own
# XLA_FLAGS setting of the same flag wins. Set only for the jaxlib minor
# version it was measured with (an unknown XLA flag aborts the process).
CPU_XLA_FLAGS = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
_CPU_XLA_FLAGS_JAXLIB = "0.10."


def _set_cpu_xla_flags() -> None:
  try:
    from jaxlib import version  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  flags = _os.environ.get("XLA_FLAGS", "")
  if (version.__version__.startswith(_CPU_XLA_FLAGS_JAXLIB) and
      CPU_XLA_FLAGS.split("=", 1)[0] not in flags):
    _os.environ["XLA_FLAGS"] = f"{flags} {CPU_XLA_FLAGS}".strip()


_set_cpu_xla_flags()

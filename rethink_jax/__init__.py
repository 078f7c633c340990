"""rethink_jax: Zhang et al., "Understanding deep learning requires rethinking
generalization" (ICLR 2017) in JAX/Flax.

Submodules: ``data`` (tfds data sets, offline sources), ``corruption`` (the
randomization tests of Section 2.1), ``preprocessing`` (Appendix A pipeline),
``models`` (Table 1 models and Inception V3), ``train`` (the Section 3
protocol), ``theory`` (Sections 2.2, 4 and 5), ``paper`` (reported numbers).
"""

__version__ = "0.1.0"

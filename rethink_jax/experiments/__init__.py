"""The paper's experiments: declarations, the sweep runner and the report.

* :mod:`rethink_jax.experiments.suite`: Table 1, Figures 1a, 1b/1c, 2b and
  Table 4 as run configs at a ``paper`` and a ``cpu`` scale.
* :mod:`rethink_jax.experiments.sweep`: runs each needed config once, in a
  workdir named after it; resumes partial runs, skips done ones, shards.

Command line: ``python experiments/paper.py --scale=cpu`` (``make paper``).
"""

"""``saetool bench``: SAEBench-class evaluations of several SAEs side by side, offline.

- :mod:`saetool.bench.base` -- the eval interface (``register_bench_evals``),
  metric cards, results;
- :mod:`saetool.bench.config` -- the run's settings (light: imported by the command);
- :mod:`saetool.bench.api` -- :func:`~saetool.bench.api.run_bench` (the random
  floors, resume, the ``bench`` artifact);
- one module per eval: ``core``, ``stability``, ``probing``, ``absorption``,
  ``autointerp``; ``linear`` (logistic probes), ``random_sae`` (the floor),
  ``store`` (the artifact), ``report`` (table, CSV, JSON), ``plots`` (PNG).
"""

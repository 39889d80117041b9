"""Steering: vectors, interventions, completion metrics, ``steer`` and ``sweep``.

Importing this package is cheap (no torch); the modules import what they need.

- :mod:`saetool.steer.vectors` -- steering vectors and the ``vector`` artifact
- :mod:`saetool.steer.interventions` -- ``add``, ``ablate``, ``clamp`` (edit hooks)
- :mod:`saetool.steer.metrics` -- ``refusal``, ``helpfulness``, ``coherence``, ``sentiment``
- :mod:`saetool.steer.api` -- :func:`run_steer` (baseline vs steered completions)
- :mod:`saetool.steer.sweep` -- :func:`run_sweep` (the resumable grid)
- :mod:`saetool.steer.completions` -- the ``completions`` artifact
- :mod:`saetool.steer.stats` -- Wilson intervals, Fisher's exact test, Holm/BH
"""

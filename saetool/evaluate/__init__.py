"""Evaluating SAEs: quality metrics (``register_sae_metrics`` plugins), ``evaluate`` and ``check``.

- :mod:`saetool.evaluate.metrics` -- the metric interface and built-ins (MSE,
  FVU, explained variance, cosine similarity, L0, dead/dense
  fractions, CE loss clean/spliced/ablated, CE loss recovered, KL);
- :mod:`saetool.evaluate.api` -- :func:`evaluate_sae` (held-out activations
  and/or the model with the SAE spliced in);
- :mod:`saetool.evaluate.check` -- the SCALE UP / FIX ISSUES FIRST verdict.
"""

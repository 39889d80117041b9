"""The plugin module saetool loads through the ``saetool`` entry-point group.

It registers the ``distinct-n`` completion metric (for ``steer`` and
``sweep``) and the ``token-class`` feature labeler (for ``interpret``).
"""

from __future__ import annotations

from saetool.hookspecs import hookimpl


@hookimpl
def register_completion_metrics(register):
    from saetool_textstats.metric import DistinctN

    register(DistinctN())


@hookimpl
def register_feature_labelers(register):
    from saetool_textstats.labeler import TokenClassLabeler

    register(TokenClassLabeler())

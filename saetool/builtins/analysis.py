"""Built-in select, tokens and audit commands."""

from __future__ import annotations

from saetool.hookspecs import hookimpl

# Deferred imports: plugins load every built-in (`saetool --help` included); each hook imports only what it registers, so asking for one category loads no other.


@hookimpl
def register_artifact_kinds(register):
    from saetool.artifacts.kinds import ArtifactKind, Rows

    # the tables' columns (analysis.select.COLUMNS, analysis.token_stats.COLUMNS; not imported: they load torch)
    selection = ("name", "layer", "feature", "rank", "d", "mean_a", "mean_b", "std_a", "std_b", "n_a", "n_b", "d_same_length", "d_paired")
    tokens = ("token_id", "token", "piece", "count_a", "count_b", "log_odds", "z", "chi2", "p", "q", "significant",
              "texts_a", "texts_b", "p_texts", "q_texts", "significant_texts")

    register(
        ArtifactKind(
            name="selection",
            schema_version=1,
            description="SAE features ranked by Cohen's d (paired d when the sets pair) between two sets of activations, top N per layer",
            required_datasets=("name", "layer", "feature", "d", "mean_a", "mean_b", "n_a", "n_b"),
            required_attrs=("unit", "layers", "saes", "d_sae"),
            datasets={"name": Rows(None, 1, "text"), **{c: Rows("name", 1, "number") for c in selection[1:]}},  # one row per selected feature
        )
    )
    register(
        ArtifactKind(
            name="token-associations",
            schema_version=1,
            description="Tokens over-represented in one of two text sets: counts, smoothed log-odds, chi-square and BH q-values, and Fisher's test over texts",
            required_datasets=("token_id", "token", "count_a", "count_b", "log_odds", "z", "p", "q"),
            required_attrs=("labels", "n_tokens_a", "n_tokens_b", "prior", "alpha", "min_count"),
            datasets={c: Rows(None if c == "token_id" else "token_id", 1, "text" if c in ("token", "piece") else "number") for c in tokens},  # one row per token
        )
    )


@hookimpl
def register_commands(register):
    from saetool.cli import audit_cmd, select_cmd, tokens_cmd

    register(select_cmd.select, name="select")
    register(tokens_cmd.tokens, name="tokens")
    register(audit_cmd.audit, name="audit")

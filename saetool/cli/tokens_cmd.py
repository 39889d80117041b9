"""``saetool tokens``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from saetool.cli.options import OUTPUT, OVERWRITE, TRUST_REMOTE_CODE
from saetool.console import is_quiet, log, stderr
from saetool.errors import SaetoolError

# Deferred imports: loaded by `saetool --help`; the tokens API, artifact helpers and rich tables load when the command
# runs.


def tokens(
    file_a: Optional[Path] = typer.Argument(None, metavar="[A]", help="Texts of set a: .txt (one per line), .jsonl or .json (omit with --completions)."),
    file_b: Optional[Path] = typer.Argument(None, metavar="[B]", help="Texts of set b (omit with --completions)."),
    completions: Optional[Path] = typer.Option(None, "--completions", "-c", help="A steer `completions` artifact, or a sweep cell (its baseline is the split's baseline.h5): compare two conditions."),
    cond_a: str = typer.Option("baseline", "--a", help="With --completions: the condition of set a."),
    cond_b: str = typer.Option("steered", "--b", help="With --completions: the condition of set b."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Whose tokenizer (default: the completions' model, else smollm2-135m); no weights are loaded."),
    min_count: int = typer.Option(5, "--min-count", help="Test only tokens seen at least this often in both sets together."),
    alpha: float = typer.Option(0.05, "--alpha", help="False-discovery rate for the Benjamini-Hochberg procedure."),
    prior: str = typer.Option("dirichlet", "--prior", help="Log-odds smoothing: dirichlet (informative prior from both sets' frequencies) or add (add-alpha)."),
    prior_strength: Optional[float] = typer.Option(None, "--prior-strength", help="dirichlet: pseudo-tokens in all (default: a tenth of the tokens in both sets); add: pseudo-count per token (default 0.5)."),
    yates: bool = typer.Option(True, "--yates/--no-yates", help="Yates continuity correction in the chi-square test (scipy's default)."),
    text_column: str = typer.Option("text", "--text-column", help="Field holding the text in .jsonl/.json files."),
    export: List[Path] = typer.Option([], "--export", "-e", help="Also write the table to this .csv or .json file (repeatable)."),
    show: int = typer.Option(15, "--show", help="Top tokens per side in the stderr table (0: none)."),
    output: Optional[Path] = OUTPUT,
    overwrite: bool = OVERWRITE,
    trust_remote_code: bool = TRUST_REMOTE_CODE,
) -> None:
    """Tokens over-represented in one of two text sets (a `token-associations` artifact).

    Counts with the model's tokenizer; smoothed log-odds ratio and z-score
    (informative Dirichlet prior, Monroe et al. 2008); chi-square p-values on
    each token's 2x2 table; Benjamini-Hochberg q-values. A text that
    repeats a token inflates that test, so each token is also tested over
    texts (Fisher's test of how many texts of each set hold it). Sign: log-odds > 0
    means more frequent in A (--a) than in B (--b); seed 003's
    log((patched+1)/(baseline+1)) is the reverse with --a baseline --b steered.

    Example:

        saetool tokens --completions steer.h5 --a baseline --b steered --export tokens.csv
        saetool tokens --completions runs/smoke_test/cells/harm_test/L15_add_a1.h5 --a steered --b baseline
        saetool tokens harm.txt benign.txt --min-count 3 -o tokens.h5
    """
    from saetool.analysis.token_stats import KIND, TokensConfig, read_texts, texts_from_completions, token_associations
    from saetool.artifacts.manifest import emit_manifest

    if completions is not None:
        if file_a is not None or file_b is not None:
            raise SaetoolError("give either two text files A B or --completions, not both")
        set_a, set_b = texts_from_completions(completions, cond_a, cond_b)
    else:
        if file_a is None or file_b is None:
            raise SaetoolError("tokens needs two text files A B", hint="or --completions FILE --a baseline --b steered")
        set_a = read_texts(file_a, label="a", column=text_column)
        set_b = read_texts(file_b, label="b", column=text_column)
    config = TokensConfig(min_count=min_count, alpha=alpha, prior=prior, prior_strength=prior_strength, yates=yates, labels=(set_a.label, set_b.label))
    config.validate()
    name = model or set_a.model or "smollm2-135m"
    result = token_associations(set_a, set_b, output, model=name, config=config, exports=export, overwrite=overwrite)
    show_tokens(result.table, show, (set_a.label, set_b.label), (result.attrs["n_texts_a"], result.attrs["n_texts_b"]))
    a = result.attrs
    log(
        f"[green]wrote[/green] {result.path} ({a['n_tested']} tokens tested of {a['n_types']}; "
        f"significant at q≤{alpha:g}: {a['n_significant_a']} for {set_a.label}, {a['n_significant_b']} for {set_b.label} over tokens, "
        f"{a['n_significant_texts_a']} and {a['n_significant_texts_b']} over texts)"
    )
    log("over tokens: chi-square, every occurrence counted, so a text that repeats a token inflates it; "
        "over texts: Fisher's test of how many texts hold the token (+ in the table: significant there too, in more of this side's texts)")
    log(a["log_odds_sign"])
    for e in result.exports:
        log(f"[green]wrote[/green] {e}")
    emit_manifest(
        result.path, KIND, n_tested=a["n_tested"], n_significant_a=a["n_significant_a"], n_significant_b=a["n_significant_b"],
        labels=a["labels"], model=name, exports=[str(e.resolve()) for e in result.exports],
    )


def show_tokens(table, rows: int, labels: tuple[str, str], n_texts: tuple[int, int]) -> None:
    """The most over-represented tokens of each side on stderr (* significant over tokens, + over texts)."""
    from rich.markup import escape
    from rich.table import Table

    from saetool.analysis.token_stats import texts_direction

    if is_quiet() or rows <= 0 or len(table) == 0:
        return
    sides = ((labels[0], table[table["log_odds"] > 0].head(rows)), (labels[1], table[table["log_odds"] < 0].iloc[::-1].head(rows)))
    direction = texts_direction(table, *n_texts)
    for side, (label, part) in enumerate(sides):
        out = Table(title=f"tokens over-represented in {label} (* q ≤ alpha over tokens, + over texts)", title_justify="left")
        for col in ("token", f"n {labels[0]}", f"n {labels[1]}", "log-odds", "z", "q", "texts", "q texts"):
            out.add_column(col, justify="left" if col == "token" else "right")
        for _, r in part.iterrows():
            mark = ("*" if r["significant"] else "") + ("+" if r["significant_texts"] and direction[r.name] == (1 if side == 0 else -1) else "")
            out.add_row(escape(repr(r["token"])) + mark, str(r["count_a"]), str(r["count_b"]), f"{r['log_odds']:+.2f}", f"{r['z']:+.2f}",
                        f"{r['q']:.2g}", f"{r['texts_a']}/{r['texts_b']}", f"{r['q_texts']:.2g}")
        stderr().print(out)

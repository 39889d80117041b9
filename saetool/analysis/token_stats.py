"""``saetool tokens``: which tokens one set of texts uses more than another.

Both sets are tokenised with the model's own tokenizer (special tokens are
neither added nor counted).
Per token: counts, the smoothed log-odds ratio with an informative Dirichlet
prior (Monroe et al. 2008) or add-alpha smoothing and its z-score, a 2x2
chi-square test (token vs every other token, set a vs set b),
Benjamini-Hochberg q-values over the tested tokens. The chi-square counts
every occurrence as independent evidence, which a text that repeats a token
(a degenerate steered completion saying "I cannot" ten times) inflates; so
each token is also tested **over texts**: how many texts of each set hold it,
Fisher's exact test (scipy), BH q-values (``texts_a``, ``texts_b``,
``p_texts``, ``q_texts``, ``significant_texts``). Layout of the
``token-associations`` artifact: docs/artifacts.md.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np
import pandas as pd

from saetool.analysis.select import export_table
from saetool.analysis.stats import benjamini_hochberg, chi2_2x2, log_odds_dirichlet
from saetool.artifacts.arrays import text_array
from saetool.artifacts.outputs import check_outputs
from saetool.artifacts.provenance import build_provenance
from saetool.artifacts.store import ArtifactWriter, attr_value, check_output_path, open_artifact
from saetool.errors import ModelError, SaetoolError
from saetool.models.registry import resolve_model
from saetool.models.source import first_line
from saetool.steer.completions import read_completions
from saetool.steer.prompts import read_text_file
from saetool.steer.stats import fisher_exact_p

KIND = "token-associations"
SCHEMA_VERSION = 1
PRIORS = ("dirichlet", "add")
#: Default prior strength: dirichlet, a fraction of the tokens in both sets; add, a pseudo-count per token.
DEFAULT_DIRICHLET_FRACTION = 0.1
DEFAULT_ADD = 0.5
COLUMNS = ("token_id", "token", "piece", "count_a", "count_b", "log_odds", "z", "chi2", "p", "q", "significant",
           "texts_a", "texts_b", "p_texts", "q_texts", "significant_texts")


@dataclass
class TokensConfig:
    """``prior``: ``dirichlet`` (pseudo-counts in proportion to each token's
    frequency in both sets together, ``prior_strength`` of them in all;
    default a tenth of the tokens in both sets) or ``add`` (``prior_strength``,
    default 0.5, added to every observed token's count).
    Tokens seen fewer than ``min_count`` times in both sets together are not
    tested; ``alpha`` is the false-discovery rate of the BH procedure."""

    min_count: int = 5
    alpha: float = 0.05
    prior: str = "dirichlet"
    prior_strength: float | None = None
    yates: bool = True
    labels: tuple[str, str] = ("a", "b")

    def validate(self) -> None:
        if self.min_count < 1:
            raise SaetoolError(f"--min-count must be at least 1 (got {self.min_count})")
        if not 0 < self.alpha < 1:
            raise SaetoolError(f"--alpha must be between 0 and 1 (got {self.alpha})")
        if self.prior not in PRIORS:
            raise SaetoolError(f"unknown --prior {self.prior!r}", hint="choose dirichlet or add")
        if self.prior_strength is not None and not self.prior_strength > 0:
            raise SaetoolError(f"--prior-strength must be positive (got {self.prior_strength})")
        if self.labels[0] == self.labels[1]:
            raise SaetoolError(f"the two sets have the same name {self.labels[0]!r}", hint="compare two different conditions or files")

    def strength(self, n_total: int) -> float:
        """The prior's strength for ``n_total`` tokens in both sets."""
        if self.prior_strength is not None:
            return float(self.prior_strength)
        return DEFAULT_DIRICHLET_FRACTION * n_total if self.prior == "dirichlet" else DEFAULT_ADD


@dataclass
class TextSet:
    label: str
    texts: list[str]
    source: str
    parents: list[Path] = field(default_factory=list)
    model: str | None = None


@dataclass
class TokensResult:
    path: Path
    table: "pd.DataFrame"
    attrs: dict[str, Any]
    exports: list[Path] = field(default_factory=list)


# -- inputs ------------------------------------------------------------------------------------------
def read_texts(path: str | Path, *, label: str, column: str = "text") -> TextSet:
    """Texts from a file: ``.txt`` one per line, ``.jsonl`` one JSON string or
    object (``column`` field) per line, ``.json`` a list of those. Blank texts
    are dropped; a file with none left is an error."""
    p, raw = read_text_file(path, what="text file")
    if p.suffix == ".jsonl":
        items = []
        for n, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise SaetoolError(f"{p} line {n} is not JSON ({exc.msg})") from None
    elif p.suffix == ".json":
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SaetoolError(f"{p} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(items, list):
            raise SaetoolError(f"{p} must hold a JSON list of texts")
    else:
        items = raw.splitlines()
    texts = []
    for n, item in enumerate(items, 1):
        if isinstance(item, dict):
            if column not in item:
                raise SaetoolError(f"{p} item {n} has no {column!r} field", hint="use --text-column to name the field holding the text")
            item = item[column]
        if not isinstance(item, str):
            raise SaetoolError(f"{p} item {n} is not a string")
        if item.strip():
            texts.append(item)
    if not texts:
        raise SaetoolError(f"text file {p} is empty (no non-blank texts)", hint="put one text per line")
    return TextSet(label, texts, str(p))


def texts_from_completions(path: str | Path, condition_a: str, condition_b: str) -> tuple[TextSet, TextSet]:
    """Two conditions of a steer ``completions`` artifact (e.g. baseline vs steered).

    A sweep cell (``RUN/cells/SPLIT/L15_add_a1.h5``) holds only ``steered``; its
    ``baseline`` is read from the split's shared baseline file next to it
    (``baseline.h5``, checked to belong to the same sweep and settings)."""
    comp = read_completions(path)
    out = []
    for cond in (condition_a, condition_b):
        source, texts_of = Path(path), comp.texts
        if cond not in comp.texts and cond == "baseline" and isinstance(comp.settings.get("cell"), dict):
            source = _cell_baseline(Path(path), comp)
            texts_of = read_completions(source).texts
        if cond not in texts_of:
            raise SaetoolError(f"{path} has no condition {cond!r}", hint="its conditions: " + (", ".join(comp.texts) or "none"))
        texts = [t for t in texts_of[cond] if t.strip()]
        if not texts:
            raise SaetoolError(f"condition {cond!r} of {source} has only empty completions", hint="nothing to count")
        model = comp.settings.get("model") or comp.provenance.get("model")
        out.append(TextSet(cond, texts, f"{source}:{cond}", [source], model))
    return out[0], out[1]


def _cell_baseline(path: Path, comp: Any) -> Path:
    """The shared baseline of a sweep cell's split, from the same sweep and settings."""
    base = path.parent / "baseline.h5"
    split = comp.settings["cell"].get("split")
    if base == path or not base.is_file():
        raise SaetoolError(f"{path} is a sweep cell of split {split!r} but its baseline {base} does not exist",
                           hint="rerun the sweep (it recomputes missing cells), or pass two conditions of one file")
    settings = read_completions(base).settings
    if settings.get("sweep") != comp.settings.get("sweep") or settings.get("fingerprint") != comp.settings.get("fingerprint"):
        raise SaetoolError(f"{base} was made by another sweep or other settings than {path}", hint="compare cells of one run")
    return base


def load_tokenizer(model: str):
    """The model's tokenizer (no weights loaded): an embedded model, a local folder or a cached hub id."""
    source = resolve_model(model)
    try:
        return source.load_tokenizer()
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of {model!r}: {first_line(exc)}", hint="pass an embedded model, a local folder, or a cached hub id") from exc


@dataclass
class TokenCounts:
    """Token-id counts over a set of texts, ``total`` tokens, and per token the number of texts holding it."""

    counts: Counter
    total: int
    holding: Counter
    n_texts: int


def count_tokens(tokenizer: Any, texts: Sequence[str], *, what: str) -> TokenCounts:
    """Token-id counts over ``texts``. No special tokens are added, and special
    tokens written in the text (``<|endoftext|>``...) are markup, not words:
    they are not counted."""
    special = {int(i) for i in getattr(tokenizer, "all_special_ids", [])}
    counts: Counter = Counter()
    holding: Counter = Counter()
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        mine = [int(i) for i in ids if int(i) not in special]
        counts.update(mine)
        holding.update(set(mine))
    total = sum(counts.values())
    if total == 0:
        raise SaetoolError(f"the texts of {what} tokenise to nothing (no tokens besides special ones)", hint="check that it holds text the model's tokenizer reads")
    return TokenCounts(counts, total, holding, len(texts))


# -- the statistics ----------------------------------------------------------------------------------
def associations(set_a: TokenCounts, set_b: TokenCounts, config: TokensConfig, tokenizer: Any = None) -> "pd.DataFrame":
    """One row per tested token (seen at least ``min_count`` times in all),
    sorted by z (most typical of a first, of b last)."""
    counts_a, counts_b = set_a.counts, set_b.counts
    vocab = np.array(sorted(set(counts_a) | set(counts_b)), dtype=np.int64)
    ya = np.array([counts_a.get(int(t), 0) for t in vocab], dtype=np.int64)
    yb = np.array([counts_b.get(int(t), 0) for t in vocab], dtype=np.int64)
    n_a, n_b = int(ya.sum()), int(yb.sum())
    strength = config.strength(n_a + n_b)
    if config.prior == "dirichlet":
        prior = strength * (ya + yb) / float(n_a + n_b)
    else:
        prior = np.full(len(vocab), strength)
    delta, z = log_odds_dirichlet(ya, yb, prior)
    tested = (ya + yb) >= config.min_count
    stat, p = chi2_2x2(ya[tested], yb[tested], n_a, n_b, yates=config.yates)
    q = benjamini_hochberg(p)
    ids = vocab[tested]
    ta = np.array([set_a.holding.get(int(t), 0) for t in ids], dtype=np.int64)
    tb = np.array([set_b.holding.get(int(t), 0) for t in ids], dtype=np.int64)
    p_texts = np.array([fisher_exact_p(int(x), set_a.n_texts, int(y), set_b.n_texts) for x, y in zip(ta, tb)], dtype=np.float64)
    q_texts = benjamini_hochberg(p_texts)
    table = pd.DataFrame(
        {
            "token_id": ids,
            "token": [tokenizer.decode([int(i)]) for i in ids] if tokenizer is not None else [""] * len(ids),
            "piece": [str(x) for x in tokenizer.convert_ids_to_tokens([int(i) for i in ids])] if tokenizer is not None else [""] * len(ids),
            "count_a": ya[tested],
            "count_b": yb[tested],
            "log_odds": delta[tested],
            "z": z[tested],
            "chi2": stat,
            "p": p,
            "q": q,
            "significant": q <= config.alpha,
            "texts_a": ta,
            "texts_b": tb,
            "p_texts": p_texts,
            "q_texts": q_texts,
            "significant_texts": q_texts <= config.alpha,
        }
    )
    return table.sort_values(["z", "token_id"], ascending=[False, True], kind="mergesort").reset_index(drop=True)


def texts_direction(table: "pd.DataFrame", n_texts_a: int, n_texts_b: int) -> "pd.Series":
    """Per token, the sign of its share of set a's texts minus its share of set b's: over texts, the
    side a token is typical of (its log-odds, over occurrences, may say the other)."""
    return np.sign(table["texts_a"] / n_texts_a - table["texts_b"] / n_texts_b)


# -- the artifact ------------------------------------------------------------------------------------
def write_associations(path: str | Path, table: "pd.DataFrame", *, attrs: dict[str, Any], provenance: dict[str, Any], overwrite: bool = False) -> Path:
    str_dt = h5py.string_dtype("utf-8")
    with ArtifactWriter(path, KIND, provenance, overwrite=overwrite) as writer:
        fh = writer.file
        assert fh is not None
        for col in COLUMNS:
            if col in ("token", "piece"):
                fh.create_dataset(col, data=text_array(table[col]), dtype=str_dt)
                continue
            arr = np.asarray(table[col])
            if col in ("significant", "significant_texts"):
                arr = arr.astype("int8")
            ds = fh.create_dataset(col, data=arr)
            ds.attrs["saetool_dtype"] = str(arr.dtype)
        for key, value in attrs.items():
            fh.attrs[key] = value if isinstance(value, (int, float, str, bool)) else json.dumps(value, sort_keys=True)
    return Path(path)


def read_associations(path: str | Path) -> "pd.DataFrame":
    """A ``token-associations`` artifact as a table; attributes in ``.attrs``."""
    with open_artifact(path, kind=KIND) as art:
        fh = art.file
        data = {c: (list(fh[c].asstr()[()]) if c in ("token", "piece") else fh[c][()]) for c in COLUMNS if c in fh}
        table = pd.DataFrame(data)
        for col in ("significant", "significant_texts"):
            if col in table:
                table[col] = table[col].astype(bool)
        table.attrs.update({k: attr_value(v) for k, v in fh.attrs.items() if k != "provenance"})
    return table


# -- the API -----------------------------------------------------------------------------------------
def sign_convention(a: str, b: str) -> str:
    """What the sign of ``log_odds`` means, in words (stored and printed with every table)."""
    return (f"log_odds > 0: more frequent in {a} than in {b}; < 0: more frequent in {b}. "
            f"Seed 003's log((patched+1)/(baseline+1)) is positive when more frequent in the patched set: "
            f"put that set first (A, or --a) for its sign")


def default_output() -> Path:
    return Path("tokens.h5")


def token_associations(
    set_a: TextSet,
    set_b: TextSet,
    output: str | Path | None = None,
    *,
    model: str = "smollm2-135m",
    config: TokensConfig | None = None,
    exports: Sequence[str | Path] = (),
    overwrite: bool = False,
) -> TokensResult:
    """Count, test and write the token associations of ``set_a`` vs ``set_b``."""
    config = config or TokensConfig(labels=(set_a.label, set_b.label))
    config.validate()
    ins = [set_a.source, set_b.source, *set_a.parents, *set_b.parents]
    out = check_output_path(output or default_output(), overwrite=overwrite, inputs=ins)
    export_paths = [check_output_path(e, overwrite=overwrite, inputs=ins, option="--export") for e in exports]
    check_outputs([("--output", out), *(("--export", e) for e in export_paths)], overwrite=True)
    tokenizer = load_tokenizer(model)
    counted_a = count_tokens(tokenizer, set_a.texts, what=f"set {set_a.label} ({set_a.source})")
    counted_b = count_tokens(tokenizer, set_b.texts, what=f"set {set_b.label} ({set_b.source})")
    counts_a, n_a, counts_b, n_b = counted_a.counts, counted_a.total, counted_b.counts, counted_b.total
    table = associations(counted_a, counted_b, config, tokenizer)
    sig = table[table["significant"]]
    sig_texts = texts_direction(table, counted_a.n_texts, counted_b.n_texts)[table["significant_texts"]]
    attrs = {
        "labels": [set_a.label, set_b.label],
        "sources": {set_a.label: set_a.source, set_b.label: set_b.source},
        "model": model,
        "n_texts_a": len(set_a.texts),
        "n_texts_b": len(set_b.texts),
        "n_tokens_a": n_a,
        "n_tokens_b": n_b,
        "n_types": len(set(counts_a) | set(counts_b)),
        "n_tested": len(table),
        "n_significant_a": int((sig["log_odds"] > 0).sum()),
        "n_significant_b": int((sig["log_odds"] < 0).sum()),
        "n_significant_texts_a": int((sig_texts > 0).sum()),
        "n_significant_texts_b": int((sig_texts < 0).sum()),
        "prior": config.prior,
        "prior_strength": config.strength(n_a + n_b),
        "min_count": config.min_count,
        "alpha": config.alpha,
        "yates": config.yates,
        "test": "chi2 2x2 (token vs other tokens, a vs b)" + (" with Yates correction" if config.yates else "") + "; Benjamini-Hochberg q",
        "test_texts": "Fisher's exact test of the texts holding the token (a vs b), two-sided; Benjamini-Hochberg q",
        "log_odds_sign": sign_convention(set_a.label, set_b.label),
    }
    parents = [*set_a.parents, *set_b.parents]
    provenance = build_provenance(model=model, parents=parents, tokens=attrs)
    write_associations(out, table, attrs=attrs, provenance=provenance, overwrite=overwrite)
    done = [export_table(table, e, meta=attrs) for e in export_paths]
    return TokensResult(out, table, attrs, done)

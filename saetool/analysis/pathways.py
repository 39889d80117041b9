"""``saetool pathways``: which upstream SAE features drive a target feature.

For targets ``L{layer}-{id}`` and SAEs at several layers of one model:

1. **Attribution.** One forward pass per batch with every SAE spliced in
   (``x -> decode(f) + error``, error detached; see
   :mod:`saetool.analysis.pathways_splice`). The target's activation ``A`` is
   its feature activation summed over the counted tokens (not padding, not
   BOS/special tokens) of every text. Each upstream feature's attribution is
   ``sum(f * dA/df)`` over the same tokens (activation x gradient), accumulated
   over batches. Only ``[n_targets, d_sae]`` sums are kept per SAE, never
   dense codes for the corpus.
2. **Edges.** Per target, the ``top_k`` upstream features by ``|attribution|``
   above ``threshold``. The predicted change of ``A`` when a source is scaled
   by ``factor`` (0: ablated) is ``(factor - 1) * attribution``.
3. **Replay.** A second pass reruns each batch clean (recording every SAE's
   error term) and once per distinct source with that feature scaled at the
   counted tokens, every error term held at its clean value, and measures the
   actual change of each target's ``A``. Predicted and actual are compared per
   edge (does the sign agree), per target (Pearson r over its edges, the share
   of its edges whose sign agrees) and over all edges (Pearson and Spearman,
   scipy): a pooled r mostly measures how the targets' scales differ, so a
   target whose own edges do not follow the prediction shows only in its row.
4. **Control.** That the top edges' predictions come true does not show that
   attribution picked the features that matter rather than the most active
   ones: the same replay runs on ``control_edges`` other upstream sources per
   target, **matched in activity** (each edge in turn gets one drawn at random,
   seeded per target, from the :data:`MATCH_POOL` unused sources whose summed
   activation on the texts is nearest its own). Per target: the mean
   ``|actual|`` change of its edges and of its controls, a one-sided
   Mann-Whitney U test (scipy) that the edges change it more, and Holm's
   adjustment over the targets.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from saetool.analysis.names import feature_name, parse_feature_name
from saetool.analysis.pathways_inputs import batch, batches, check_rows, read_texts, rows_from_corpus, rows_from_texts, special_ids
from saetool.analysis.pathways_splice import Patch, Splice, forward_with_grad, frozen, torch_module
from saetool.analysis.select import load_layer_saes, read_selection
from saetool.artifacts.files import write_atomic
from saetool.artifacts.jsonable import finite
from saetool.artifacts.outputs import check_outputs
from saetool.artifacts.provenance import build_provenance
from saetool.artifacts.store import ArtifactWriter, attr_value, check_output_path, open_artifact
from saetool.artifacts.tables import read_table, write_table
from saetool.console import log, warn
from saetool.errors import SaetoolError
from saetool.models import registry  # the module, so tests can stub registry.load_model
from saetool.models.hooks import parse_hooks
from saetool.progress import token_progress
from saetool.sae.io import check_sae_matches, same_model
from saetool.steer.prompts import pad_id_of
from saetool.steer.stats import holm

if TYPE_CHECKING:
    from saetool.analysis.select import LayerSAE
    from saetool.models.base import HookedModel

KIND = "pathways"
#: Default control sources per target, at least: against 5 edges, 10 controls let the one-sided
#: Mann-Whitney p reach 1/3003 (5 against 5 cannot go below 1/252, 3 against 3 below 0.05).
MIN_CONTROLS = 10
#: A control is drawn from this many unused sources nearest its edge's summed activation.
MATCH_POOL = 5
SCHEMA_VERSION = 1
EDGE_COLUMNS = (
    "source", "target", "source_layer", "source_feature", "target_layer", "target_feature",
    "rank", "attribution", "predicted", "actual", "sign_agrees", "source_activation",
)
CONTROL_COLUMNS = (*EDGE_COLUMNS, "matched_to")


@dataclass
class PathwaysConfig:
    """Settings of a pathways run (see the module docstring)."""

    top_k: int = 10
    threshold: float = 0.0
    factor: float = 0.0
    batch_size: int = 8
    context_size: int = 64
    replay: bool = True
    control_edges: int | None = None  # per target; None: max(top_k, MIN_CONTROLS)
    seed: int = 0

    @property
    def n_control(self) -> int:
        """Control sources per target (none without the replay)."""
        if not self.replay:
            return 0
        return max(self.top_k, MIN_CONTROLS) if self.control_edges is None else self.control_edges

    def validate(self) -> None:
        if self.top_k < 1:
            raise SaetoolError(f"--top-k must be at least 1 (got {self.top_k})")
        if self.control_edges is not None and self.control_edges < 0:
            raise SaetoolError(f"--control-edges must be 0 or more (got {self.control_edges})")
        if not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise SaetoolError(f"--threshold must be a finite number >= 0 (got {self.threshold})")
        if not math.isfinite(self.factor) or self.factor == 1.0:
            raise SaetoolError(f"--factor must be finite and not 1 (got {self.factor})", hint="0 ablates the source; 2 doubles it")
        if self.batch_size < 1:
            raise SaetoolError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.context_size < 2:
            raise SaetoolError(f"--context-size must be at least 2 (got {self.context_size})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Target:
    name: str
    layer: int
    feature: int
    sae_index: int


@dataclass
class PathwaysResult:
    path: Path
    edges: "pd.DataFrame"
    targets: "pd.DataFrame"
    correlation: dict[str, Any]
    n_texts: int
    n_tokens: int
    seconds: float = 0.0
    exports: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # selected targets at the lowest SAE layer, left out
    controls: "pd.DataFrame" = field(default_factory=lambda: pd.DataFrame(columns=list(CONTROL_COLUMNS)))


# -- inputs ------------------------------------------------------------------------------------------
def resolve_targets(names: Sequence[str], saes: Sequence["LayerSAE"], skippable: Sequence[str] = ()) -> tuple[list[Target], list[str]]:
    """Targets from ``L{layer}-{id}`` names, and the ``skippable`` names left out.

    The layer must have an SAE with an SAE upstream of it, and the id must be
    within that SAE's width. A name in ``skippable`` (a ``--selection``'s
    features) at the lowest SAE layer is left out instead of being an error,
    since nothing upstream of it can be attributed."""
    if not names:
        raise SaetoolError("no target features given", hint="pass --target L{layer}-{id} (repeatable) or --selection FILE")
    index = {s.layer: i for i, s in enumerate(saes)}
    lowest = {str(n).strip() for n in skippable}
    out: list[Target] = []
    skipped: list[str] = []
    for name in dict.fromkeys(str(n).strip() for n in names):
        layer, fid = parse_feature_name(name)
        if layer not in index:
            raise SaetoolError(f"target {name}: no SAE for layer {layer}", hint="SAEs given for layers " + ", ".join(str(s.layer) for s in saes))
        d_sae = saes[index[layer]].sae.cfg.d_sae
        if fid >= d_sae:
            raise SaetoolError(f"target {name} is out of range: the layer-{layer} SAE has {d_sae} features (ids 0-{d_sae - 1})")
        if index[layer] == 0 and name in lowest:
            skipped.append(name)
            continue
        if index[layer] == 0:
            raise SaetoolError(f"target {name} has no SAE upstream of it (its layer is the lowest SAE layer)", hint="add an SAE at an earlier layer with --sae")
        out.append(Target(feature_name(layer, fid), layer, fid, index[layer]))
    if skipped:
        warn(f"{len(skipped)} selected feature(s) at layer {saes[0].layer}, the lowest SAE layer, are skipped: nothing upstream of them to attribute")
    if not out:
        raise SaetoolError(f"every target is at layer {saes[0].layer}, the lowest SAE layer: nothing upstream of them", hint="add an SAE at an earlier layer with --sae")
    return out, skipped


def selection_names(path: str | Path) -> list[str]:
    """The feature names in a ``selection`` artifact (``saetool select``)."""
    names = [str(n) for n in read_selection(path)["name"]]
    if not names:
        raise SaetoolError(f"the selection {path} holds no features")
    return names


def check_model(saes: Sequence["LayerSAE"], model: str | None) -> str:
    """The model to run: ``model`` if given (it must match the SAEs'), else the SAEs' own."""
    recorded = [s.sae.cfg.model for s in saes if s.sae.cfg.model]
    if model is None:
        if not recorded:
            raise SaetoolError("the SAEs do not record which model they were trained on", hint="pass --model")
        return str(recorded[0])
    for s in saes:
        if s.sae.cfg.model and not same_model(model, s.sae.cfg.model):
            raise SaetoolError(f"the SAE {s.path} was trained on model {s.sae.cfg.model!r}, not {model!r}", hint="pass SAEs of the model you run, or drop --model")
    return model


def check_saes_fit(model: "HookedModel", saes: Sequence["LayerSAE"]) -> None:
    for s in saes:
        cfg = s.sae.cfg
        if cfg.is_transcoder:
            raise SaetoolError(f"the SAE {s.path} is a transcoder ({cfg.hook} -> {cfg.hook_out})", hint="pathways splices SAEs that reconstruct their own hook")
        parse_hooks([cfg.hook], model.n_layers, model.supported_sites)
        check_sae_matches(s.sae, d_in=model.hook_dim(cfg.hook), what=f"model's {cfg.hook} activations")


# -- the two passes -----------------------------------------------------------------------------------
def attribute(
    model: "HookedModel",
    saes: Sequence["LayerSAE"],
    targets: Sequence[Target],
    rows: Sequence[Sequence[int]],
    batch_size: int,
    advance: Callable[[int], None] = lambda n: None,
) -> tuple[list[list["torch.Tensor | None"]], "np.ndarray", int, list["torch.Tensor"]]:
    """Activation x gradient of every upstream feature for every target, summed over
    counted tokens and texts: ``(attr[target][sae] -> [d_sae] float64 or None, A_clean[target], n_tokens,
    activity[sae] -> [d_sae] float64)``, the last each spliced SAE's feature activations summed over the same tokens."""
    top = max(t.sae_index for t in targets)
    spliced = [s.sae for s in saes[: top + 1]]
    stop_layer = saes[top].layer
    special = special_ids(model.tokenizer)
    pad = pad_id_of(model.tokenizer)
    attr: list[list[torch.Tensor | None]] = [[None] * len(saes) for _ in targets]
    for ti, t in enumerate(targets):
        for i in range(t.sae_index):
            attr[ti][i] = torch.zeros(saes[i].sae.cfg.d_sae, dtype=torch.float64)
    clean = np.zeros(len(targets))
    activity = [torch.zeros(s.cfg.d_sae, dtype=torch.float64) for s in spliced]
    n_tokens = 0
    with frozen(torch_module(model), *spliced):
        for chunk in batches(rows, batch_size):
            ids, mask, pos = batch(chunk, pad, special)
            pos = pos.to(model.device)
            splice = Splice(spliced, pos, grad=True)
            forward_with_grad(model, ids.to(model.device), mask.to(model.device), splice.hooks(), stop_layer)
            weight = pos.to(splice.codes[0].dtype)
            n_tokens += int(pos.sum())
            for i, codes in splice.codes.items():
                activity[i] += (codes.detach() * weight.unsqueeze(-1)).sum(dim=(0, 1)).double().cpu()
            for ti, t in enumerate(targets):
                a = (splice.codes[t.sae_index][..., t.feature] * weight).sum()
                clean[ti] += float(a.detach())
                ups = list(range(t.sae_index))
                grads = torch.autograd.grad(a, [splice.codes[i] for i in ups], retain_graph=True, allow_unused=True)
                for i, g in zip(ups, grads):
                    if g is not None:
                        contrib = (splice.codes[i].detach() * g * weight.unsqueeze(-1)).sum(dim=(0, 1))
                        attr[ti][i] += contrib.double().cpu()
            del splice
            advance(len(chunk))
    return attr, clean, n_tokens, activity


def choose_edges(attr: Sequence[Sequence["torch.Tensor | None"]], saes: Sequence["LayerSAE"], targets: Sequence[Target], *, top_k: int, threshold: float) -> list[dict[str, Any]]:
    """The ``top_k`` sources per target by ``|attribution|`` (strictly above ``threshold``, never 0)."""
    edges: list[dict[str, Any]] = []
    for ti, t in enumerate(targets):
        cands: list[tuple[float, int, int]] = []
        for i, vec in enumerate(attr[ti]):
            if vec is None:
                continue
            k = min(top_k, vec.numel())
            vals, idx = torch.topk(vec.abs(), k)
            for v, j in zip(vals.tolist(), idx.tolist()):
                if v > threshold and v > 0:
                    cands.append((v, i, j))
        cands.sort(key=lambda c: (-c[0], c[1], c[2]))
        for rank, (_, i, j) in enumerate(cands[:top_k], 1):
            a = float(attr[ti][i][j])
            edges.append({
                "source": feature_name(saes[i].layer, j), "target": t.name,
                "source_layer": saes[i].layer, "source_feature": j, "target_layer": t.layer, "target_feature": t.feature,
                "rank": rank, "attribution": a, "_sae": i, "_target": ti,
            })
    return edges


def choose_controls(attr: Sequence[Sequence["torch.Tensor | None"]], activity: Sequence["torch.Tensor"], saes: Sequence["LayerSAE"],
                    targets: Sequence[Target], edges: Sequence[dict[str, Any]], *, n: int, seed: int) -> list[dict[str, Any]]:
    """Per target, ``n`` control sources matched in activity to its edges: the edges in turn (by
    rank, again from the first when ``n`` is larger), each gets one drawn at random from the
    :data:`MATCH_POOL` unused active sources upstream of the target (not its edges) whose summed
    activation is nearest its own (on a log scale). Seeded per target (``[seed, target index]``).
    ``rank`` is the source's rank by ``|attribution|`` among the upstream features."""
    out: list[dict[str, Any]] = []
    for ti, t in enumerate(targets):
        mine = [e for e in edges if e["_target"] == ti]
        if n == 0 or not mine:
            continue
        rng = np.random.default_rng([seed, ti])
        ups = [i for i, vec in enumerate(attr[ti]) if vec is not None]
        score = torch.cat([attr[ti][i].abs() for i in ups])
        order = torch.argsort(score, descending=True, stable=True)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(1, len(order) + 1)
        offsets = np.cumsum([0] + [attr[ti][i].numel() for i in ups])
        start = {i: int(o) for i, o in zip(ups, offsets)}  # each upstream SAE's first place in the flat vectors
        act = torch.cat([activity[i] for i in ups]).numpy()
        log_act = np.log(np.where(act > 0, act, 1.0))
        index = [start[e["_sae"]] + e["source_feature"] for e in mine]  # an edge's source is active: its attribution is not 0
        taken = set(index)
        free = [k for k in np.flatnonzero(act > 0).tolist() if k not in taken]
        for slot in range(n):
            if not free:
                break
            e, edge_k = mine[slot % len(mine)], index[slot % len(mine)]
            near = sorted(free, key=lambda k: (abs(log_act[k] - log_act[edge_k]), k))[:MATCH_POOL]
            k = int(near[rng.integers(len(near))])
            free.remove(k)
            si = int(np.searchsorted(offsets, k, side="right") - 1)
            i, j = ups[si], k - int(offsets[si])
            out.append({"source": feature_name(saes[i].layer, j), "target": t.name, "source_layer": saes[i].layer, "source_feature": j,
                        "target_layer": t.layer, "target_feature": t.feature, "rank": int(rank[k]), "attribution": float(attr[ti][i][j]),
                        "source_activation": float(act[k]), "matched_to": e["source"], "_sae": i, "_target": ti})
    return out


def control_test(top_actual: Sequence[float], control_actual: Sequence[float]) -> dict[str, float]:
    """Mean ``|actual|`` of a target's top edges and of its controls, and the one-sided Mann-Whitney
    U p-value that the top edges' ``|actual|`` is larger (NaN without both)."""
    top = np.abs(np.asarray(top_actual, float))
    ctl = np.abs(np.asarray(control_actual, float))
    top, ctl = top[np.isfinite(top)], ctl[np.isfinite(ctl)]
    out = {"mean_abs_actual": float(top.mean()) if len(top) else math.nan,
           "control_mean_abs_actual": float(ctl.mean()) if len(ctl) else math.nan, "n_control": int(len(ctl)), "control_p": math.nan}
    if len(top) and len(ctl):
        out["control_p"] = float(stats.mannwhitneyu(top, ctl, alternative="greater").pvalue)
    return out


def replay(
    model: "HookedModel",
    saes: Sequence["LayerSAE"],
    targets: Sequence[Target],
    rows: Sequence[Sequence[int]],
    edges: Sequence[dict[str, Any]],
    *,
    factor: float,
    batch_size: int,
    advance: Callable[[int], None] = lambda n: None,
) -> tuple["np.ndarray", "np.ndarray"]:
    """Measured change of each edge's target when its source is scaled by ``factor``
    (every SAE error term fixed at its clean value): ``(actual[edge], A_clean[target])``."""
    top = max(t.sae_index for t in targets)
    spliced = [s.sae for s in saes[: top + 1]]
    read_hooks = [str(saes[top].sae.cfg.hook)]
    special = special_ids(model.tokenizer)
    pad = pad_id_of(model.tokenizer)
    sources = sorted({(e["_sae"], e["source_feature"]) for e in edges})
    by_source: dict[tuple[int, int], list[int]] = {}
    for n, e in enumerate(edges):
        by_source.setdefault((e["_sae"], e["source_feature"]), []).append(n)
    actual = np.zeros(len(edges))
    clean_total = np.zeros(len(targets))

    def target_sums(splice: Splice, weight: "torch.Tensor") -> np.ndarray:
        return np.array([float((splice.codes[t.sae_index][..., t.feature] * weight).sum()) for t in targets])

    with torch.no_grad():
        for chunk in batches(rows, batch_size):
            ids, mask, pos = batch(chunk, pad, special)
            ids, mask, pos = ids.to(model.device), mask.to(model.device), pos.to(model.device)
            clean = Splice(spliced, pos)
            model.run_with_cache(ids, read_hooks, attention_mask=mask, edit_hooks=clean.hooks())
            weight = pos.to(clean.codes[0].dtype)
            base = target_sums(clean, weight)
            clean_total += base
            errors = [clean.captured_errors[i] for i in range(len(spliced))]
            for src in sources:
                patched = Splice(spliced, pos, errors=errors, patch=Patch(src[0], src[1], factor))
                model.run_with_cache(ids, read_hooks, attention_mask=mask, edit_hooks=patched.hooks())
                delta = target_sums(patched, weight) - base
                for n in by_source[src]:
                    actual[n] += delta[edges[n]["_target"]]
            advance(len(chunk))
    return actual, clean_total


def sign_agreement(predicted: Sequence[float], actual: Sequence[float]) -> np.ndarray:
    """Per edge: 1 when the predicted and actual change have the same sign, 0 when they differ,
    -1 when either is not a finite number (no replay)."""
    p, a = np.asarray(predicted, dtype=float), np.asarray(actual, dtype=float)
    return np.where(np.isfinite(p) & np.isfinite(a), (np.sign(p) == np.sign(a)).astype(np.int64), -1)


def correlation(predicted: Sequence[float], actual: Sequence[float]) -> dict[str, Any]:
    """Pearson and Spearman correlation of predicted vs actual changes, and the share of
    edges whose predicted and actual change have the same sign (NaN when undefined)."""
    p = np.asarray(predicted, dtype=float)
    a = np.asarray(actual, dtype=float)
    out: dict[str, Any] = {"n_edges": int(len(p)), "pearson": math.nan, "pearson_p": math.nan, "spearman": math.nan, "spearman_p": math.nan, "sign_agreement": math.nan}
    signs = sign_agreement(p, a)
    ok = signs >= 0
    p, a = p[ok], a[ok]
    if len(p):
        out["sign_agreement"] = float(signs[ok].mean())
    if len(p) >= 3 and np.ptp(p) > 0 and np.ptp(a) > 0:
        r = stats.pearsonr(p, a)
        s = stats.spearmanr(p, a)
        out.update(pearson=float(r.statistic), pearson_p=float(r.pvalue), spearman=float(s.statistic), spearman_p=float(s.pvalue))
    return out


def edge_table(edges: Sequence[dict[str, Any]], actual: Sequence[float], factor: float, columns: Sequence[str] = EDGE_COLUMNS) -> "pd.DataFrame":
    """The edges (or controls, :data:`CONTROL_COLUMNS`) as a table: predicted ``(factor - 1) x attribution``,
    the replay's actual change and whether their signs agree."""
    table = pd.DataFrame([{k: v for k, v in e.items() if not k.startswith("_")} for e in edges],
                         columns=[c for c in columns if c not in ("predicted", "actual", "sign_agrees")])
    table["predicted"] = [(factor - 1.0) * float(a) for a in table["attribution"]]
    table["actual"] = list(actual)
    table["sign_agrees"] = sign_agreement(table["predicted"], table["actual"])  # -1 where unknown, left out of the correlations too
    return table[list(columns)]


# -- the artifact --------------------------------------------------------------------------------------
def write_pathways(path: str | Path, edges: "pd.DataFrame", targets: "pd.DataFrame", *, attrs: dict[str, Any], provenance: dict[str, Any], overwrite: bool = False,
                   controls: "pd.DataFrame | None" = None) -> Path:
    with ArtifactWriter(path, KIND, provenance, overwrite=overwrite) as writer:
        fh = writer.file
        assert fh is not None
        for group, table in (("edges", edges), ("targets", targets), *((("controls", controls),) if controls is not None else ())):
            write_table(fh.create_group(group), table)
        for key, value in attrs.items():
            fh.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value, sort_keys=True)
    return Path(path)


def read_pathways(path: str | Path) -> tuple["pd.DataFrame", "pd.DataFrame", dict[str, Any]]:
    """``(edges, targets, attrs)`` of a ``pathways`` artifact (JSON attributes decoded)."""
    with open_artifact(path, kind=KIND) as art:
        edges = read_table(art.file["edges"])
        targets = read_table(art.file["targets"])
        attrs = {k: attr_value(v) for k, v in art.file.attrs.items() if k not in ("provenance",)}
    cols = [c for c in EDGE_COLUMNS if c in edges.columns]
    return edges[cols], targets, attrs


def read_controls(path: str | Path) -> "pd.DataFrame":
    """The control edges of a ``pathways`` artifact (empty for files written before there were any)."""
    with open_artifact(path, kind=KIND) as art:
        return read_table(art.file["controls"]) if "controls" in art.file else pd.DataFrame(columns=list(CONTROL_COLUMNS))


def export_json(path: str | Path, result: PathwaysResult, meta: dict[str, Any]) -> Path:
    """Edges, targets, correlation and settings as JSON (or the edges as CSV for ``.csv``)."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        write_atomic(p, result.edges.to_csv(index=False))
        return p

    data = {**meta, "correlation": result.correlation, "targets": result.targets.to_dict(orient="records"), "edges": result.edges.to_dict(orient="records"),
            "controls": result.controls.to_dict(orient="records")}
    write_atomic(p, json.dumps(finite(data), indent=2, allow_nan=False) + "\n")  # numpy values as Python, NaN and inf as null
    return p


# -- the API -----------------------------------------------------------------------------------------
def default_output() -> Path:
    return Path("pathways.h5")


def run_pathways(
    config: PathwaysConfig,
    sae_paths: Sequence[str | Path],
    target_names: Sequence[str],
    *,
    texts_file: str | Path | None = None,
    corpus: str | None = None,
    num_texts: int | None = None,
    output: str | Path | None = None,
    overwrite: bool = False,
    export: Sequence[str | Path] = (),
    model_name: str | None = None,
    backend: str = "transformers",
    device: str = "cpu",
    dtype: str = "float32",
    model: "HookedModel | None" = None,
    parents: Sequence[str | Path] = (),
    progress: bool = True,
    selected: Sequence[str] = (),
) -> PathwaysResult:
    """Attribute, choose edges, replay and write a ``pathways`` artifact (see the module docstring).

    Texts come from ``texts_file`` (one per line / jsonl / json) or the first
    ``num_texts`` windows of ``corpus``. Every input is checked before the
    model runs; nothing is written on an error. Names in ``selected`` (from a
    selection) at the lowest SAE layer are skipped and counted, not errors.
    """
    config.validate()
    if (texts_file is None) == (corpus is None):
        raise SaetoolError("give the texts once: --texts FILE or --corpus SPEC")
    saes = load_layer_saes([str(p) for p in sae_paths], device)
    if len(saes) < 2:
        raise SaetoolError("pathways needs SAEs at two or more layers", hint="pass --sae once per layer")
    targets, skipped = resolve_targets(target_names, saes, skippable=selected)
    texts = read_texts(texts_file, max_texts=num_texts) if texts_file is not None else None
    if isinstance(export, (str, Path)):
        export = [export]
    ins = [*sae_paths, texts_file, corpus]
    out = check_output_path(output or default_output(), overwrite=overwrite, inputs=ins)
    check_outputs([("--output", out), *(("--export", Path(e)) for e in export)], ins, overwrite=True)
    for e in export:
        check_output_path(e, overwrite=overwrite, inputs=ins, option="--export")
    name = check_model(saes, model_name if model is None else (model_name or model.model_id))
    if model is None:
        model = registry.load_model(name, backend=backend, device=device, dtype=dtype)
    check_saes_fit(model, saes)
    if texts is not None:
        rows = rows_from_texts(model.tokenizer, texts, config.context_size)
    else:
        rows = rows_from_corpus(model.tokenizer, str(corpus), num_texts or 32, config.context_size)
    check_rows(rows, model.tokenizer, source=str(texts_file) if texts is not None else f"corpus {corpus}")
    for s in saes:
        if str(s.sae.device) != str(model.device):
            s.sae.to(model.device)

    start = time.perf_counter()
    passes = 2 if config.replay else 1
    with token_progress("pathways", total=passes * len(rows), enabled=progress, unit="texts") as advance:
        attr, clean, n_tokens, activity = attribute(model, saes, targets, rows, config.batch_size, advance)
        edges = choose_edges(attr, saes, targets, top_k=config.top_k, threshold=config.threshold)
        if not edges:
            raise SaetoolError(
                "no upstream feature has a non-zero attribution to any target above the threshold",
                hint="check that the targets are active on these texts (targets/activation), or lower --threshold",
            )
        for e in edges:
            e["source_activation"] = float(activity[e["_sae"]][e["source_feature"]])
        controls = choose_controls(attr, activity, saes, targets, edges, n=config.n_control, seed=config.seed)
        if config.replay:
            actual, _ = replay(model, saes, targets, rows, [*edges, *controls], factor=config.factor, batch_size=config.batch_size, advance=advance)
        else:
            actual = np.full(len(edges), math.nan)
    seconds = time.perf_counter() - start
    table = edge_table(edges, actual[: len(edges)], config.factor)
    control_table = edge_table(controls, actual[len(edges):], config.factor, CONTROL_COLUMNS)
    per_target = [correlation(table.loc[table["target"] == t.name, "predicted"], table.loc[table["target"] == t.name, "actual"]) if config.replay else correlation([], []) for t in targets]
    checks = [control_test(table.loc[table["target"] == t.name, "actual"], control_table.loc[control_table["target"] == t.name, "actual"]) for t in targets]
    tgt = pd.DataFrame({
        "name": [t.name for t in targets], "layer": [t.layer for t in targets], "feature": [t.feature for t in targets],
        "activation": list(clean), "n_edges": [int((table["target"] == t.name).sum()) for t in targets],
        "pearson": [c["pearson"] for c in per_target], "sign_agreement": [c["sign_agreement"] for c in per_target],
        **{k: [c[k] for c in checks] for k in ("mean_abs_actual", "n_control", "control_mean_abs_actual", "control_p")},
    })
    tgt["control_p_adjusted"] = holm([c["control_p"] for c in checks])  # targets without a test (NaN) stay NaN, uncounted
    corr = correlation(table["predicted"], table["actual"]) if config.replay else correlation([], [])
    settings = {**config.to_dict(), "texts": str(Path(texts_file).resolve()) if texts_file else None, "corpus": corpus,
                "num_texts": len(rows), "model": model.model_id, "seconds": round(seconds, 2)}
    result = PathwaysResult(out, table, tgt, corr, len(rows), n_tokens, seconds, skipped=skipped, controls=control_table)
    sae_info = [{"layer": s.layer, "hook": s.sae.cfg.hook, "path": str(Path(s.path).resolve()), "d_sae": s.sae.cfg.d_sae} for s in saes]
    attrs = {"settings": settings, "correlation": corr, "saes": sae_info, "n_texts": len(rows), "n_tokens": n_tokens,
             "n_edges": len(table), "model": model.model_id, "skipped_targets": skipped}
    for t, n in zip(targets, tgt["n_edges"]):
        if n == 0:
            warn(f"target {t.name} has no upstream feature with a non-zero attribution (is it ever active on these texts?)")
    sae_parents = [s.path for s in saes if Path(s.path).is_file()]
    prov = build_provenance(model=model.model_id, backend=model.backend_name, hooks=[s.sae.cfg.hook for s in saes],
                            corpus=corpus, parents=[*sae_parents, *parents], pathways=settings)
    write_pathways(out, table, tgt, attrs=attrs, provenance=prov, overwrite=overwrite, controls=control_table)
    for e in export:
        result.exports.append(export_json(e, result, {"kind": KIND, "model": model.model_id, "settings": settings, "saes": sae_info,
                                                           "n_texts": len(rows), "n_tokens": n_tokens}))
    log(f"[dim]pathways: {len(rows)} texts, {n_tokens} tokens, {len(targets)} target(s), {len(table)} edge(s), {seconds:.1f}s[/dim]")
    return result

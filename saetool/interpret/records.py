"""The in-memory shape of interpretation results, shared by interpret, labelers and the browser.

:class:`FeatureRecord` is what ``saetool interpret`` knows about one feature;
the ``features`` artifact stores the same fields as arrays, and
:meth:`FeatureRecord.to_json` is the JSON the HTML browser and the markdown
report are made from. A labeler (:class:`Labeler`, registered through the
``register_feature_labelers`` hook) turns records into :class:`Label` objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence


@dataclass
class Example:
    """A context window around one token, with a feature's activation there."""

    activation: float
    token_ids: list[int]
    tokens: list[str]
    position: int
    seq_index: int = -1
    token_position: int = -1
    values: list[float] | None = None

    @property
    def text(self) -> str:
        """The window's text (tokens joined)."""
        return "".join(self.tokens)

    @property
    def token(self) -> str:
        """The marked token's text."""
        return self.tokens[self.position] if 0 <= self.position < len(self.tokens) else ""


@dataclass
class Label:
    """A short description of a feature, with how well it predicts held-out activity.

    ``score`` is the detection score in [0, 1] (balanced accuracy of telling
    held-out activating windows from non-activating ones using the label; 0.5
    is chance), or ``None`` when it could not be computed. ``details`` holds
    each scorer's result under its name (``detection``, ``fuzzing``: score,
    ``chance``, ``ci95``, counts).
    """

    text: str
    labeler: str
    score: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class FeatureRecord:
    """Everything ``interpret`` reports about one feature.

    ``density`` is the fraction of tokens where the feature is active (> 0),
    ``mean_activation`` the mean over those tokens. ``top_examples`` are the
    highest activations, descending; ``held_out`` random activating windows not
    among them and ``negatives`` random windows where the feature is 0 (both
    used to score labels). ``top_tokens`` counts the activating token itself,
    ``context_tokens`` the tokens around it; ``neighbours`` are the nearest
    features by decoder cosine similarity. ``interval_examples`` are random
    activating windows from equal intervals of ``(0, max]`` (``interval_edges``),
    weakest first; an example's ``values`` are the feature's activation at each
    of its tokens. ``logits_positive``/``logits_negative``: the tokens whose
    logits the decoder direction raises/lowers most through the model's final
    norm and unembedding, with the logit change per unit of activation.
    """

    index: int
    density: float
    max_activation: float
    mean_activation: float
    histogram_edges: list[float] = field(default_factory=list)
    histogram_counts: list[int] = field(default_factory=list)
    top_examples: list[Example] = field(default_factory=list)
    held_out: list[Example] = field(default_factory=list)
    negatives: list[Example] = field(default_factory=list)
    top_tokens: list[tuple[str, int]] = field(default_factory=list)
    context_tokens: list[tuple[str, int]] = field(default_factory=list)
    neighbours: list[tuple[int, float]] = field(default_factory=list)
    label: Label | None = None
    interval_examples: list[Example] = field(default_factory=list)
    interval_edges: list[float] = field(default_factory=list)
    logits_positive: list[tuple[str, float]] = field(default_factory=list)
    logits_negative: list[tuple[str, float]] = field(default_factory=list)

    @property
    def dead(self) -> bool:
        return self.density == 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["dead"] = self.dead
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FeatureRecord":
        data = {k: v for k, v in data.items() if k != "dead"}
        for key in ("top_examples", "held_out", "negatives", "interval_examples"):
            data[key] = [Example(**e) for e in data.get(key, [])]
        for key in ("top_tokens", "context_tokens", "neighbours", "logits_positive", "logits_negative"):
            data[key] = [tuple(pair) for pair in data.get(key, [])]
        if data.get("label"):
            data["label"] = Label(**data["label"])
        return cls(**data)


@dataclass
class LabelContext:
    """What a labeler may use besides the records: the model name the SAE reads,
    its tokenizer (or ``None``), labeler options from the command line
    (``--labeler-option KEY=VALUE``), the scorers to run on each label
    (``None``: detection and fuzzing), and how often each token (text) occurs
    among the ``n_tokens`` tokens interpret read (``None``: unknown)."""

    model: str | None = None
    tokenizer: Any = None
    options: dict[str, str] = field(default_factory=dict)
    scorers: list[str] | None = None
    token_counts: dict[str, int] | None = None
    n_tokens: int = 0


class Labeler:
    """Base class for feature labelers (``register_feature_labelers`` hook).

    ``label`` returns one :class:`Label` per record, in order, each with its
    detection score when the labeler can compute one. A labeler that cannot
    work (e.g. an unreachable endpoint) raises :class:`saetool.errors.SaetoolError`;
    ``interpret`` then falls back to the ``tokens`` labeler and says so.
    """

    name: str = ""
    description: str = ""
    #: Routes it under the deprecated ``register_labelers`` hook (position labelers: ``"positions"``).
    target: str = "features"

    def check_options(self, options: dict[str, str]) -> Any:
        """Check ``--labeler-option`` values before any work (one-line :class:`SaetoolError` on a bad one)."""
        return None

    def label(self, records: Sequence[FeatureRecord], ctx: LabelContext) -> list[Label]:
        raise NotImplementedError

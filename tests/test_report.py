"""The markdown report, the terminal feature report and the two-feature comparison."""

from __future__ import annotations

import html
from dataclasses import replace
import re

import pytest
from markdown_it import MarkdownIt

from saetool.interpret.records import Example, FeatureRecord, Label
from saetool.interpret.report import (
    compare_text,
    example_overlap,
    feature_report_text,
    md_escape,
    report_markdown,
    write_report,
)

XSS_SCRIPT = "<script>window.__pwned=1</script>"
XSS_IMG = '<img src=x onerror="window.__pwned=2">'


def ex(tokens: list[str], position: int, activation: float, *, seq: int = -1, at: int = -1, values: list[float] | None = None) -> Example:
    return Example(activation=activation, token_ids=list(range(100, 100 + len(tokens))), tokens=tokens, position=position, seq_index=seq, token_position=at, values=values)


def sample_records() -> list[FeatureRecord]:
    """Five features as ``interpret`` would make them: labelled, unlabelled, hostile text, dead."""
    cat = FeatureRecord(
        index=3,
        density=0.0123,
        max_activation=4.5123,
        mean_activation=1.25,
        histogram_edges=[0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5123],
        histogram_counts=[40, 22, 13, 8, 5, 3, 2, 1, 1],
        top_examples=[
            ex([" the", " fluffy", " cat", " sat", " on", " the", " mat"], 2, 4.5123, seq=4, at=17, values=[0.0, 0.3, 4.5123, 1.1, 0.0, 0.0, 0.2]),
            ex([" un", " chat", " au", " café", " 🙂", "\n", "Le"], 1, 3.9, seq=9, at=2, values=[0.0, 3.9, 0.4, 0.0, 0.0, 0.0, 0.0]),
            ex(["猫", "が", "好き", "です", " cat", "s"], 4, 3.25, seq=11, at=30, values=[2.0, 0.0, 0.0, 0.0, 3.25, 0.5]),
        ],
        held_out=[ex([" my", " cat", " is", " grey"], 1, 1.75, seq=20, at=5, values=[0.0, 1.75, 0.1, 0.0])],
        negatives=[ex([" the", " dog", " ran"], 1, 0.0, seq=21, at=3)],
        top_tokens=[(" cat", 12), (" chat", 3), ("猫", 2), ("s", 1)],
        context_tokens=[(" the", 20), (" fluffy", 4), (" 🙂", 1)],
        neighbours=[(7, 0.83), (9999, 0.41)],
        label=Label(text="the word cat and other pets", labeler="tokens", score=0.81),
    )
    german = FeatureRecord(
        index=7,
        density=0.004,
        max_activation=2.0,
        mean_activation=0.8,
        histogram_edges=[0.0, 1.0, 2.0],
        histogram_counts=[9, 3],
        top_examples=[ex([" die", " Straße", " und", " die", " Größe"], 1, 2.0, seq=4, at=15), ex([" der", " Kater"], 1, 1.5, seq=9, at=2)],
        top_tokens=[(" Straße", 4), (" cat", 2), (" Größe", 1)],
        context_tokens=[(" die", 5)],
        neighbours=[(3, 0.83)],
        label=Label(text="German nouns with ß or umlauts (Straße, Größe)", labeler="llm", score=0.66, details={"model": "smollm2-135m-instruct"}),
    )
    hostile = FeatureRecord(
        index=42,
        density=0.25,
        max_activation=7.0,
        mean_activation=3.5,
        histogram_edges=[0.0, 3.5, 7.0],
        histogram_counts=[5, 5],
        top_examples=[
            ex(["<script>", "window", ".__pwned=1", "</script>", " | a *b* _c_ [d](e) `f` &amp; $x$ ~~g~~ #h"], 0, 7.0, seq=1, at=0, values=[7.0, 0.1, 0.0, 0.2, 0.0]),
            ex(["<img", " src=x", ' onerror="window.__pwned=2">', "\x1b[31mred", "\u2028end"], 2, 6.0, seq=2, at=8),
        ],
        top_tokens=[("<script>", 3), ("</script>", 2), ("a|b", 1)],
        context_tokens=[("<img", 1)],
    )
    unlabelled = FeatureRecord(
        index=120,
        density=0.5,
        max_activation=0.9,
        mean_activation=0.3,
        histogram_edges=[0.0, 0.45, 0.9],
        histogram_counts=[70, 30],
        top_examples=[ex([" a", " b", " c"], 1, 0.9)],
        top_tokens=[(" b", 7)],
    )
    dead = FeatureRecord(index=99, density=0.0, max_activation=0.0, mean_activation=0.0, histogram_edges=[0.0, 1.0], histogram_counts=[0])
    return [cat, german, hostile, unlabelled, dead]


def render(markdown: str) -> str:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_report_summary_and_sections(tmp_path):
    records = sample_records()
    path = write_report(records, tmp_path / "out" / "report.md", title="SmolLM2 layer 3", meta={"model": "smollm2-135m", "hook": "blocks.3.hook_resid_post", "sae": None})
    md = path.read_text(encoding="utf-8")
    assert path == tmp_path / "out" / "report.md" and sorted(p.name for p in path.parent.iterdir()) == ["report.md"]
    assert md.startswith("# SmolLM2 layer 3\n")
    assert "- **model**: smollm2-135m\n- **hook**: blocks.3.hook\\_resid\\_post\n\n## Summary" in md  # None left out
    assert "5 features: 4 live, 1 dead; 2 labelled." in md
    assert "| [3](#feature-3) | the word cat and other pets | 0.81 | – | 1.23% | 4.512 | 1.25 |" in md
    assert "| 99 | *dead* | – | – | 0% | 0 | 0 |" in md
    assert "**Dead features** (never active): 99" in md
    # one section per live feature, in order, none for the dead one
    assert re.findall(r"^## Feature (\d+)$", md, flags=re.M) == ["3", "7", "42", "120"]
    cat = md.split("## Feature 3\n")[1].split("## Feature 7\n")[0]
    assert "**Label:** the word cat and other pets (tokens, detection score 0.81)" in cat
    assert "| Density (fraction of tokens active) | 1.23% |" in cat
    assert "| 1 | 4.512 |  the⟨ fluffy·0.3⟩⟦ cat⟧⟨ sat·1.1⟩ on the⟨ mat·0.2⟩ |" in cat
    assert "| 2 | 3.9 |  un⟦ chat⟧⟨ au·0.4⟩ café 🙂↵Le |" in cat
    assert "| 1.75 |  my⟦ cat⟧⟨ is·0.1⟩ grey |" in cat
    assert "**Top tokens:** ' cat' (12), ' chat' (3), '猫' (2), 's' (1)" in cat
    assert "**Nearest features** (decoder cosine): [7](#feature-7) (0.83), 9999 (0.41)" in cat  # no section, no link
    # counts 40 22 13 8 5 3 2 1 1 on eight levels: round(c / 40 * 7) -> 7 4 2 1 1 1 0 0 0
    assert "Activation histogram (0 to 4.512, 95 activations): `█▅▃▂▂▂▁▁▁`" in cat
    assert "**Label:** none" in md.split("## Feature 120\n")[1]


def test_report_escapes_corpus_text():
    records = sample_records()
    rendered = render(report_markdown(records, title="a <b>title</b> *x*"))
    # nothing from the corpus became markup: no script/img elements, no emphasis, links or code from it
    assert "<script" not in rendered and "<img" not in rendered
    assert "<h1>a &lt;b&gt;title&lt;/b&gt; *x*</h1>" in rendered
    section = rendered.split("<h2>Feature 42</h2>")[1].split("<h2>")[0]
    assert "<em>" not in section and "<del>" not in section and "<a " not in section.split("Top tokens")[0]
    rows = re.findall(r"<tr>\s*<td[^>]*>(\d+)</td>\s*<td[^>]*>([^<]*)</td>\s*<td[^>]*>(.*?)</td>\s*</tr>", section, flags=re.S)
    # each table row kept its three cells (the corpus '|' did not split one) and shows the text literally
    assert [r[0] for r in rows] == ["1", "2"]
    # other active tokens are shaded in text as ⟨token·value⟩
    assert text_of(rows[0][2]) == "⟦<script>⟧⟨window·0.1⟩.__pwned=1⟨</script>·0.2⟩ | a *b* _c_ [d](e) `f` &amp; $x$ ~~g~~ #h"
    assert text_of(rows[1][2]) == '<img src=x⟦ onerror="window.__pwned=2">⟧\\x1b[31mred\\u2028end'
    assert "'&lt;script&gt;' (3), '&lt;/script&gt;' (2), 'a|b' (1)" in section


@pytest.mark.parametrize("text", ["*a* _b_", "[x](javascript:alert(1))", "<b>&amp;</b>", "a | b", "`c`", "~~d~~", "\\*e\\*", "# f", "line\nbreak"])
def test_md_escape_renders_literally(text):
    out = render(f"x {md_escape(text)}")
    assert text_of(out).strip() == "x " + text.replace("\n", "↵")


def test_feature_report_text():
    cat, _, hostile, _, dead = sample_records()[:5]
    text = feature_report_text(cat, examples=2)
    assert text.startswith("=" * 80 + "\nFEATURE 3\n" + "=" * 80)
    for line in [
        "Label: the word cat and other pets (tokens, detection score 0.81)",
        "  Density: 1.23% of tokens",
        "  Max activation: 4.512",
        "  Mean activation (active tokens): 1.25",
        "  Dead: no",
        "Top 2 Activating Examples:",
        "[Example 1] Activation: 4.512",
        "  Activating text: ' cat'",
        "  Context:  the⟨ fluffy·0.3⟩⟦ cat⟧⟨ sat·1.1⟩ on the⟨ mat·0.2⟩",
        "  Position in sequence: 17 (sequence 4)",
        "1 Held-out Examples:",
        "Top tokens: ' cat' (12), ' chat' (3), '猫' (2), 's' (1)",
        "Nearest features (decoder cosine): 7 (0.830), 9999 (0.410)",
    ]:
        assert line in text.splitlines(), line
    assert "[Example 3]" not in text
    assert "[Example 3] Activation: 3.25" in feature_report_text(cat)  # all by default
    # histogram rows: 9 bins stay 9 rows, the longest bar is 40 blocks for the 40-count bin
    bars = [line for line in text.splitlines() if "█" in line]
    assert len(bars) == 9 and bars[0].count("█") == 40 and bars[0].endswith(" 40")
    hostile_text = feature_report_text(hostile)
    assert "\x1b" not in hostile_text and "\u2028" not in hostile_text
    assert "\\x1b[31mred" in hostile_text and "Label: none" in hostile_text
    dead_text = feature_report_text(dead)
    assert "FEATURE 99 (dead)" in dead_text and "  Dead: yes" in dead_text and "Activating" not in dead_text


def test_compare_text_counts():
    cat, german = sample_records()[:2]
    text = compare_text(cat, german, 0.8312)
    assert "COMPARE FEATURE 3 AND FEATURE 7" in text
    assert "Decoder cosine similarity: 0.8312" in text
    # top tokens: {' cat', ' chat', '猫', 's'} vs {' Straße', ' cat', ' Größe'}: 1 shared of 6
    assert "Shared top tokens: 1 of 4 / 3 (Jaccard 0.17)" in text
    assert re.search(r"^  ' cat'\s+12\s+2$", text, flags=re.M)
    # cat's windows: seq 4 tokens 15..21 (hit 17), seq 9 tokens 1..7 (hit 2), seq 11 tokens 26..31.
    # german's: seq 4 tokens 14..18 (hit 15), seq 9 tokens 1..2 (hit 2) -> same token once, overlap twice.
    assert "Top examples: 1 of 3 at the same token as one of feature 7's 2; 2 with overlapping windows" in text
    assert re.search(r"density\s+1.23%\s+0.4%", text)
    assert "Decoder cosine similarity: –" in compare_text(cat, german, None)


def test_example_overlap_without_positions():
    a = [ex([" x", " y"], 0, 1.0), ex([" p", " q"], 1, 1.0)]
    b = [ex([" x", " y"], 0, 2.0), ex([" p", " q"], 0, 1.0)]
    assert example_overlap(a, b) == (1, 1)
    assert example_overlap([], b) == (0, 0)


def test_write_report_replaces_atomically(tmp_path):
    path = tmp_path / "r.md"
    path.write_text("old")
    write_report(sample_records()[:1], path, title="t", meta=None)
    assert path.read_text(encoding="utf-8").startswith("# t\n")
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]


def test_dense_features_are_listed_in_the_report_and_the_terminal_summary(tmp_path, capsys):
    from saetool.cli.interpret_cmd import print_summary
    from saetool.interpret.report import dense_list
    from saetool.interpret.selection import density_summary

    summary = density_summary([0, 0, 1, 5, 40, 300, 900, 1500, 250], 2048, 0.1)  # 7, 6, 5, 8 above 10%
    assert dense_list(summary) == "7 (73.2%), 6 (43.9%), 5 (14.6%), 8 (12.2%)"
    assert dense_list(summary, 2) == "7 (73.2%), 6 (43.9%) and 2 more"
    md = write_report(sample_records(), tmp_path / "r.md", summary=summary).read_text(encoding="utf-8")
    assert "**Dense features** (active on more than 10% of tokens; not sampled for this report): 7 (73.2%), 6 (43.9%), 5 (14.6%), 8 (12.2%)" in md
    print_summary(sample_records(), 9, 2, 5, summary)
    err = capsys.readouterr().err
    assert "9 features over 2048 tokens: 7 live, 2 dead (never active), 4 dense" in err
    assert "dense features: 7 (73.2%), 6 (43.9%), 5 (14.6%), 8 (12.2%)" in err


def test_report_without_labels_has_no_empty_label_columns():
    """A samples folder or --labeler none: no Label/Detection/Fuzzing columns of dashes."""
    records = [replace(r, label=None) for r in sample_records()]
    md = report_markdown(records)
    assert "| Feature | Density | Max | Mean | Top tokens |\n|---:|---:|---:|---:|---|\n" in md
    assert "| [3](#feature-3) | 1.23% | 4.512 | 1.25 | ' cat' (12), ' chat' (3), '猫' (2) |" in md and "| 99 | 0% | 0 | 0 |  |" in md
    table = render(md).split("</table>")[0]  # the summary table
    assert len(re.findall(r"<th[ >]", table)) == 5 and "<td>0.81</td>" not in table and table.count("<tr>") == 6


def test_interval_shares_are_read_off_the_histogram():
    """Each interval's share of all activations: exact when the bins split the intervals evenly,
    marked ≈ otherwise (a bin counted in the interval holding its centre)."""
    from saetool.interpret.report import interval_name, interval_shares

    weak, strong = ex([" a"], 0, 0.7), ex([" b"], 0, 9.5)
    aligned = FeatureRecord(index=1, density=0.1, max_activation=10.0, mean_activation=1.0, histogram_edges=[float(i) for i in range(11)],
                            histogram_counts=[30, 20, 10, 10, 5, 5, 5, 5, 5, 5], interval_edges=[0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
    shares, exact = interval_shares(aligned)
    assert exact and shares == pytest.approx([0.5, 0.2, 0.1, 0.1, 0.1])
    assert interval_name(aligned, weak) == "0–20% of max, 50% of activations"
    assert interval_name(aligned, strong) == "80–100% of max, 10% of activations"
    coarse = replace(aligned, histogram_edges=[0.0, 2.5, 5.0, 7.5, 10.0], histogram_counts=[60, 20, 10, 10])  # centres 1.25, 3.75, 6.25, 8.75
    shares, exact = interval_shares(coarse)
    assert not exact and shares == pytest.approx([0.6, 0.2, 0.0, 0.1, 0.1])
    assert interval_name(coarse, weak) == "0–20% of max, ≈60% of activations"
    assert interval_shares(replace(aligned, interval_edges=[])) == ([], False) and interval_name(replace(aligned, interval_edges=[]), weak) == ""


def scored_records() -> list[FeatureRecord]:
    """Two labelled features scored as ``interpret`` scores them: one label catches 9 of 10
    held-out activations, the other none (a balanced accuracy of 0.50, chance)."""
    from saetool.interpret.scoring import Detection

    def label(text: str, tpr: float) -> Label:
        details = {name: Detection((tpr + 1.0) / 2, None, 10, 10, tpr, 1.0, name=name).details() for name in ("detection", "fuzzing")}
        return Label(text=text, labeler="tokens", score=details["detection"]["score"], details=details)

    cat, german = sample_records()[:2]
    return [replace(cat, label=label("cat", 0.9)), replace(german, label=label("Reserve, bank", 0.0))]


def test_labels_no_better_than_chance_are_marked():
    from saetool.interpret.report import at_chance, mean_scores_text, score_breakdown

    good, guess = scored_records()
    assert not at_chance(good.label) and at_chance(guess.label) and not at_chance(sample_records()[0].label)  # no interval: no verdict
    assert score_breakdown([good, guess], "detection") == {"n": 2, "above_chance": 1, "true_positive_rate": 0.45, "true_negative_rate": 1.0}
    assert mean_scores_text([good, guess])[0] == "mean detection score 0.72 (95% CI 0.00–1.00, chance 0.50) over 2 features; 1 above chance; true-positive rate 0.45, true-negative rate 1.00"
    md = report_markdown([good, guess])
    assert "| [3](#feature-3) | cat | 0.95 | 0.95 |" in md and "| [7](#feature-7) | Reserve, bank | 0.50 (n.s.) | 0.50 (n.s.) |" in md
    section = md.split("## Feature 7\n")[1]
    assert "**Label:** Reserve, bank (tokens, detection 0.50 \\[0.39, 0.61\\], chance 0.50, not significantly above it; fuzzing 0.50" in section
    assert "not significantly above" not in md.split("## Feature 3\n")[1].split("## Feature 7\n")[0]


def test_a_feature_of_the_window_start_is_noted():
    """Top examples mostly at position 1 (after BOS, where massive activations sit) get a note."""
    from saetool.interpret.report import window_start_note

    cat = sample_records()[0]  # token positions 17, 2, 30: no note
    assert window_start_note(cat) is None and "**Note:**" not in report_markdown([cat])
    start = replace(cat, top_examples=[replace(e, token_position=1) for e in cat.top_examples[:2]] + cat.top_examples[2:])
    assert window_start_note(start) == ("2 of its 3 top examples are at one of the first two positions of their window (BOS where there is one, then the first token), where massive-activation tokens sit: "
                                        "the feature may mark that position rather than the text")
    assert "**Note:** 2 of its 3 top examples are at one of the first two positions of their window (BOS where there is one, then the first token)" in report_markdown([start])
    assert window_start_note(replace(cat, top_examples=[replace(e, token_position=-1) for e in cat.top_examples])) is None  # not located

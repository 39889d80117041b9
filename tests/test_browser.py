"""The static HTML feature browser, opened from file:// in a real headless Chromium."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
from dataclasses import replace

import numpy as np
import pytest
from helpers import REPO
from test_report import sample_records, scored_records

from saetool.errors import SaetoolError
from saetool.interpret.browser import browser_data, embed_json, render_browser, write_browser
from saetool.interpret.records import Example, FeatureRecord, Label

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

CHROMIUM = os.environ.get("SAETOOL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
if sync_playwright is None:
    _MISSING = "Python playwright is not installed (pip install playwright)"
elif not os.path.exists(CHROMIUM):
    _MISSING = f"no Chromium at {CHROMIUM} (apt install chromium, or set SAETOOL_CHROMIUM)"
else:
    _MISSING = ""
needs_browser = pytest.mark.skipif(bool(_MISSING), reason=_MISSING)
HOSTILE_LABEL = '<img src=x onerror="window.__pwned=3"> & </script> tags'
META = {"model": "smollm2-135m", "hook": "blocks.3.hook_resid_post", "tokens": 2048, "note": "<b>not bold</b>", "sae": None}


def browser_records() -> list[FeatureRecord]:
    records = sample_records()
    records[2] = replace(records[2], label=Label(text=HOSTILE_LABEL, labeler="tokens", score=None))
    return records


def embedded(page_html: str) -> dict:
    block = re.search(r'<script type="application/json" id="saetool-data">(.*?)</script>', page_html, flags=re.S)
    return json.loads(block.group(1))


# -- the file itself (no browser) ---------------------------------------------------------------------
def test_embedded_json_cannot_end_the_script_block():
    data = {"t": "</script><script>alert(1)</script> <!-- a & b > c \u2028\u2029", "x": [float("nan"), float("inf"), 1 / 3], "n": np.float32(0.5), "a": np.arange(3)}
    text = embed_json(data)
    assert not re.search("[<>&\u2028\u2029]", text)
    assert json.loads(text) == {"t": data["t"], "x": [None, None, 0.333333], "n": 0.5, "a": [0, 1, 2]}


def test_page_is_self_contained_and_carries_the_records():
    records = browser_records()
    page = render_browser(records, title="layer 3 </script>", meta=META)
    # the only </script> are the two real closing tags; no external resource of any kind
    assert page.lower().count("</script") == 2
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page) and "<link" not in page and "@import" not in page
    assert "<title>layer 3 &lt;/script&gt;</title>" in page
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp
    data = embedded(page)
    assert data["meta"] == META and [f["index"] for f in data["features"]] == [3, 7, 42, 120, 99]
    hostile = data["features"][2]
    assert hostile["top_examples"][0]["tokens"] == records[2].top_examples[0].tokens
    assert hostile["label"]["text"] == HOSTILE_LABEL and data["features"][4]["dead"] is True
    assert "negatives" not in data["features"][0]
    # the page's records are FeatureRecord.to_json less negatives and token ids (floats to 6 digits), with the
    # report's notes (the hostile record's top examples: one of two at its window's start)
    from saetool.interpret.report import window_start_note

    for page_record, record in zip(data["features"], records):
        note = window_start_note(record)
        assert page_record.pop("notes") == ([note + "."] if note else []) and bool(note) == (record.index == 42)
        full = record.to_json()
        del full["negatives"]
        for key in ("top_examples", "held_out"):
            for e in full[key]:
                del e["token_ids"]
        assert page_record == json.loads(json.dumps(full)), record.index


def test_write_browser_is_atomic_and_checks_its_input(tmp_path):
    out = tmp_path / "sub" / "features.html"
    out.parent.mkdir()
    out.write_text("old")
    assert write_browser(sample_records(), out) == out
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert [p.name for p in out.parent.iterdir()] == ["features.html"]
    with pytest.raises(SaetoolError, match="is a directory"):
        write_browser(sample_records(), tmp_path)
    with pytest.raises(SaetoolError, match="feature 3 appears twice"):
        browser_data(sample_records() + sample_records()[:1], title="t", meta=None)
    assert [p.name for p in out.parent.iterdir()] == ["features.html"]


def test_templates_ship_with_the_package():
    """Non-editable installs need the page's HTML, CSS and JS as package data."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    data = config["tool"]["setuptools"].get("package-data", {}).get("saetool.interpret", [])
    assert "templates/*" in data, 'pyproject.toml needs [tool.setuptools.package-data] "saetool.interpret" = ["templates/*"]'


def test_browser_script_inserts_text_only():
    js = render_browser([], title="t").split("<script>")[1]
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function", js)


# -- in Chromium ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    from saetool.interpret.selection import density_summary

    summary = density_summary([0, 0, 1, 5, 40, 300, 900, 1500], 2048, 0.1)  # 2 dead, 3 dense
    path = write_browser(browser_records(), tmp_path_factory.mktemp("browser") / "features.html", title="SmolLM2 layer 3 </script>", meta=META, summary=summary)
    return path.as_uri()


@pytest.fixture
def page(browser, page_url):
    """A fresh page on the browser file; fails the test on any console error, page error or request
    for anything but the file itself."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("request", lambda r: problems.append(f"request: {r.url}") if r.url.split("#")[0] != page_url else None)
    pg.goto(page_url)
    pg.wait_for_selector("#list a")
    yield pg
    context.close()
    assert problems == []


def texts(pg, selector: str) -> list[str]:
    return pg.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")


def alpha(css_color: str) -> float:
    m = re.fullmatch(r"rgba?\(([^)]*)\)", css_color)
    parts = [float(x) for x in m.group(1).split(",")]
    return parts[3] if len(parts) == 4 else 1.0


def shown(pg, index: int) -> None:
    """Wait until the browser shows feature ``index``: the hash changes before the
    hashchange handler renders the feature, which sets the title last. ``expect`` polls
    from Playwright's own script; ``wait_for_function`` would poll by evaluating a string
    in the page, which the page's Content-Security-Policy forbids (no 'unsafe-eval')."""
    expect(pg).to_have_title(re.compile(rf"^Feature {index} "), timeout=30_000)  # wait_for_function's 30 s, not expect's 5


@pytest.mark.slow  # drives Chromium
@needs_browser
def test_search_and_feature_view(page, tmp_path):
    pg = page
    assert pg.text_content("#count") == "5 features"
    assert texts(pg, "#list .fid") == ["3", "7", "42", "120", "99"]
    assert texts(pg, "#list .flabel")[3:] == ["no label", "dead"]
    assert pg.text_content("#view h2") == "Overview"
    # by id: the exact id first
    pg.fill("#search", "42")
    assert texts(pg, "#list .fid") == ["42"] and pg.text_content("#count") == "1 of 5 features"
    pg.fill("#search", "#12")
    assert texts(pg, "#list .fid") == ["120"]
    # by label text: every word must appear, case-insensitively
    pg.fill("#search", "UMLAUTS")
    assert texts(pg, "#list .fid") == ["7"]
    pg.fill("#search", "pets cat")
    assert texts(pg, "#list .fid") == ["3"]
    pg.fill("#search", "no such label")
    assert texts(pg, "#list .fid") == [] and pg.text_content("#count") == "0 of 5 features"
    pg.fill("#search", "cat")
    pg.press("#search", "Enter")
    shown(pg, 3)
    assert pg.text_content("#view h2") == "Feature 3"
    assert pg.text_content("#view .label") == "the word cat and other pets"
    assert pg.text_content("#view .label-info") == "tokens labeler · detection score 0.81"
    assert texts(pg, ".stat .v") == ["1.23%", "4.512", "1.25", "live"]
    assert pg.get_attribute("#list a[aria-current=page]", "data-index") == "3"

    # histogram: one bar per bin, heights proportional to the counts (then to log10(1 + count))
    counts = sample_records()[0].histogram_counts
    heights = [float(h) for h in pg.eval_on_selector_all("svg.hist rect.bar", "els => els.map(e => e.getAttribute('height'))")]
    assert len(heights) == len(counts) and heights[0] > 0
    assert np.allclose(np.array(heights) / heights[0], np.array(counts) / counts[0])
    assert pg.eval_on_selector_all("svg.hist rect.bar title", "els => els[1].textContent") == "0.5 – 1: 22"
    pg.check(".toggle input")
    logs = [float(h) for h in pg.eval_on_selector_all("svg.hist rect.bar", "els => els.map(e => e.getAttribute('height'))")]
    assert np.allclose(np.array(logs) / logs[0], np.log10(1 + np.array(counts)) / math.log10(1 + counts[0]))

    # examples: the activating token marked, tokens shaded by their values
    sections = pg.eval_on_selector_all("#view h3", "els => els.map(e => e.textContent)")
    assert sections == ["Activation histogram", "Logit effects", "Top activating examples", "Examples by activation interval (weakest first)", "Held-out examples", "Top tokens", "Context tokens", "Nearest features (decoder cosine)"]
    top = pg.locator("ol.examples").nth(0)
    assert top.locator("li").count() == 3
    assert top.locator(".tok.hit").all_text_contents() == [" cat", " chat", " cat"]
    assert top.locator(".tokens").all_text_contents() == [" the fluffy cat sat on the mat", " un chat au café 🙂↵Le", "猫が好きです cats"]
    assert top.locator(".act").all_text_contents() == ["4.512", "3.9", "3.25"]
    shades = top.locator("li").nth(0).locator(".tok").evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)")
    values = sample_records()[0].top_examples[0].values
    # alpha = value / max activation * 0.8 (Chromium keeps alpha to 1/255); unshaded tokens are transparent
    assert np.allclose([alpha(c) for c in shades], [min(1, v / 4.5123) * 0.8 if v > 0 else 0.0 for v in values], atol=1 / 255)
    assert top.locator(".tok.hit").nth(0).get_attribute("title") == "' cat' = 4.512 (activating token)"
    held = pg.locator("ol.examples").nth(1)
    assert held.locator(".tok.hit").all_text_contents() == [" cat"] and held.locator(".act").all_text_contents() == ["1.75"]
    assert texts(pg, ".chip .tt")[:4] == ["' cat'", "' chat'", "'猫'", "'s'"]

    path = tmp_path / "feature-3.png"
    pg.screenshot(path=str(path))
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (1200, 900)
    assert len(png) > 20_000  # a page with text and a chart, not a blank one

    # neighbours are links; one outside the file is marked and says so when followed
    assert pg.get_attribute(".chip a.missing", "title") == "not in this file"
    pg.fill("#search", "")
    pg.click(".chip a:text('Feature 7')")
    shown(pg, 7)
    assert pg.text_content("#view h2") == "Feature 7"
    assert pg.get_attribute("#list a[aria-current=page]", "data-index") == "7"
    pg.go_back()
    shown(pg, 3)
    pg.click(".chip a.missing")
    pg.wait_for_selector("text=Feature 9999 is not in this file.")
    assert "Feature 9999 is not in this file." in pg.text_content("#view")


@pytest.mark.slow  # drives Chromium
@needs_browser
def test_corpus_text_shows_as_text(page):
    pg = page
    pg.evaluate("location.hash = '#feature-42'")
    pg.wait_for_selector("text=Feature 42")
    lines = pg.locator("ol.examples").nth(0).locator(".tokens").all_text_contents()
    assert lines[0] == "<script>window.__pwned=1</script> | a *b* _c_ [d](e) `f` &amp; $x$ ~~g~~ #h"
    assert lines[1] == '<img src=x onerror="window.__pwned=2">\\x1b[31mred\u2028end'
    assert pg.text_content("#view .label") == HOSTILE_LABEL
    pg.fill("#search", "</script> tags")
    assert texts(pg, "#list .flabel") == [HOSTILE_LABEL]
    assert pg.text_content("header h1") == "SmolLM2 layer 3 </script>"
    assert texts(pg, "#meta dt") == ["model", "hook", "tokens", "note"]  # None left out
    assert texts(pg, "#meta dd")[2:] == ["2048", "<b>not bold</b>"]
    assert pg.evaluate("document.querySelectorAll('body img, body b, #view script, #list script').length") == 0
    assert pg.evaluate("typeof window.__pwned") == "undefined"


@pytest.mark.slow  # drives Chromium
@needs_browser
def test_dead_unlabelled_and_overview(page):
    pg = page
    overview = dict(zip(texts(pg, ".summary th"), texts(pg, ".summary td")))
    assert overview == {"features reported": "5", "of them live": "4", "of them dead": "1", "of them labelled": "3"}
    # the density histogram of all the SAE's features: one bar per bin, dense bins marked
    bars = pg.eval_on_selector_all("svg.density rect.bar", "els => els.map(e => [e.getAttribute('class'), parseFloat(e.getAttribute('height'))])")
    # log10(1 / 2048) = -3.31: bins of 0.25 from -3.5 to 0
    assert len(bars) == 14 and sum(h > 0 for _, h in bars) == 6 and [c for c, _ in bars].count("bar dense") == 4
    assert "6 live, 2 dead, 3 dense (active on more than 10% of 2048 tokens)" in pg.text_content("#view")
    assert texts(pg, ".chip a")[:2] == ["Feature 7", "Feature 6"]  # the dense ones, densest first
    assert "Dead features0, 1" in pg.text_content("#view")
    pg.click("#list a[data-index='99']")
    shown(pg, 99)
    assert pg.text_content("#view h2") == "Feature 99dead"
    assert texts(pg, ".stat .v") == ["0%", "0", "0", "dead"]
    body = pg.text_content("#view")
    assert "No activations recorded." in body and "No examples." in body and "No held-out examples." in body
    assert pg.locator("svg.hist").count() == 0
    pg.click("#list a[data-index='120']")
    shown(pg, 120)
    assert pg.text_content("#view .label") == "No label."
    assert pg.locator(".tok.hit").all_text_contents() == [" b"]
    # "/" focuses the search box
    pg.click("#view h2")
    pg.keyboard.press("/")
    assert pg.evaluate("document.activeElement.id") == "search"


@pytest.mark.slow  # drives Chromium
@needs_browser
def test_activating_token_is_one_box_at_any_width(browser, tmp_path):
    """The marked token's leading space never ends a line apart from its word (an empty box
    at the line's end, the word boxed again on the next line): one box at every width."""
    words = (" the move which propelled it into the global top three of drinks firms and the changing world order" * 2).split(" ")[1:]
    tokens = [" " + w for w in words]
    hits = [i for i, t in enumerate(tokens) if t in (" global", " world", " order")]
    record = FeatureRecord(index=1, density=0.01, max_activation=5.0, mean_activation=1.0, histogram_edges=[0.0, 5.0], histogram_counts=[3],
                           top_examples=[Example(activation=5.0, token_ids=list(range(len(tokens))), tokens=tokens, position=i, values=[5.0 if j in hits else 0.0 for j in range(len(tokens))]) for i in hits])
    url = write_browser([record], tmp_path / "wrap.html", title="wrap").as_uri() + "#feature-1"
    context = browser.new_context(viewport={"width": 700, "height": 900})
    pg = context.new_page()
    pg.goto(url)
    pg.wait_for_selector(".tok.hit")
    boxes = []
    for width in range(520, 1000, 6):  # every position of the line end over the window's tokens
        pg.set_viewport_size({"width": width, "height": 900})
        boxes.append(pg.eval_on_selector_all(".tok.hit", "els => els.map(e => e.getClientRects().length)"))
    context.close()
    assert len(boxes[0]) == len(hits) and all(n == 1 for row in boxes for n in row)


@pytest.mark.slow  # drives Chromium
@needs_browser
def test_interval_examples_say_their_interval(browser, tmp_path):
    """Each interval example shows which interval of (0, max] it was drawn from, named as in the
    markdown report (weak activations are read knowing they are weak)."""
    from saetool.interpret.report import interval_name

    tokens = [" a", " b", " c"]
    examples = [Example(activation=v, token_ids=[1, 2, 3], tokens=tokens, position=1, values=[0.0, v, 0.0]) for v in (0.5, 1.2, 4.9, 10.0)]
    record = FeatureRecord(index=5, density=0.01, max_activation=10.0, mean_activation=2.0, histogram_edges=[float(i) for i in range(11)],
                           histogram_counts=[12, 4, 2, 1, 1, 0, 0, 0, 0, 0], top_examples=[examples[-1]], interval_examples=examples,
                           interval_edges=[0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
    want = ["0–20% of max, 80% of activations", "0–20% of max, 80% of activations", "40–60% of max, 5% of activations", "80–100% of max, 0% of activations"]
    assert [interval_name(record, e) for e in examples] == want
    url = write_browser([record], tmp_path / "iv.html", title="iv").as_uri() + "#feature-5"
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    pg.goto(url)
    pg.wait_for_selector(".act .iv")
    lists = pg.locator("ol.examples")
    got = lists.nth(1).locator(".act .iv").all_text_contents()
    top = lists.nth(0).locator(".act").all_text_contents()
    context.close()
    assert got == want and top == ["10"]  # the top examples carry no interval


@pytest.mark.slow  # drives Chromium
@needs_browser
def test_labels_no_better_than_chance_are_marked(browser, tmp_path):
    """A label whose score's interval reaches chance says so on its page and is muted in the
    list; the overview says how many labels beat chance and what the rates were."""
    url = write_browser(scored_records(), tmp_path / "chance.html", title="chance").as_uri()
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(url)
    pg.wait_for_selector("#list a")
    overview = texts(pg, ".mean-score")
    muted = texts(pg, "#list .flabel.muted")
    pg.click("#list a[data-index='7']")
    shown(pg, 7)
    guess = texts(pg, ".scores .score.at-chance")
    pg.click("#list a[data-index='3']")
    shown(pg, 3)
    good = texts(pg, ".scores .score")
    flagged = pg.locator(".scores .score.at-chance").count()
    context.close()
    assert errors == []
    assert overview[0] == "Mean detection score 0.72 (95% CI 0.00–1.00, chance 0.50) over 2 features; 1 above chance (95% interval above it); true-positive rate 0.45, true-negative rate 1.00"
    assert muted == ["Reserve, bank"]
    assert guess == ["detection 0.50 [0.39, 0.61] · chance 0.50 · on 10 activating + 10 other windows · not significantly above chance",
                     "fuzzing 0.50 [0.39, 0.61] · chance 0.50 · on 10 correctly marked + 10 wrongly marked windows · not significantly above chance"]
    assert good[0] == "detection 0.95 [0.74, 1.00] · chance 0.50 · on 10 activating + 10 other windows" and flagged == 0


@pytest.mark.slow  # drives Chromium
@needs_browser
def test_a_feature_of_the_window_start_is_noted_on_its_page(browser, tmp_path):
    cat = sample_records()[0]
    start = replace(cat, top_examples=[replace(e, token_position=1) for e in cat.top_examples])
    url = write_browser([start, replace(sample_records()[1], label=None)], tmp_path / "start.html", title="start").as_uri()
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    pg.goto(url + "#feature-3")
    shown(pg, 3)
    noted = texts(pg, "#view .note")
    pg.click("#list a[data-index='7']")
    shown(pg, 7)
    other = pg.locator("#view .note").count()
    context.close()
    assert noted == ["3 of its 3 top examples are at one of the first two positions of their window (BOS where there is one, then the first token), where massive-activation tokens sit: the feature may mark that position rather than the text."]
    assert other == 0

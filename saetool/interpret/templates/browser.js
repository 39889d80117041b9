// saetool feature browser. All corpus text goes into the page as text nodes
// (textContent, createTextNode, setAttribute), never as markup.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("saetool-data").textContent);
  var FEATURES = DATA.features;
  var BY_INDEX = new Map(FEATURES.map(function (f) { return [f.index, f]; }));
  var LIST_LIMIT = 500;
  var SVG = "http://www.w3.org/2000/svg";
  var state = { log: false, current: null };
  var $ = function (id) { return document.getElementById(id); };

  // -- small helpers ---------------------------------------------------------------------------
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    return e;
  }
  function num(x, digits) {
    if (x === null || x === undefined || !isFinite(x)) return "–";
    return Number(Number(x).toPrecision(digits || 4)).toString();
  }
  function pct(d) {
    if (d === null || d === undefined || !isFinite(d)) return "–";
    return d === 0 ? "0%" : num(d * 100, 3) + "%";
  }
  function shown(tok) {  // one line, control characters as visible \xNN escapes
    return tok.replace(/\r?\n/g, "↵").replace(/\t/g, "⇥").replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, function (c) {
      return "\\x" + ("0" + c.charCodeAt(0).toString(16)).slice(-2);
    });
  }
  function quoted(tok) { return "'" + shown(tok) + "'"; }
  function labelText(f) { return f.label ? f.label.text : ""; }
  function featureLink(i) { return "#feature-" + Number(i); }

  // -- header ----------------------------------------------------------------------------------
  function renderMeta() {
    var box = $("meta");
    Object.keys(DATA.meta || {}).forEach(function (k) {
      var v = DATA.meta[k];
      if (v === null || v === undefined) return;
      var row = el("div", k === "warning" ? "warning" : null);
      row.appendChild(el("dt", null, k));
      row.appendChild(el("dd", null, typeof v === "string" ? v : JSON.stringify(v)));
      box.appendChild(row);
    });
  }

  // -- list and search -------------------------------------------------------------------------
  function matches(query) {
    var q = query.trim().toLowerCase();
    if (!q) return FEATURES;
    var id = q.match(/^(?:#|feature[- ]?)?(\d+)$/);
    var terms = q.split(/\s+/);
    var out = [], taken = new Set();
    function take(f) { if (!taken.has(f)) { taken.add(f); out.push(f); } }
    if (id) {
      if (BY_INDEX.has(Number(id[1]))) take(BY_INDEX.get(Number(id[1])));
      FEATURES.forEach(function (f) { if (String(f.index).indexOf(id[1]) === 0) take(f); });
    }
    FEATURES.forEach(function (f) {
      var text = labelText(f).toLowerCase();
      if (text && terms.every(function (t) { return text.indexOf(t) >= 0; })) take(f);
    });
    return out;
  }

  function renderList() {
    var found = matches($("search").value);
    var list = $("list");
    list.textContent = "";
    found.slice(0, LIST_LIMIT).forEach(function (f) {
      var li = el("li");
      var a = el("a", f.dead ? "dead" : null);
      a.href = featureLink(f.index);
      a.dataset.index = f.index;
      if (f.index === state.current) a.setAttribute("aria-current", "page");
      a.appendChild(el("span", "fid", f.index));
      var guess = atChance(f.label);
      var item = el("span", "flabel" + (f.label && !guess ? "" : " muted"), f.label ? f.label.text : f.dead ? "dead" : "no label");
      if (guess) item.title = "detection not significantly above chance";
      a.appendChild(item);
      a.appendChild(el("span", "fdens", pct(f.density)));
      li.appendChild(a);
      list.appendChild(li);
    });
    if (found.length > LIST_LIMIT) list.appendChild(el("li", "more", (found.length - LIST_LIMIT) + " more: refine the search"));
    $("count").textContent = found.length === FEATURES.length
      ? FEATURES.length + " features"
      : found.length + " of " + FEATURES.length + " features";
    return found;
  }

  // -- feature view ----------------------------------------------------------------------------
  function section(parent, title) {
    parent.appendChild(el("h3", null, title));
    var box = el("div");
    parent.appendChild(box);
    return box;
  }

  function stat(parent, key, value) {
    var s = el("div", "stat");
    s.appendChild(el("div", "k", key));
    s.appendChild(el("div", "v", value));
    parent.appendChild(s);
  }

  function histogram(f) {
    var edges = f.histogram_edges || [], counts = f.histogram_counts || [];
    if (!counts.length || edges.length !== counts.length + 1 || !counts.some(function (c) { return c > 0; })) {
      return el("p", "muted", "No activations recorded.");
    }
    var W = 640, H = 180, L = 44, B = 22, T = 8, R = 8;
    var scale = function (c) { return state.log ? Math.log10(1 + c) : c; };
    var top = Math.max.apply(null, counts.map(scale));
    var bw = (W - L - R) / counts.length;
    var root = svg("svg", { "class": "hist", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "activation histogram" });
    counts.forEach(function (c, i) {
      var h = top > 0 ? (scale(c) / top) * (H - B - T) : 0;
      var bar = svg("rect", { "class": "bar", x: L + i * bw + 0.5, y: H - B - h, width: Math.max(bw - 1, 0.5), height: h });
      var tip = svg("title");
      tip.textContent = num(edges[i]) + " – " + num(edges[i + 1]) + ": " + c;
      bar.appendChild(tip);
      root.appendChild(bar);
    });
    root.appendChild(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B }));
    root.appendChild(svg("line", { x1: L, y1: T, x2: L, y2: H - B }));
    var labels = [
      [L, H - 6, "start", num(edges[0])],
      [W - R, H - 6, "end", num(edges[edges.length - 1])],
      [L - 4, T + 8, "end", state.log ? num(Math.max.apply(null, counts)) + " (log)" : num(top)],
      [L - 4, H - B, "end", "0"]
    ];
    labels.forEach(function (l) {
      var t = svg("text", { x: l[0], y: l[1], "text-anchor": l[2] });
      t.textContent = l[3];
      root.appendChild(t);
    });
    return root;
  }

  function example(ex, scale) {
    var li = el("li");
    var act = el("span", "act", num(ex.activation));
    if (ex.interval) act.appendChild(el("span", "iv", ex.interval));
    li.appendChild(act);
    var line = el("span", "tokens");
    ex.tokens.forEach(function (tok, i) {
      var span = el("span", "tok", shown(tok));
      if (!tok.trim()) span.classList.add("ws");
      var title = quoted(tok);
      if (ex.values && ex.values.length === ex.tokens.length && ex.values[i] !== null) {
        var v = ex.values[i];
        if (v > 0 && scale > 0) span.style.backgroundColor = "rgba(255, 140, 0, " + Math.min(1, v / scale) * 0.8 + ")";
        title += " = " + num(v);
      }
      if (i === ex.position) {
        span.classList.add("hit");
        span.dataset.hit = "1";
        title += " (activating token)";
      }
      span.setAttribute("title", title);
      line.appendChild(span);
    });
    li.appendChild(line);
    return li;
  }

  function examples(parent, list, f, empty) {
    if (!list || !list.length) { parent.appendChild(el("p", "muted", empty)); return; }
    var ol = el("ol", "examples");
    list.forEach(function (ex) {
      var scale = f.max_activation > 0 ? f.max_activation : Math.max.apply(null, (ex.values || [0]).concat([0]));
      ol.appendChild(example(ex, scale));
    });
    parent.appendChild(ol);
  }

  function logitTables(parent, f) {
    var pos = f.logits_positive || [], neg = f.logits_negative || [];
    if (!pos.length && !neg.length) { parent.appendChild(el("p", "muted", "Not computed (no model, or the SAE does not write into the residual stream).")); return; }
    parent.appendChild(el("p", "muted", "Decoder direction through the final norm's scale and the unembedding: logit change per unit of activation."));
    var box = el("div", "logits");
    [["Promoted", pos, "pos"], ["Suppressed", neg, "neg"]].forEach(function (side) {
      var col = el("table", "logit " + side[2]);
      var head = el("tr");
      head.appendChild(el("th", null, side[0]));
      head.appendChild(el("th", null, "logit"));
      col.appendChild(head);
      side[1].forEach(function (p) {
        var tr = el("tr");
        tr.appendChild(el("td", "tt", quoted(p[0])));
        tr.appendChild(el("td", "n", (p[1] > 0 ? "+" : "") + num(p[1], 3)));
        col.appendChild(tr);
      });
      box.appendChild(col);
    });
    parent.appendChild(box);
  }

  function densityHistogram(s) {
    var counts = s.log10_density_counts, edges = s.log10_density_edges;
    var W = 640, H = 160, L = 44, B = 22, T = 8, R = 8;
    var top = Math.max.apply(null, counts.concat([1]));
    var bw = (W - L - R) / counts.length;
    var root = svg("svg", { "class": "hist density", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "feature density histogram" });
    counts.forEach(function (c, i) {
      var h = (c / top) * (H - B - T);
      var dense = edges[i] >= Math.log10(s.dense_threshold) - 1e-9;
      var bar = svg("rect", { "class": dense ? "bar dense" : "bar", x: L + i * bw + 0.5, y: H - B - h, width: Math.max(bw - 1, 0.5), height: h });
      var tip = svg("title");
      tip.textContent = "log10 density " + num(edges[i], 3) + " to " + num(edges[i + 1], 3) + ": " + c + " features";
      bar.appendChild(tip);
      root.appendChild(bar);
    });
    root.appendChild(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B }));
    [[L, H - 6, "start", num(edges[0], 3)], [W - R, H - 6, "end", num(edges[edges.length - 1], 3) + " (log10 density)"], [L - 4, T + 8, "end", num(top)], [L - 4, H - B, "end", "0"]].forEach(function (l) {
      var t = svg("text", { x: l[0], y: l[1], "text-anchor": l[2] });
      t.textContent = l[3];
      root.appendChild(t);
    });
    return root;
  }

  function tokenChips(parent, pairs) {
    if (!pairs || !pairs.length) { parent.appendChild(el("p", "muted", "None.")); return; }
    var box = el("div", "chips");
    pairs.forEach(function (p) {
      var chip = el("span", "chip");
      chip.appendChild(el("span", "tt", quoted(p[0])));
      chip.appendChild(el("span", "n", p[1]));
      box.appendChild(chip);
    });
    parent.appendChild(box);
  }

  function atChance(label) {
    var d = label && label.details && label.details.detection;
    return !!(d && d.at_chance);
  }

  function renderFeature(f) {
    var view = $("view");
    view.textContent = "";
    var h = el("h2", null, "Feature " + f.index);
    if (f.dead) h.appendChild(el("span", "badge", "dead"));
    view.appendChild(h);
    if (f.label) {
      view.appendChild(el("div", "label", f.label.text));
      var info = [f.label.labeler + " labeler"];
      if (f.label.score !== null && f.label.score !== undefined) info.push("detection score " + num(f.label.score, 2));
      view.appendChild(el("div", "label-info", info.join(" · ")));
      var scored = el("div", "scores");
      ["detection", "fuzzing"].forEach(function (name) {
        var d = f.label.details && f.label.details[name];
        if (!d || d.score === null || d.score === undefined) return;
        var ci = d.ci95 ? " [" + d.ci95[0].toFixed(2) + ", " + d.ci95[1].toFixed(2) + "]" : "";
        var chance = d.chance === undefined ? 0.5 : d.chance;
        var guess = !!d.at_chance;
        scored.appendChild(el("span", guess ? "score at-chance" : "score", name + " " + Number(d.score).toFixed(2) + ci + " · chance " + Number(chance).toFixed(2) + (d.samples ? " · " + d.samples : "") + (guess ? " · not significantly above chance" : "")));
      });
      if (scored.childNodes.length) view.appendChild(scored);
    } else {
      view.appendChild(el("div", "label muted", "No label."));
    }
    (f.notes || []).forEach(function (text) { view.appendChild(el("div", "note", text)); });
    var stats = el("div", "stats");
    stat(stats, "density", pct(f.density));
    stat(stats, "max activation", num(f.max_activation));
    stat(stats, "mean activation", num(f.mean_activation));
    stat(stats, "status", f.dead ? "dead" : "live");
    view.appendChild(stats);
    if (f.dead) {
      view.appendChild(el("p", "muted", "This feature was never active on the tokens read."));
    }
    var hist = section(view, "Activation histogram");
    var toggle = el("label", "toggle");
    var box = el("input");
    box.type = "checkbox";
    box.checked = state.log;
    box.addEventListener("change", function () { state.log = box.checked; hist.replaceChild(histogram(f), hist.lastChild); });
    toggle.appendChild(box);
    toggle.appendChild(document.createTextNode(" log scale"));
    hist.appendChild(toggle);
    hist.appendChild(histogram(f));
    logitTables(section(view, "Logit effects"), f);
    examples(section(view, "Top activating examples"), f.top_examples, f, "No examples.");
    examples(section(view, "Examples by activation interval (weakest first)"), f.interval_examples, f, "No examples.");
    examples(section(view, "Held-out examples"), f.held_out, f, "No held-out examples.");
    tokenChips(section(view, "Top tokens"), f.top_tokens);
    tokenChips(section(view, "Context tokens"), f.context_tokens);
    var nb = section(view, "Nearest features (decoder cosine)");
    if (!f.neighbours || !f.neighbours.length) {
      nb.appendChild(el("p", "muted", "None."));
    } else {
      var chips = el("div", "chips");
      f.neighbours.forEach(function (p) {
        var chip = el("span", "chip");
        var a = el("a", BY_INDEX.has(p[0]) ? null : "missing", "Feature " + p[0]);
        a.href = featureLink(p[0]);
        if (!BY_INDEX.has(p[0])) a.title = "not in this file";
        chip.appendChild(a);
        chip.appendChild(el("span", "n", num(p[1], 3)));
        chips.appendChild(chip);
      });
      nb.appendChild(chips);
    }
  }

  function renderOverview() {
    var view = $("view");
    view.textContent = "";
    var dead = FEATURES.filter(function (f) { return f.dead; }).length;
    var labelled = FEATURES.filter(function (f) { return f.label; }).length;
    view.appendChild(el("h2", null, "Overview"));
    var table = el("table", "summary");
    [["features reported", FEATURES.length], ["of them live", FEATURES.length - dead], ["of them dead", dead], ["of them labelled", labelled]].forEach(function (r) {
      var tr = el("tr");
      tr.appendChild(el("th", null, r[0]));
      tr.appendChild(el("td", null, r[1]));
      table.appendChild(tr);
    });
    view.appendChild(table);
    Object.keys(DATA.scores || {}).forEach(function (name) {
      var sc = DATA.scores[name];
      var ci = sc.ci95 ? " (95% CI " + sc.ci95[0].toFixed(2) + "–" + sc.ci95[1].toFixed(2) + ", chance " + Number(sc.chance).toFixed(2) + ")" : "";
      var parts = sc.above_chance === undefined ? "" : "; " + sc.above_chance + " above chance (95% interval above it)" + (sc.true_positive_rate === null || sc.true_positive_rate === undefined ? "" : "; true-positive rate " + Number(sc.true_positive_rate).toFixed(2) + ", true-negative rate " + Number(sc.true_negative_rate).toFixed(2));
      view.appendChild(el("p", "mean-score", "Mean " + name + " score " + Number(sc.mean).toFixed(2) + ci + " over " + sc.n + " features" + parts));
    });
    var s = DATA.summary;
    if (s) {
      view.appendChild(el("h3", null, "Feature density (all " + s.d_sae + " features)"));
      view.appendChild(el("p", "muted", (s.d_sae - s.dead.length) + " live, " + s.dead.length + " dead, " + s.dense.length + " dense (active on more than " + pct(s.dense_threshold) + " of " + s.n_tokens + " tokens); log10 of the fraction of tokens each live feature is active on."));
      view.appendChild(densityHistogram(s));
      if (s.dense.length) {
        view.appendChild(el("h3", null, "Dense features"));
        var chips = el("div", "chips");
        s.dense.slice(0, 100).forEach(function (p) {
          var chip = el("span", "chip");
          var a = el("a", BY_INDEX.has(p[0]) ? null : "missing", "Feature " + p[0]);
          a.href = featureLink(p[0]);
          chip.appendChild(a);
          chip.appendChild(el("span", "n", pct(p[1])));
          chips.appendChild(chip);
        });
        view.appendChild(chips);
      }
    }
    if (s && s.dead.length) {
      view.appendChild(el("h3", null, "Dead features"));
      view.appendChild(el("p", "muted", s.dead.slice(0, 200).join(", ") + (s.dead.length > 200 ? " and " + (s.dead.length - 200) + " more" : "")));
    }
    view.appendChild(el("p", "muted", "Pick a feature from the list, or search by feature id or label."));
  }

  function route() {
    var m = location.hash.match(/^#feature-(\d+)$/);
    var f = m ? BY_INDEX.get(Number(m[1])) : null;
    state.current = f ? f.index : null;
    if (f) {
      renderFeature(f);
      document.title = "Feature " + f.index + " · " + DATA.title;
    } else {
      renderOverview();
      document.title = DATA.title;
      if (m) $("view").insertBefore(el("p", "muted", "Feature " + m[1] + " is not in this file."), $("view").firstChild);
    }
    $("view").scrollTop = 0;
    document.querySelectorAll("#list a").forEach(function (a) {
      if (Number(a.dataset.index) === state.current) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
  }

  // -- wiring ----------------------------------------------------------------------------------
  $("search").addEventListener("input", renderList);
  $("search").addEventListener("keydown", function (e) {
    if (e.key !== "Enter") return;
    var found = matches($("search").value);
    if (found.length) location.hash = featureLink(found[0].index);
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "/" && document.activeElement !== $("search")) { e.preventDefault(); $("search").focus(); }
  });
  window.addEventListener("hashchange", route);
  renderMeta();
  renderList();
  route();
})();

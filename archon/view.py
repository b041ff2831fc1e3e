"""``archon view RUN_DIR``: one self-contained HTML page to look at what a run did, problem by problem.

The page (no server, no network: its script and styles are inlined, the run's data embedded as JSON)
shows the run's summary, the pipeline DAG (from the run directory's ``pipeline.json``; from the trace's
node order when an older run has none), a table of the problems (answer, reference, correct, FLOPs,
cost by node; click a row) and, for the chosen problem, its trace: every node's event, the final
candidates with their scores and, for a search operator's event that recorded a tree (beam search,
DVTS, MCTS), the tree itself: each node a step with its score, kept (expanded further), pruned or
finished, the chosen path highlighted, zoomable with the mouse wheel and movable by dragging.

Example:
    >>> page = render({"problems": 0}, [], None)
    >>> page.startswith("<!doctype html>") and "<script src=" not in page
    True
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from archon.core.errors import ArchonError
from archon.rundir import read_records


class ViewError(ArchonError, ValueError):
    """A directory that is not a run directory, or a problem the run does not have."""


def load(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """A run directory's summary, records and pipeline (``None`` when it has no ``pipeline.json``)."""
    results = Path(run_dir) / "results.jsonl"
    if not results.is_file():
        raise ViewError(f"{results}: no such file; `archon run SPEC --out {run_dir}` writes a run directory")
    records = read_records(results)
    summary_path, pipeline_path = Path(run_dir) / "summary.json", Path(run_dir) / "pipeline.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {"problems": len(records)}
    pipeline = json.loads(pipeline_path.read_text()) if pipeline_path.is_file() else None
    return summary, records, pipeline


def write_view(run_dir: Path, out: Path | None = None, problem: str | None = None) -> Path:
    """Write the page of a run (only ``problem`` when given) to ``out`` (default ``RUN_DIR/view.html``)."""
    summary, records, pipeline = load(run_dir)
    if problem is not None:
        chosen = [r for r in records if r["id"] == problem]
        if not chosen:
            some = ", ".join(r["id"] for r in records[:3])
            raise ViewError(f"--problem {problem}: not a problem of {run_dir} (it has {len(records)}: {some} ...)")
        records = chosen
    target = out or Path(run_dir) / "view.html"
    target.write_text(render(summary, records, pipeline, title=str(run_dir)), encoding="utf-8")
    return target


def _json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element."""
    return json.dumps(data, default=str).replace("</", "<\\/").replace("<!--", "<\\!--")


def render(
    summary: dict[str, Any], records: list[dict[str, Any]], pipeline: dict[str, Any] | None, *, title: str = "run"
) -> str:
    """The page's HTML."""
    if pipeline is None:  # an older run: the nodes in the order the trace met them, one after another
        seen: list[dict[str, Any]] = []
        for r in records:
            for e in r.get("trace", []):
                if e.get("node") and all(n["id"] != e["node"] for n in seen):
                    seen.append({"id": e["node"], "op": e.get("op", ""), "inputs": [seen[-1]["id"]] if seen else []})
        pipeline = {"nodes": seen, "output": seen[-1]["id"] if seen else None, "derived": True}
    data = {"summary": summary, "records": records, "pipeline": pipeline}
    return (
        _PAGE.replace("__TITLE__", html.escape(f"archon view: {title}"))
        .replace("__STYLE__", _STYLE)
        .replace("__DATA__", _json(data))
        .replace("__SCRIPT__", _SCRIPT)
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>__STYLE__</style></head>
<body data-ready="0">
<script>window.addEventListener("error", function (e) { document.body.dataset.error = String(e.message); });</script>
<header><h1>__TITLE__</h1><div id="summary"></div></header>
<section><h2>Pipeline</h2><div id="dag"></div></section>
<section><h2>Problems</h2><div id="table"></div></section>
<section id="detail"><h2>Problem <span id="pid"></span></h2><div id="trace"></div></section>
<script type="application/json" id="run-data">__DATA__</script>
<script>__SCRIPT__</script>
</body></html>
"""

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:18px;margin:0 0 .3em} h2{font-size:15px;margin:1.2em 0 .4em}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ddd;padding:3px 6px;text-align:left}
tr.row{cursor:pointer} tr.row:hover{background:#f3f6ff} tr.sel{background:#dde6ff}
.ok{color:#1a7f37;font-weight:600} .bad{color:#cf222e;font-weight:600}
.event{border-left:3px solid #8aa4e8;padding:4px 10px;margin:8px 0;background:#fafbff}
.event pre,.cand pre{white-space:pre-wrap;margin:2px 0;font-size:12px}
.kv{color:#555;font-size:12px} .cand{border:1px solid #e3e3e3;margin:4px 0;padding:4px 8px}
.treebox{border:1px solid #ccc;height:420px;overflow:hidden;cursor:grab;background:#fff;margin:6px 0}
.legend span{margin-right:12px;font-size:12px}
svg text{font:11px system-ui,sans-serif}
"""

_SCRIPT = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("run-data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const sv = (tag, attrs, text) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const fmt = (x) => (typeof x === "number" ? (Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3)
    ? x.toExponential(2) : String(Math.round(x * 1000) / 1000)) : x === null || x === undefined ? "" : String(x));

  // summary
  const s = data.summary || {};
  const per = s.per_problem || {};
  document.getElementById("summary").textContent = [
    "problems " + fmt(s.problems), "accuracy " + fmt(s.accuracy), "coverage " + fmt(s.coverage),
    "errors " + fmt(s.errors), "FLOPs/problem " + fmt(per.flops)].join(" · ");

  // the DAG: layers by depth, edges as lines
  (function dag() {
    const nodes = (data.pipeline && data.pipeline.nodes) || [];
    const depth = {};
    const order = [];
    const byId = Object.fromEntries(nodes.map((n) => [n.id, n]));
    const d = (id) => {
      if (depth[id] !== undefined) return depth[id];
      const ins = (byId[id] && byId[id].inputs) || [];
      depth[id] = ins.length ? 1 + Math.max(...ins.map(d)) : 0;
      return depth[id];
    };
    nodes.forEach((n) => { d(n.id); order.push(n.id); });
    const layers = {};
    order.forEach((id) => { (layers[depth[id]] = layers[depth[id]] || []).push(id); });
    const W = 170, H = 56, pos = {};
    let maxRows = 1;
    Object.entries(layers).forEach(([k, ids]) => {
      maxRows = Math.max(maxRows, ids.length);
      ids.forEach((id, i) => { pos[id] = [20 + Number(k) * W, 20 + i * H]; });
    });
    const width = 40 + (Object.keys(layers).length) * W, height = 40 + maxRows * H;
    const svg = sv("svg", {width: width, height: height, id: "dag-svg"});
    nodes.forEach((n) => (n.inputs || []).forEach((i) => {
      if (!pos[i]) return;
      svg.appendChild(sv("line", {x1: pos[i][0] + 130, y1: pos[i][1] + 17, x2: pos[n.id][0], y2: pos[n.id][1] + 17,
        stroke: "#888", "marker-end": "url(#arrow)"}));
    }));
    const defs = sv("defs");
    const marker = sv("marker", {id: "arrow", markerWidth: 8, markerHeight: 8, refX: 7, refY: 3, orient: "auto"});
    marker.appendChild(sv("path", {d: "M0,0 L7,3 L0,6 z", fill: "#888"}));
    defs.appendChild(marker); svg.appendChild(defs);
    nodes.forEach((n) => {
      const [x, y] = pos[n.id];
      const out = data.pipeline.output === n.id;
      svg.appendChild(sv("rect", {x: x, y: y, width: 130, height: 34, rx: 6, fill: out ? "#e6f0ff" : "#f6f6f6",
        stroke: out ? "#3b6fd8" : "#999", class: "dag-node"}));
      svg.appendChild(sv("text", {x: x + 8, y: y + 14}, n.id));
      svg.appendChild(sv("text", {x: x + 8, y: y + 28, fill: "#666"}, n.op));
    });
    document.getElementById("dag").appendChild(svg);
    if (data.pipeline && data.pipeline.derived)
      document.getElementById("dag").appendChild(el("div", {class: "kv"}, "(no pipeline.json: nodes in trace order)"));
  })();

  // the problems table
  const records = data.records || [];
  const nodeIds = ((data.pipeline && data.pipeline.nodes) || []).map((n) => n.id);
  const table = el("table", {id: "problems"});
  const head = el("tr");
  ["id", "answer", "reference", "correct", "FLOPs", ...nodeIds.map((n) => n + " FLOPs"), "error"]
    .forEach((h) => head.appendChild(el("th", {}, h)));
  table.appendChild(head);
  records.forEach((r, i) => {
    const tr = el("tr", {class: "row", "data-index": i, "data-id": r.id});
    const corr = r.correct === null || r.correct === undefined ? "" : r.correct ? "✓" : "✗";
    const cells = [r.id, fmt(r.answer), fmt(r.reference), corr, fmt(r.cost && r.cost.flops),
      ...nodeIds.map((n) => fmt(r.cost_by_node && r.cost_by_node[n] && r.cost_by_node[n].flops)), r.error || ""];
    cells.forEach((c, j) => tr.appendChild(el("td", j === 3 && c ? {class: c === "✓" ? "ok" : "bad"} : {}, c)));
    tr.addEventListener("click", () => show(i));
    table.appendChild(tr);
  });
  document.getElementById("table").appendChild(table);

  // one problem's trace
  function show(i) {
    document.querySelectorAll("tr.row").forEach((tr) => tr.classList.toggle("sel", Number(tr.dataset.index) === i));
    const r = records[i];
    document.getElementById("pid").textContent = r.id;
    const box = document.getElementById("trace");
    box.replaceChildren();
    (r.trace || []).forEach((e, k) => {
      const div = el("div", {class: "event", "data-node": e.node || ""});
      div.appendChild(el("b", {}, (e.node || "?") + " · " + (e.op || "")));
      const rest = Object.entries(e).filter(([key]) => !["node", "op", "tree"].includes(key));
      if (rest.length) div.appendChild(el("pre", {class: "kv"}, rest.map(([key, v]) => key + ": " +
        (typeof v === "object" ? JSON.stringify(v).slice(0, 600) : fmt(v))).join("\n")));
      if (Array.isArray(e.tree) && e.tree.length) div.appendChild(tree(e.tree, r, k));
      box.appendChild(div);
    });
    const cands = el("div", {class: "event"});
    cands.appendChild(el("b", {}, "final candidates (" + (r.candidates || []).length + ")"));
    (r.candidates || []).forEach((c, j) => {
      const d = el("div", {class: "cand"});
      const scores = Object.entries(c.scores || {}).map(([k, v]) => k + " " + fmt(v)).join(", ");
      const tests = c.passed !== undefined ? " · tests " + (c.passed ? "passed" : "failed") : "";
      const line = "#" + (j + 1) + " answer " + fmt(c.answer) + (scores ? " · " + scores : "") + tests;
      d.appendChild(el("div", {class: "kv"}, line));
      d.appendChild(el("pre", {}, c.text));
      cands.appendChild(d);
    });
    box.appendChild(cands);
  }

  // a search tree: depth across, leaves down; kept / pruned / finished; the chosen path in bold
  function tree(nodes, record, k) {
    const kids = {}, roots = [];
    nodes.forEach((n) => { if (n.parent === null || n.parent === undefined) roots.push(n.id);
      else (kids[n.parent] = kids[n.parent] || []).push(n.id); });
    const byId = Object.fromEntries(nodes.map((n) => [n.id, n]));
    const text = (id) => { let t = "", n = byId[id]; while (n) { t = n.step + t; n = byId[n.parent]; } return t; };
    const top = (record.candidates && record.candidates[0] && record.candidates[0].text) || "";
    const finished = nodes.filter((n) => n.finished);
    let chosen = finished.find((n) => text(n.id).trim() === top.trim());
    if (!chosen && finished.length) chosen = finished.reduce((a, b) => ((b.score ?? -1) > (a.score ?? -1) ? b : a));
    const path = new Set();
    for (let n = chosen; n; n = byId[n.parent]) path.add(n.id);
    const X = 150, Y = 22, pos = {};
    let row = 0;
    const place = (id, depth) => {
      const c = kids[id] || [];
      if (!c.length) { pos[id] = [depth * X, row++ * Y]; return pos[id][1]; }
      const ys = c.map((x) => place(x, depth + 1));
      pos[id] = [depth * X, (Math.min(...ys) + Math.max(...ys)) / 2];
      return pos[id][1];
    };
    roots.forEach((r) => place(r, 1));
    const width = 40 + X * (1 + Math.max(1, ...Object.values(pos).map((p) => p[0] / X)));
    const height = 40 + Y * Math.max(row, 1);
    const wrap = el("div");
    const legend = el("div", {class: "legend"});
    [["#3b6fd8", "kept (expanded)"], ["#bbb", "pruned"], ["#1a7f37", "finished"], ["#d97706", "chosen path"]]
      .forEach(([c, t]) => { const sp = el("span", {}, "● " + t); sp.style.color = c; legend.appendChild(sp); });
    wrap.appendChild(legend);
    const box = el("div", {class: "treebox"});
    const svg = sv("svg", {width: "100%", height: "100%", viewBox: "0 0 " + width + " " + height,
      class: "search-tree", "data-event": k, "data-nodes": nodes.length});
    const g = sv("g", {transform: "translate(20,20)"});
    g.appendChild(sv("circle", {cx: 0, cy: height / 2 - 20, r: 6, fill: "#444"}));
    nodes.forEach((n) => {
      const [x, y] = pos[n.id];
      const [px, py] = n.parent === null || n.parent === undefined ? [0, height / 2 - 20] : pos[n.parent];
      g.appendChild(sv("line", {x1: px, y1: py, x2: x, y2: y, stroke: path.has(n.id) ? "#d97706" : "#ccc",
        "stroke-width": path.has(n.id) ? 3 : 1}));
    });
    nodes.forEach((n) => {
      const [x, y] = pos[n.id];
      const color = n.finished ? "#1a7f37" : n.kept ? "#3b6fd8" : "#bbb";
      const c = sv("circle", {cx: x, cy: y, r: path.has(n.id) ? 6 : 4, fill: color, class: "tnode",
        stroke: path.has(n.id) ? "#d97706" : "none", "stroke-width": 2});
      c.appendChild(sv("title", {}, n.step.trim() + "\nscore " + fmt(n.score) +
        (n.finished ? " · finished" : n.kept ? " · kept" : " · pruned")));
      g.appendChild(c);
      g.appendChild(sv("text", {x: x + 7, y: y + 4, fill: "#333"}, n.step.trim().slice(0, 18) +
        (n.score === null || n.score === undefined ? "" : " " + fmt(n.score))));
    });
    svg.appendChild(g);
    box.appendChild(svg);
    wrap.appendChild(box);
    // zoom (wheel) and pan (drag) by moving the viewBox
    let vb = [0, 0, width, height], drag = null;
    const apply = () => svg.setAttribute("viewBox", vb.join(" "));
    box.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const f = ev.deltaY > 0 ? 1.15 : 1 / 1.15;
      const r = box.getBoundingClientRect();
      const mx = vb[0] + (ev.clientX - r.left) / r.width * vb[2], my = vb[1] + (ev.clientY - r.top) / r.height * vb[3];
      vb = [mx - (mx - vb[0]) * f, my - (my - vb[1]) * f, vb[2] * f, vb[3] * f];
      apply();
    }, {passive: false});
    box.addEventListener("mousedown", (ev) => { drag = [ev.clientX, ev.clientY, vb[0], vb[1]]; });
    window.addEventListener("mouseup", () => { drag = null; });
    box.addEventListener("mousemove", (ev) => {
      if (!drag) return;
      const r = box.getBoundingClientRect();
      vb[0] = drag[2] - (ev.clientX - drag[0]) / r.width * vb[2];
      vb[1] = drag[3] - (ev.clientY - drag[1]) / r.height * vb[3];
      apply();
    });
    return wrap;
  }

  const wanted = new URLSearchParams(location.search).get("problem");
  const start = Math.max(0, records.findIndex((r) => r.id === wanted));
  if (records.length) show(start);
  else document.getElementById("detail").style.display = "none";
  document.body.dataset.ready = "1";
})();
"""

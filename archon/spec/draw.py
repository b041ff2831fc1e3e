"""Drawing a pipeline DAG: Mermaid text, or an SVG laid out by topological layers (no extra dependency)."""

from __future__ import annotations

from html import escape
from pathlib import Path

import networkx as nx

from archon.spec.models import Spec, Tunable


def _label(graph: nx.DiGraph, n: str) -> str:
    op = graph.nodes[n]["node"].op
    return f"{n}: {'tuned op' if isinstance(op, Tunable) else op}"


def to_mermaid(graph: nx.DiGraph) -> str:
    """The DAG as a Mermaid flowchart (``problem`` feeds the nodes without inputs).

    Example:
        >>> from archon.spec import parse_spec, build_graph
        >>> spec = parse_spec({"engines": {"p": {"model": "tiny-l"}},
        ...                    "pipeline": [{"id": "a", "op": "sample", "params": {"engine": "p"}}]})
        >>> print(to_mermaid(build_graph(spec)))
        flowchart TD
          problem([problem])
          a["a: sample"]
          problem --> a
    """
    lines = ["flowchart TD", "  problem([problem])"]
    lines += [f'  {n}["{_label(graph, n)}"]' for n in graph]
    lines += [f"  problem --> {n}" for n in graph if graph.in_degree(n) == 0]
    lines += [f"  {u} --> {v}" for u, v in graph.edges]
    return "\n".join(lines)


def to_svg(graph: nx.DiGraph) -> str:
    """The DAG as an SVG: one row per topological generation, edges as lines."""
    layers = [["problem"], *[sorted(g) for g in nx.topological_generations(graph)]]
    box_w, box_h, gap_x, gap_y = 180, 36, 30, 50
    width = max(len(layer) for layer in layers) * (box_w + gap_x) + gap_x
    height = len(layers) * (box_h + gap_y) + gap_y
    pos: dict[str, tuple[float, float]] = {}
    for row, layer in enumerate(layers):
        offset = (width - len(layer) * (box_w + gap_x) + gap_x) / 2
        for col, n in enumerate(layer):
            pos[n] = (offset + col * (box_w + gap_x), gap_y + row * (box_h + gap_y))
    edges = [("problem", n) for n in graph if graph.in_degree(n) == 0] + list(graph.edges)
    svg = 'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif"'
    out = [f'<svg {svg} width="{width:.0f}" height="{height:.0f}">']
    for u, v in edges:
        (x1, y1), (x2, y2) = pos[u], pos[v]
        out.append(
            f'<line x1="{x1 + box_w / 2:.0f}" y1="{y1 + box_h:.0f}" x2="{x2 + box_w / 2:.0f}" y2="{y2:.0f}" '
            'stroke="#555" stroke-width="1.5"/>'
        )
    for n, (x, y) in pos.items():
        text = "problem" if n == "problem" else _label(graph, n)
        out.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="8" fill="#eef" stroke="#335"/>')
        anchor = 'text-anchor="middle" font-size="13"'
        out.append(f'<text x="{x + box_w / 2:.0f}" y="{y + 23:.0f}" {anchor}>{escape(text)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def draw(spec: Spec, graph: nx.DiGraph, path: str | Path) -> Path:
    """Write the DAG to ``path``: ``.mmd``/``.md`` (Mermaid), ``.svg``, or ``.png`` (needs matplotlib)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".mmd", ".md", ".mermaid"):
        p.write_text(to_mermaid(graph) + "\n")
    elif suffix == ".svg":
        p.write_text(to_svg(graph) + "\n")
    elif suffix == ".png":
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ValueError(f"{p}: PNG needs matplotlib (pip install matplotlib); .svg and .mmd need nothing") from exc
        generations = enumerate(nx.topological_generations(graph))
        layout = {n: (i, -j) for j, gen in generations for i, n in enumerate(sorted(gen))}
        fig, ax = plt.subplots(figsize=(8, 2 + len(layout) * 0.6))
        nx.draw_networkx(graph, pos=layout, ax=ax, labels={n: _label(graph, n) for n in graph}, node_color="#ccd")
        ax.axis("off")
        fig.savefig(p, dpi=120, bbox_inches="tight")
        plt.close(fig)
    else:
        raise ValueError(f"{p}: draw to .svg, .mmd (Mermaid) or .png")
    return p

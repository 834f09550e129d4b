"""The benchmark page: the tables, then per model, task, shots and mode a gallery of items showing
the demonstrations (thumbnail and answer), the query image and question, the prediction and the
gold answer, so a person can see why a cheat test failed. One self-contained HTML file
(thumbnails inlined), readable without a server."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from textbook.benchmark.results import markdown

THUMB = 96


def _thumb(path: str) -> str:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB, THUMB))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80)
    except OSError:
        return '<span class="missing">image missing</span>'
    return f'<img src="data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}" alt="">'


def _table(md: str) -> str:
    """The markdown tables results.py writes, as HTML."""
    rows = [r for r in md.splitlines() if r.startswith("|") and not r.startswith("|---")]
    out = ["<table>"]
    for n, row in enumerate(rows):
        tag = "th" if n == 0 else "td"
        cells = [c.strip().replace("**", "") for c in row.strip("|").split("|")]
        out.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
    return "\n".join(out + ["</table>"])


def _gallery(path: Path, limit: int) -> str:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()][:limit]
    items = []
    for r in rows:
        demos = "".join(f'<figure>{_thumb(img)}<figcaption>{html.escape(str(ans))}</figcaption></figure>'
                        for img, ans in zip(r.get("demo_images", []), r.get("demo_answers", [])))
        verdict = "ok" if r["score"] >= 0.5 else "wrong"
        items.append(f'<div class="item {verdict}"><div class="demos">{demos}</div><figure class="query">'
                     f'{_thumb(r["image"])}<figcaption>{html.escape(r.get("question", ""))}</figcaption></figure>'
                     f'<p>prediction: <b>{html.escape(str(r["prediction"]))}</b> · gold: '
                     f'<b>{html.escape(str(r["target"]))}</b> · score {r["score"]:.2f} ({html.escape(r["scorer"])})</p></div>')
    return "\n".join(items)


def write_page(out_dir: Path, tables: dict[str, Any], limit: int = 8) -> Path:
    parts = ["<!doctype html><meta charset=utf-8><title>Benchmarks</title><style>",
             "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:2px 6px}figure{display:inline-block;margin:4px;text-align:center;font-size:80%}"
             ".item{border:1px solid #ddd;margin:8px 0;padding:6px}.wrong{background:#fee}.query img{outline:3px solid #36c}"
             "</style><h1>Benchmarks</h1>",
             f"<h2>Table 2 shape (RICES)</h2>{_table(markdown(tables['table2'], 'Table 2'))}",
             f"<h2>Table 4 shape (cheat test)</h2>{_table(markdown(tables['table4'], 'Table 4'))}",
             "<p>Italic rows in the markdown tables are the paper's numbers, not reproduced here.</p>"]
    for path in sorted((out_dir / "samples").glob("*/samples_*.jsonl")):
        title = f"{path.parent.name}: {path.stem.removeprefix('samples_')}"
        parts.append(f"<details><summary>{html.escape(title)}</summary>{_gallery(path, limit)}</details>")
    page = out_dir / "index.html"
    page.write_text("\n".join(parts))
    return page

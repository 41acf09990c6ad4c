"""Rendering a command's result: one JSON document, a rich table on a terminal,
or a plain aligned text table when stdout is a pipe or file."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .context import optional

MAX_CELL = 60


@dataclass
class Table:
    columns: Sequence[str]
    rows: list[Sequence[Any]] = field(default_factory=list)
    title: str | None = None


def kv_table(mapping: dict[str, Any], title: str | None = None) -> Table:
    return Table(["field", "value"], [[k, v] for k, v in mapping.items()], title)


@dataclass
class Result:
    """``data`` is printed for --output json; ``view`` (tables or text) otherwise."""

    data: Any
    view: Table | list[Table] | str | None = None


def to_jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj


def point_dict(p: Any, score: float | None = None) -> dict[str, Any]:
    """A Point or Hit as JSON: id, [score], payload, [text], [vector]."""
    d: dict[str, Any] = {"id": p.id}
    if score is not None:
        d["score"] = float(score)
    d["payload"] = p.payload
    if p.text is not None:
        d["text"] = p.text
    if p.vector is not None:
        d["vector"] = p.vector.tolist()
    if getattr(p, "vectors", None):  # a Point's named vectors (docs/named_vectors.md)
        d["vectors"] = {name: v.tolist() for name, v in p.vectors.items()}
    return d


def points_table(points: list[dict[str, Any]], title: str | None = None) -> Table:
    cols = ["id"] + [c for c in ("score", "payload", "text", "vector", "vectors")
                     if any(c in p for p in points)]
    return Table(cols, [[p.get(c) for c in cols] for p in points], title)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.4g}" if abs(value) < 1e-3 and value else f"{value:.4f}"
    elif isinstance(value, list) and value and isinstance(value[0], float):
        head = ", ".join(f"{v:.3f}" for v in value[:3])
        text = f"[{head}{', …' if len(value) > 3 else ''}] ({len(value)})"
    elif isinstance(value, (dict, list, tuple)):
        text = json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False)
    else:
        text = str(value)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def plain_table(t: Table) -> str:
    rows = [[cell(v) for v in r] for r in t.rows]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(t.columns)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    lines = [t.title] if t.title else []
    lines += [fmt.format(*t.columns).rstrip(), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r).rstrip() for r in rows]
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)


def _rich_table(rich_table: Any, t: Table) -> Any:
    table = rich_table.Table(title=t.title, title_justify="left", header_style="bold")
    for c in t.columns:
        table.add_column(c, overflow="fold")
    for r in t.rows:
        table.add_row(*(cell(v) for v in r))
    return table


def render(result: Result, as_json: bool, stream: Any = None) -> None:
    stream = stream or sys.stdout
    if as_json:
        json.dump(to_jsonable(result.data), stream, indent=2, ensure_ascii=False)
        stream.write("\n")
        return
    views = result.view if isinstance(result.view, list) else [result.view]
    rich_table = optional("rich.table") if stream.isatty() else None
    console = optional("rich.console").Console(file=stream) if rich_table else None
    for i, v in enumerate(x for x in views if x is not None):
        if i:
            stream.write("\n")
        if isinstance(v, str):
            stream.write(v + "\n")
        elif console is not None:
            console.print(_rich_table(rich_table, v))
        else:
            stream.write(plain_table(v) + "\n")
    stream.flush()

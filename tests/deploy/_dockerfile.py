"""A small Dockerfile reader (enough for deploy/Dockerfile*): instructions per stage,
with line continuations joined and comments dropped."""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [arg for o, arg in self.instructions if o == op]

    def last_json(self, op: str) -> list[str]:
        values = self.all(op)
        assert values, f"no {op} in the stage"
        parsed = json.loads(values[-1])
        assert isinstance(parsed, list), f"{op} must use the exec (JSON) form"
        return parsed

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for arg in self.all("ENV"):
            for word in shlex.split(arg):
                key, _, value = word.partition("=")
                out[key] = value
        return out


def parse(path: Path) -> list[Stage]:
    lines: list[str] = []
    buf = ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        buf += raw
        if buf.strip():
            lines.append(buf.strip())
        buf = ""
    stages: list[Stage] = []
    for line in lines:
        op, _, arg = line.partition(" ")
        op, arg = op.upper(), arg.strip()
        if op == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", arg, re.IGNORECASE)
            assert m, line
            stages.append(Stage(base=m.group(1), name=m.group(2)))
        elif stages:
            stages[-1].instructions.append((op, arg))
    return stages

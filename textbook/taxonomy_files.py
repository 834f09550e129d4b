"""Subject files as YAML a person edits: read raw, merge proposals in, write back in the shipped layout.

The layout is the hand-written one (``textbook/taxonomy/physics.yaml``): a flow-style subject line,
block-style courses and sub-courses, one flow mapping per knowledge point, keys in the order id,
name, level, query. Re-rendering a shipped file gives it back byte for byte (a test), so a merge's
diff shows only what was added.

Merging never renames or drops: an existing entry keeps its id, name, level and query whatever a
proposal says; a proposed entry is the existing one when it gives that entry's id, its name
(case-insensitive) or a name whose slug is that id; an existing entry a proposal omits stays.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import yaml

from textbook.taxonomy import LEVELS, slugify

HEADER = (f"# Levels: {', '.join(f'{n} {name}' for n, name in LEVELS.items())}.\n"
          "# Ids are stable: keep them when a name changes (knowledge point ids name DAGs and stored records).\n")
_CHILDREN = {"course": "sub_courses", "sub-course": "knowledge_points"}
_KIND_BELOW = {"subject": "course", "course": "sub-course", "sub-course": "knowledge point"}
# Text safe unquoted (a flow mapping also forbids commas): letters first, no YAML indicators.
_PLAIN = re.compile(r"[A-Za-z0-9(][^:#{}\[\]\"&*!|>%@`]*\Z")


@dataclass
class MergeCounts:
    """What a merge added, per kind, and how many proposed entries were existing ones."""

    added: dict[str, int] = field(default_factory=lambda: {k: 0 for k in ("course", "sub-course", "knowledge point")})
    matched: int = 0


def entry_id(raw: dict[str, Any]) -> str:
    """The id the loader gives an entry: its ``id``, else a slug of its name."""
    return raw.get("id") or slugify(raw.get("name", ""))


def new_id(name: str, taken: set[str]) -> str:
    """A stable id for a new entry: the slug of its name (a checksum for names with no ASCII letters),
    suffixed -2, -3 … when a sibling already has it."""
    base = slugify(name) or f"x{zlib.crc32(name.encode()):08x}"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def _find(children: list[dict[str, Any]], proposed: dict[str, Any]) -> dict[str, Any] | None:
    wanted_name = proposed["name"].strip().casefold()
    for child in children:
        if proposed.get("id") and proposed["id"] == entry_id(child):
            return child
    for child in children:
        if str(child.get("name", "")).strip().casefold() == wanted_name or entry_id(child) == slugify(proposed["name"]):
            return child
    return None


def merge_subject(existing: dict[str, Any] | None, courses: list[dict[str, Any]],
                  new_subject: tuple[str, str] = ("", "")) -> tuple[dict[str, Any], MergeCounts]:
    """The subject document with proposed ``courses`` (validated: name, level, sub_courses...)
    merged into ``existing`` (a raw subject file, not modified), or a new subject
    ``new_subject`` = (id, name) when there is none."""
    counts = MergeCounts()
    if existing is None:
        doc: dict[str, Any] = {"subject": {"id": new_subject[0], "name": new_subject[1]}, "courses": []}
    else:
        doc = json.loads(json.dumps(existing))  # a deep copy of plain YAML data
    _merge_children(doc, "courses", courses, "course", doc["subject"].get("level"), counts)
    return doc, counts


def _merge_children(parent: dict[str, Any], key: str, proposals: list[dict[str, Any]], kind: str,
                    level: int | None, counts: MergeCounts) -> None:
    children = parent.setdefault(key, [])
    for proposed in proposals:
        found = _find(children, proposed)
        if found is None:
            found = {"id": new_id(proposed["name"], {entry_id(c) for c in children}), "name": proposed["name"].strip()}
            if proposed.get("level") is not None and proposed["level"] != level:
                found["level"] = proposed["level"]
            if kind == "knowledge point" and proposed.get("query"):
                found["query"] = proposed["query"].strip()
            children.append(found)
            counts.added[kind] += 1
        else:
            counts.matched += 1
        below = _CHILDREN.get(kind)
        if below:
            _merge_children(found, below, proposed.get(below, []), _KIND_BELOW[kind], found.get("level", level), counts)


def read_header(text: str) -> str:
    """The comment lines a file starts with (kept when the file is written again)."""
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


def _scalar(value: Any, quote: bool = False, flow: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, str):
        return json.dumps(value)
    plain = _PLAIN.match(value) and not (flow and "," in value) and value == value.strip()
    if not quote and plain and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _flow(raw: dict[str, Any], order: tuple[str, ...]) -> str:
    keys = [k for k in order if k in raw] + [k for k in raw if k not in order]
    return "{" + ", ".join(f"{k}: {_scalar(raw[k], quote=k == 'query', flow=True)}" for k in keys) + "}"


def _block(raw: dict[str, Any], indent: str, children: str) -> list[str]:
    keys = [k for k in ("id", "name", "level") if k in raw] + [k for k in raw if k not in ("id", "name", "level",
                                                                                          children)]
    lines = [f"{indent}{'- ' if i == 0 else '  '}{k}: {_scalar(raw[k])}" for i, k in enumerate(keys)]
    lines.append(f"{indent}  {children}:")
    return lines


def render(doc: dict[str, Any], header: str = HEADER) -> str:
    """A subject document as YAML in the hand-written files' layout."""
    lines = [header.rstrip("\n")] if header else []
    lines.append(f"subject: {_flow(doc['subject'], ('id', 'name', 'level'))}")
    lines.append("courses:")
    for course in doc["courses"]:
        lines += _block(course, "  ", "sub_courses")
        for sub in course.get("sub_courses", []):
            lines += _block(sub, "      ", "knowledge_points")
            for kp in sub.get("knowledge_points", []):
                lines.append(f"          - {_flow(kp, ('id', 'name', 'level', 'query'))}")
    return "\n".join(lines) + "\n"

"""`textbook taxonomy generate`: an LLM proposes subjects, courses, sub-courses and knowledge points.

The paper generated its taxonomy with GPT-4o: 6 subjects, 55 courses and 3,915 knowledge points
from primary to middle school. Here one request per subject asks for that subject's tree under a
JSON schema (in the prompt, since not every OpenAI-compatible server enforces one), the answer is
validated (one retry, told what was wrong), merged into the subject's file without renaming or
dropping anything (``textbook.taxonomy_files``), and every file written is checked with the
project's own loader before any of them is replaced.
"""

from __future__ import annotations

import difflib
import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from textbook.atomic import atomic_write
from textbook.taxonomy import (
    LEVELS,
    SHIPPED_DIR,
    Subject,
    TaxonomyError,
    load_taxonomy,
    slugify,
    taxonomy_files,
)
from textbook.taxonomy_files import (
    HEADER,
    MergeCounts,
    merge_subject,
    new_id,
    read_header,
    render,
)

PAPER_SUBJECTS = ("Mathematics", "Physics", "Chemistry", "Earth Science", "Engineering", "Computer Science")
PROMPT_VERSION = "1"
_NAME = {"type": "string", "minLength": 1}
_ID = {"type": "string", "description": "only to keep an existing entry: its id as given to you"}
_LEVEL = {"type": "integer", "minimum": 1, "maximum": 5}
SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["subject", "courses"], "additionalProperties": False,
    "properties": {
        "subject": _NAME,
        "courses": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "level", "sub_courses"], "additionalProperties": False,
            "properties": {"id": _ID, "name": _NAME, "level": _LEVEL, "sub_courses": {
                "type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["name", "knowledge_points"], "additionalProperties": False,
                    "properties": {"id": _ID, "name": _NAME, "level": _LEVEL, "knowledge_points": {
                        "type": "array", "minItems": 1, "items": {
                            "type": "object", "required": ["name", "query"], "additionalProperties": False,
                            "properties": {"id": _ID, "name": _NAME, "level": _LEVEL, "query": _NAME}}}}}}}}}},
}


class GenerationError(RuntimeError):
    """The LLM could not be asked, or its answer was unusable after a retry; the message says why."""


@dataclass(frozen=True)
class Scope:
    """What to ask for: one subject (a name; an existing subject's name or id extends it), the
    levels allowed, and how many courses and knowledge points to aim for."""

    subject: str
    levels: tuple[int, ...] = (1, 2)
    courses: int = 9
    points: int = 100


def parse_levels(text: str) -> tuple[int, ...]:
    """'1-2' or '1,2,3' -> levels; ValueError naming the allowed ones."""
    allowed = ", ".join(f"{n} {name}" for n, name in LEVELS.items())
    match = re.fullmatch(r"\s*(\d)\s*-\s*(\d)\s*", text)
    try:
        levels = tuple(range(int(match[1]), int(match[2]) + 1)) if match else tuple(
            int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"levels {text!r}: expected a range like 1-2 or a list like 1,2,3 of {allowed}") from None
    if not levels or any(level not in LEVELS for level in levels):
        raise ValueError(f"levels {text!r}: each must be one of {allowed}")
    return levels


def messages(scope: Scope, existing: dict[str, Any] | None) -> list[dict[str, str]]:
    """The chat asking for one subject's tree; an existing subject is shown so its ids are kept."""
    levels = ", ".join(f"{n} = {LEVELS[n]}" for n in scope.levels)
    system = ("You design the knowledge taxonomy of an instructional-video corpus, like the one of the paper "
              "'2.5 Years in Class: A Multimodal Textbook' (6 subjects, 55 courses, 3,915 knowledge points, "
              "primary to middle school). Each knowledge point is one searchable lesson topic, with a YouTube "
              "search query that finds lecture videos teaching it. Answer with one JSON object only, no prose, "
              "matching this JSON schema:\n" + json.dumps(SCHEMA))
    ask = (f"Subject: {scope.subject}. Levels allowed (1-5): {levels}. Aim for about {scope.courses} courses "
           f"and {scope.points} knowledge points in all, grouped into sub-courses.")
    if existing is not None:
        ask += ("\nThe subject already has this taxonomy (YAML). Keep what fits, giving each entry you keep its "
                "`id` unchanged; add what is missing; new entries need no id:\n" + render(existing, header=""))
    return [{"role": "system", "content": system}, {"role": "user", "content": ask}]


def parse_answer(text: str, levels: Sequence[int]) -> dict[str, Any]:
    """The answer's JSON object (a ```json fence around it is tolerated), checked against ``SCHEMA``
    and ``levels``; GenerationError naming the first thing at fault."""
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.DOTALL)
    body = fenced[1] if fenced else body
    try:
        answer = json.loads(body)
    except json.JSONDecodeError as exc:
        raise GenerationError(f"the answer is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
                              f"{text[:120]!r}") from None
    _check(answer, SCHEMA, "answer")
    for i, course in enumerate(answer["courses"]):
        for where, level in _levels(course, f"answer.courses[{i}]"):
            if level not in levels:
                raise GenerationError(f"{where}.level: {level} is outside the levels asked for "
                                      f"({', '.join(map(str, levels))})")
    return answer


def _levels(raw: dict[str, Any], where: str) -> list[tuple[str, int]]:
    out = [(where, raw["level"])] if "level" in raw else []
    for key in ("sub_courses", "knowledge_points"):
        for i, child in enumerate(raw.get(key, [])):
            out += _levels(child, f"{where}.{key}[{i}]")
    return out


def _check(value: Any, schema: dict[str, Any], where: str) -> None:
    """The subset of JSON Schema that ``SCHEMA`` uses, with messages naming the path at fault."""
    kind = schema["type"]
    types = {"object": dict, "array": list, "string": str, "integer": int}
    if not isinstance(value, types[kind]) or (kind == "integer" and isinstance(value, bool)):
        raise GenerationError(f"{where}: expected {kind}, got {json.dumps(value)[:80]}")
    if kind == "string" and not value.strip():
        raise GenerationError(f"{where}: empty text")
    if kind == "integer" and not schema["minimum"] <= value <= schema["maximum"]:
        raise GenerationError(f"{where}: {value} is not from {schema['minimum']} to {schema['maximum']}")
    if kind == "array":
        if len(value) < schema.get("minItems", 0):
            raise GenerationError(f"{where}: empty list")
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{where}[{i}]")
    if kind == "object":
        for key in schema["required"]:
            if key not in value:
                raise GenerationError(f"{where}: missing `{key}`")
        for key, item in value.items():
            if key not in schema["properties"]:
                raise GenerationError(f"{where}: unknown key `{key}` (allowed: {', '.join(schema['properties'])})")
            _check(item, schema["properties"][key], f"{where}.{key}")


def ask(llm: Any, scope: Scope, existing: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """The validated answer for ``scope``: an unusable one is sent back once with what was wrong."""
    conversation = messages(scope, existing)
    problem = ""
    for attempt in (1, 2):
        text = llm.chat([conversation])[0]
        try:
            return parse_answer(text, scope.levels)
        except GenerationError as exc:
            problem = str(exc)
        conversation = [*conversation, {"role": "assistant", "content": text},
                        {"role": "user", "content": f"That answer is unusable: {problem}. Answer again with the "
                                                    "JSON object only, matching the schema."}]
    raise GenerationError(f"{where} ({scope.subject}): no usable answer after a retry; the last: {problem}")


@dataclass
class FileChange:
    """One subject file a generation writes: its text before (empty for a new file) and after."""

    path: Path
    before: str
    after: str
    counts: MergeCounts

    def diff(self) -> str:
        return "".join(difflib.unified_diff(self.before.splitlines(True), self.after.splitlines(True),
                                            fromfile=f"a/{self.path.name}" if self.before else "/dev/null",
                                            tofile=f"b/{self.path.name}"))


def _existing_subject(subjects: Sequence[Subject], wanted: str) -> Subject | None:
    key = wanted.strip().casefold()
    return next((s for s in subjects if key in (s.id, s.name.casefold()) or s.id == slugify(wanted)), None)


def plan(llm: Any, scopes: Sequence[Scope], taxonomy_dir: Path, where: str = "taxonomy.llm") -> list[FileChange]:
    """Ask for each scope and merge the answers into the folder's subject files (nothing written);
    the result is checked with the taxonomy loader, so a plan that would not load raises."""
    current = load_taxonomy(taxonomy_dir).subjects if taxonomy_files(taxonomy_dir) else ()
    changes: list[FileChange] = []
    for scope in scopes:
        subject = _existing_subject(current, scope.subject)
        path = Path(subject.source) if subject else taxonomy_dir / f"{slugify(scope.subject)}.yaml"
        before = path.read_text(encoding="utf-8") if subject else ""
        existing = yaml.safe_load(before) if subject else None
        answer = ask(llm, scope, existing, where)
        doc, counts = merge_subject(existing, answer["courses"], (new_id(scope.subject, set()), scope.subject.strip()))
        after = render(doc, read_header(before) if subject else HEADER)
        changes.append(FileChange(path, before, after, counts))
    _check_loads(taxonomy_dir, changes)
    return changes


def _check_loads(taxonomy_dir: Path, changes: Sequence[FileChange]) -> None:
    """Load the folder as it would be after ``changes``, in a scratch copy."""
    with tempfile.TemporaryDirectory(prefix="textbook-taxonomy-") as tmp:
        for path in taxonomy_files(taxonomy_dir):
            (Path(tmp) / path.name).write_bytes(path.read_bytes())
        for change in changes:
            (Path(tmp) / change.path.name).write_text(change.after, encoding="utf-8")
        try:
            load_taxonomy(tmp)
        except TaxonomyError as exc:
            raise GenerationError(f"the merged taxonomy would not load: {exc}".replace(tmp, str(taxonomy_dir))) from None


def write(changes: Sequence[FileChange]) -> list[Path]:
    """Write each changed file atomically; returns those that changed."""
    written = []
    for change in changes:
        if change.after != change.before:
            atomic_write(change.path, lambda tmp, text=change.after: tmp.write_text(text, encoding="utf-8"))
            written.append(change.path)
    return written


def default_dir(configured: str) -> Path:
    """The folder generated files go to: the configured ``taxonomy_dir``, else the shipped one."""
    return Path(configured).expanduser() if configured else SHIPPED_DIR

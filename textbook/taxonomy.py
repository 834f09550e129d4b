"""The knowledge taxonomy that drives collection: subject / course / sub-course / knowledge point.

The paper gathers videos per knowledge point, each searched for by name, and spreads them over
educational levels from primary school to graduate study. One YAML file describes one subject, so
adding a subject is adding a file; every ``*.yaml`` (and ``*.yml``) in the folder is loaded, sorted
by file name. Schema::

    subject: {id: mathematics, name: Mathematics}
    courses:
      - id: calculus            # optional everywhere: defaults to a slug of the name
        name: Calculus
        level: 4                # inherited by what is below unless overridden there
        sub_courses:
          - name: Derivatives
            knowledge_points:
              - {name: The power rule, query: "power rule derivative lecture"}  # query defaults to name

``level`` may be set on the subject, a course, a sub-course or a knowledge point; each knowledge
point must end up with one. See ``LEVELS``. A knowledge point's id is
``<subject>.<course>.<sub_course>.<point>``: stable across edits of names, so keep it when renaming.
Every problem in the files is collected and reported at once, each naming its file and entry.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Hashable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

SHIPPED_DIR = Path(__file__).parent / "taxonomy"

LEVELS: dict[int, str] = {
    1: "primary school",
    2: "middle school",
    3: "high school",
    4: "undergraduate",
    5: "graduate",
}

DAG_ID_PREFIX = "textbook__"
_DAG_ID_MAX = 250  # Airflow's limit on dag_id length
_SEGMENT = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
_SEGMENT_RULE = "only lowercase letters, digits, '-' and '_', starting with a letter or digit"


class TaxonomyError(ValueError):
    """Taxonomy files are malformed; ``problems`` holds one line per problem, naming file and entry."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"invalid taxonomy: {self.problems[0]}"
        else:
            message = f"invalid taxonomy ({len(self.problems)} problems):\n  " + "\n  ".join(self.problems)
        super().__init__(message)


class TaxonomyLookupError(KeyError):
    """A subject, course or knowledge point asked for is not in the taxonomy."""

    def __str__(self) -> str:  # KeyError would show the message quoted as a repr
        return str(self.args[0])


@dataclass(frozen=True)
class KnowledgePoint:
    """One searchable topic: the unit the pipeline collects videos for (one DAG each)."""

    id: str
    name: str
    query: str
    level: int
    subject: str
    subject_name: str
    course: str
    course_name: str
    sub_course: str
    sub_course_name: str

    @property
    def path(self) -> str:
        return " / ".join((self.subject_name, self.course_name, self.sub_course_name, self.name))

    @property
    def level_name(self) -> str:
        return LEVELS[self.level]

    @property
    def dag_id(self) -> str:
        """Airflow-safe id (letters, digits, '_', '-'); uniqueness is checked when loading."""
        return DAG_ID_PREFIX + self.id.replace(".", "__")


@dataclass(frozen=True)
class SubCourse:
    id: str
    name: str
    knowledge_points: tuple[KnowledgePoint, ...]


@dataclass(frozen=True)
class Course:
    id: str
    name: str
    sub_courses: tuple[SubCourse, ...]

    @property
    def knowledge_points(self) -> tuple[KnowledgePoint, ...]:
        return tuple(kp for sub in self.sub_courses for kp in sub.knowledge_points)


@dataclass(frozen=True)
class Subject:
    id: str
    name: str
    courses: tuple[Course, ...]
    source: str  # the file it was read from, for messages

    @property
    def knowledge_points(self) -> tuple[KnowledgePoint, ...]:
        return tuple(kp for course in self.courses for kp in course.knowledge_points)


@dataclass(frozen=True)
class Taxonomy:
    subjects: tuple[Subject, ...]

    @cached_property
    def knowledge_points(self) -> tuple[KnowledgePoint, ...]:
        """All knowledge points, in file order then document order."""
        return tuple(kp for subject in self.subjects for kp in subject.knowledge_points)

    @cached_property
    def _by_id(self) -> dict[str, KnowledgePoint]:
        return {kp.id: kp for kp in self.knowledge_points}

    def get(self, kp_id: str) -> KnowledgePoint:
        try:
            return self._by_id[kp_id]
        except KeyError:
            raise TaxonomyLookupError(
                f"unknown knowledge point {kp_id!r}{_suggest(kp_id, list(self._by_id))}"
            ) from None

    def select(
        self, subject: str | None = None, course: str | None = None, kp: str | None = None
    ) -> list[KnowledgePoint]:
        """Knowledge points matching every filter given (all of them when none is).

        ``subject`` is a subject id; ``course`` a course id or ``<course>.<sub_course>``; ``kp`` a
        full knowledge point id or its trailing part (``power-rule``, ``derivatives.power-rule``).
        A filter that matches nothing raises ``TaxonomyLookupError`` naming it.
        """
        points = list(self.knowledge_points)
        scope = ""
        if subject is not None:
            points = [p for p in points if p.subject == subject]
            if not points:
                known = ", ".join(s.id for s in self.subjects)
                raise TaxonomyLookupError(f"unknown subject {subject!r} (subjects: {known})")
            scope = f" in subject {subject!r}"
        if course is not None:
            within = points
            points = [p for p in within if course in (p.course, f"{p.course}.{p.sub_course}")]
            if not points:
                courses = list(dict.fromkeys(p.course for p in within))
                subs = list(dict.fromkeys(f"{p.course}.{p.sub_course}" for p in within))
                hint = _suggest(course, courses + subs) or f" (courses: {', '.join(courses)})"
                raise TaxonomyLookupError(f"unknown course {course!r}{scope}{hint}")
            scope += f" in course {course!r}"
        if kp is not None:
            within = points
            points = [p for p in within if p.id == kp or p.id.endswith("." + kp)]
            if not points:
                raise TaxonomyLookupError(
                    f"unknown knowledge point {kp!r}{scope}{_suggest(kp, [p.id for p in within])}"
                )
        return points


def load_taxonomy(directory: str | Path | None = None) -> Taxonomy:
    """Load and validate every taxonomy file in ``directory`` (default: the shipped taxonomy)."""
    folder = Path(directory).expanduser() if directory else SHIPPED_DIR
    if not folder.is_dir():
        raise TaxonomyError([f"{folder}: taxonomy folder does not exist"])
    files = sorted(
        (p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()),
        key=lambda p: p.name,
    )
    if not files:
        raise TaxonomyError([f"{folder}: no *.yaml taxonomy files in this folder"])
    problems: list[str] = []
    subjects: list[Subject] = []
    for file in files:
        subject = _FileReader(file, problems).read()
        if subject is not None:
            subjects.append(subject)
    _check_across_files(subjects, problems)
    if problems:
        raise TaxonomyError(problems)
    return Taxonomy(tuple(subjects))


def taxonomy_files(directory: str | Path | None = None) -> list[Path]:
    """The subject files of a taxonomy folder, sorted by name (no file is read)."""
    folder = Path(directory).expanduser() if directory else SHIPPED_DIR
    return sorted((p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()),
                  key=lambda p: p.name) if folder.is_dir() else []


def load_subject_file(file: str | Path) -> Subject:
    """One subject file on its own, validated (checks across files are ``load_taxonomy``'s): each
    subject's DAG file reads only its own, so a broken file breaks only its own DAGs."""
    problems: list[str] = []
    subject = _FileReader(Path(file), problems).read()
    if problems or subject is None:
        raise TaxonomyError(problems or [f"{file}: no subject"])
    return subject


def slugify(name: str) -> str:
    """A default id from a name: 'Newton’s laws of motion' -> 'newtons-laws-of-motion'."""
    text = re.sub(r"['’]", "", name)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _suggest(wanted: str, candidates: list[str]) -> str:
    """'; did you mean ...?' built from ids ending with ``wanted`` or close to it, or ''."""
    tail = [c for c in candidates if c.endswith("." + wanted)]
    close = difflib.get_close_matches(wanted, candidates, n=5, cutoff=0.6)
    matches = list(dict.fromkeys(tail + close))[:5]
    return f"; did you mean {', '.join(matches)}?" if matches else ""


def _check_across_files(subjects: list[Subject], problems: list[str]) -> None:
    first_source: dict[str, str] = {}
    for subject in subjects:
        if subject.id in first_source:
            problems.append(
                f"{subject.source}: subject {subject.id!r}: duplicate subject id, "
                f"already defined in {first_source[subject.id]}"
            )
        else:
            first_source[subject.id] = subject.source
    dag_owner: dict[str, tuple[str, str]] = {}
    for subject in subjects:
        for kp in subject.knowledge_points:
            if kp.dag_id in dag_owner and dag_owner[kp.dag_id][0] != kp.id:
                other_id, other_source = dag_owner[kp.dag_id]
                problems.append(
                    f"{subject.source}: knowledge point {kp.id!r}: its DAG id {kp.dag_id!r} is the same as "
                    f"that of {other_id!r} in {other_source}; change one of the ids"
                )
            dag_owner.setdefault(kp.dag_id, (kp.id, subject.source))


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml: 4,000 points parse in DAG files
    """SafeLoader that refuses duplicate keys, which plain YAML silently resolves to the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_ALLOWED_KEYS = {
    "file": ("subject", "courses"),
    "subject": ("id", "name", "level"),
    "course": ("id", "name", "level", "sub_courses"),
    "sub-course": ("id", "name", "level", "knowledge_points"),
    "knowledge point": ("id", "name", "level", "query"),
}


@dataclass
class _Entry:
    id: str
    name: str
    level: int | None
    where: str
    raw: dict[str, Any]


class _FileReader:
    """Reads one subject file, appending problems instead of stopping at the first."""

    def __init__(self, file: Path, problems: list[str]) -> None:
        self.file = file
        self.problems = problems

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{self.file}: {where}: {message}" if where else f"{self.file}: {message}")

    def read(self) -> Subject | None:
        document = self._parse()
        if document is None:
            return None
        if not isinstance(document, dict):
            self.problem("", f"expected a mapping with `subject` and `courses`, got {_kind(document)}")
            return None
        self._check_keys(document, "file", "")
        if "subject" not in document:
            self.problem("", "missing `subject` (a mapping with `id` and `name`)")
            return None
        subject = self._entry(document["subject"], "subject", _subject_label(document["subject"]), None)
        if subject is None:
            return None
        courses = []
        for index, raw in self._children(document, "courses", "course", f"subject {subject.id!r}"):
            course = self._entry(raw, "course", _label("course", index, raw), subject.level)
            if course is not None:
                courses.append(course)
        self._check_unique(courses, "course", f"subject {subject.id!r}")
        built = tuple(c for c in (self._course(subject, course) for course in courses) if c is not None)
        return Subject(subject.id, subject.name, built, str(self.file))

    def _course(self, subject: _Entry, course: _Entry) -> Course | None:
        subs = []
        for index, raw in self._children(course.raw, "sub_courses", "sub-course", course.where):
            where = f"{course.where} > {_label('sub-course', index, raw)}"
            sub = self._entry(raw, "sub-course", where, course.level)
            if sub is not None:
                subs.append(sub)
        self._check_unique(subs, "sub-course", course.where)
        built = tuple(s for s in (self._sub_course(subject, course, sub) for sub in subs) if s is not None)
        return Course(course.id, course.name, built) if built else None

    def _sub_course(self, subject: _Entry, course: _Entry, sub: _Entry) -> SubCourse | None:
        points = []
        for index, raw in self._children(sub.raw, "knowledge_points", "knowledge point", sub.where):
            where = f"{sub.where} > {_label('knowledge point', index, raw)}"
            point = self._entry(raw, "knowledge point", where, sub.level)
            if point is not None:
                points.append(point)
        self._check_unique(points, "knowledge point", sub.where)
        built = []
        for point in points:
            query = point.raw.get("query", point.name)
            if not isinstance(query, str) or not query.strip():
                self.problem(point.where, f"`query` must be non-empty text, got {query!r}")
                continue
            if point.level is None:
                self.problem(point.where, "no `level`: set it here or on its sub-course, course or subject")
                continue
            kp = KnowledgePoint(
                id=f"{subject.id}.{course.id}.{sub.id}.{point.id}",
                name=point.name,
                query=query.strip(),
                level=point.level,
                subject=subject.id,
                subject_name=subject.name,
                course=course.id,
                course_name=course.name,
                sub_course=sub.id,
                sub_course_name=sub.name,
            )
            if len(kp.dag_id) > _DAG_ID_MAX:
                self.problem(point.where, f"id {kp.id!r} is too long for an Airflow DAG id; shorten the ids")
                continue
            built.append(kp)
        return SubCourse(sub.id, sub.name, tuple(built)) if built else None

    def _parse(self) -> Any:
        try:
            text = self.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.problem("", f"cannot read: {exc}")
            return None
        try:
            document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            detail = "; ".join(part for part in (exc.context, exc.problem) if part)
            self.problem(where, f"YAML syntax error: {detail}")
            return None
        except yaml.YAMLError as exc:
            self.problem("", f"YAML syntax error: {exc}")
            return None
        if document is None:
            self.problem("", "file is empty")
        return document

    def _entry(self, raw: Any, kind: str, where: str, inherited_level: int | None) -> _Entry | None:
        if not isinstance(raw, dict):
            self.problem(where, f"expected a mapping with at least `name`, got {_kind(raw)}")
            return None
        self._check_keys(raw, kind, where)
        name = raw.get("name")
        if name is None:
            self.problem(where, "missing `name`")
            return None
        if not isinstance(name, str) or not name.strip():
            self.problem(where, f"`name` must be non-empty text, got {name!r}")
            return None
        name = name.strip()
        if "id" in raw:
            entry_id = raw["id"]
            if not isinstance(entry_id, str):
                self.problem(where, f"bad id {entry_id!r}: must be text (quote it), got {_kind(entry_id)}")
                return None
            if not _SEGMENT.match(entry_id):
                self.problem(where, f"bad id {entry_id!r}: use {_SEGMENT_RULE}")
                return None
        else:
            entry_id = slugify(name)
            if not entry_id:
                self.problem(where, f"cannot derive an id from name {name!r}; set `id`")
                return None
        level = inherited_level
        if "level" in raw:
            level = raw["level"]
            if type(level) is not int or level not in LEVELS:
                levels = ", ".join(f"{number} {label}" for number, label in LEVELS.items())
                self.problem(where, f"bad level {level!r}: must be an integer from 1 to 5 ({levels})")
                return None
        return _Entry(entry_id, name, level, where, raw)

    def _children(self, raw: dict[str, Any], key: str, kind: str, where: str) -> list[tuple[int, Any]]:
        if key not in raw:
            self.problem(where, f"missing `{key}` (a list of {kind}s)")
            return []
        value = raw[key]
        if not isinstance(value, list):
            self.problem(where, f"`{key}` must be a list of {kind}s, got {_kind(value)}")
            return []
        if not value:
            self.problem(where, f"`{key}` is empty: give at least one {kind}")
        return list(enumerate(value))

    def _check_keys(self, raw: dict[Any, Any], kind: str, where: str) -> None:
        allowed = _ALLOWED_KEYS[kind]
        for key in raw:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean `{close[0]}`? " if close else ""
                self.problem(where, f"unknown key {key!r} ({hint}allowed: {', '.join(allowed)})")

    def _check_unique(self, entries: list[_Entry], kind: str, where: str) -> None:
        first: dict[str, _Entry] = {}
        for entry in entries:
            if entry.id in first:
                self.problem(
                    entry.where,
                    f"duplicate {kind} id {entry.id!r} in {where} (also {first[entry.id].where}); "
                    "give each a distinct `id`",
                )
            else:
                first[entry.id] = entry


def _label(kind: str, index: int, raw: Any) -> str:
    """How an entry is named in messages: its position, then its id or else its name."""
    label = f"{kind} #{index + 1}"
    if isinstance(raw, dict):
        if isinstance(raw.get("id"), str):
            return f"{label} {raw['id']!r}"
        if isinstance(raw.get("name"), str):
            return f"{label} {raw['name']!r}"
    return label


def _subject_label(raw: Any) -> str:
    return _label("subject", 0, raw).replace(" #1", "")


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]

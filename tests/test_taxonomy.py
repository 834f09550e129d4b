"""The shipped taxonomy, the loader's validation messages, and selecting knowledge points."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

import textbook.taxonomy
from textbook.taxonomy import (
    LEVELS,
    SHIPPED_DIR,
    TaxonomyError,
    TaxonomyLookupError,
    load_taxonomy,
    slugify,
)

PAPER_SUBJECTS = {"mathematics", "physics", "chemistry", "earth-science", "engineering", "computer-science"}
AIRFLOW_DAG_ID = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")

GOOD = """\
subject: {id: sci, name: Science}
courses:
  - id: mech
    name: Mechanics
    level: 3
    sub_courses:
      - id: motion
        name: Motion
        knowledge_points:
          - {id: speed, name: Speed, query: "speed physics lesson"}
          - name: Newton’s first law
          - {name: Lagrangian mechanics, level: 5}
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(folder: Path) -> TaxonomyError:
    with pytest.raises(TaxonomyError) as caught:
        load_taxonomy(folder)
    return caught.value


def one_file_error(tmp_path: Path, text: str, name: str = "sci.yaml") -> str:
    write(tmp_path, name, text)
    return str(load_error(tmp_path))


# --- the shipped taxonomy ---------------------------------------------------------------------


def test_import_resolves_the_module_not_the_data_folder():
    assert Path(textbook.taxonomy.__file__).name == "taxonomy.py"
    assert SHIPPED_DIR.is_dir() and not (SHIPPED_DIR / "__init__.py").exists()


def test_shipped_taxonomy_covers_the_papers_six_subjects_and_the_demo():
    taxonomy = load_taxonomy()
    assert {s.id for s in taxonomy.subjects} == PAPER_SUBJECTS | {"demo"}
    paper_points = [kp for kp in taxonomy.knowledge_points if kp.subject != "demo"]
    assert len(paper_points) >= 120
    ids = [kp.id for kp in taxonomy.knowledge_points]
    assert len(ids) == len(set(ids))
    dag_ids = [kp.dag_id for kp in taxonomy.knowledge_points]
    assert len(dag_ids) == len(set(dag_ids))
    assert all(AIRFLOW_DAG_ID.match(d) for d in dag_ids)
    assert all(re.fullmatch(r"[a-z0-9_.-]+", i) and i.count(".") == 3 for i in ids)


def test_every_paper_subject_spans_primary_school_to_university():
    taxonomy = load_taxonomy()
    for subject in taxonomy.subjects:
        if subject.id == "demo":
            continue
        levels = {kp.level for kp in subject.knowledge_points}
        assert len(subject.knowledge_points) >= 20, subject.id
        assert {1, 2, 3, 4} <= levels, (subject.id, levels)
    assert {kp.level for kp in taxonomy.knowledge_points} == set(LEVELS)


def test_shipped_queries_are_search_phrases_not_blank():
    for kp in load_taxonomy().knowledge_points:
        assert kp.query.strip() and len(kp.query) <= 100, kp.id


def test_demo_knowledge_point():
    kp = load_taxonomy().get("demo.intro.basics.lectures")
    assert kp.name == "Demo lectures"
    assert kp.path == "Demo / Introduction / Basics / Demo lectures"
    assert kp.dag_id == "textbook__demo__intro__basics__lectures"


# --- defaults and inheritance -----------------------------------------------------------------


def test_ids_queries_and_levels_default_sensibly(tmp_path):
    write(tmp_path, "sci.yaml", GOOD)
    taxonomy = load_taxonomy(str(tmp_path))
    speed, newton, lagrange = taxonomy.knowledge_points
    assert speed.id == "sci.mech.motion.speed" and speed.query == "speed physics lesson"
    assert newton.id == "sci.mech.motion.newtons-first-law"
    assert newton.query == "Newton’s first law"
    assert newton.level == 3 and newton.level_name == "high school"
    assert lagrange.level == 5
    assert newton.path == "Science / Mechanics / Motion / Newton’s first law"
    assert newton.dag_id == "textbook__sci__mech__motion__newtons-first-law"


def test_slugify():
    assert slugify("Newton's laws: of Motion!") == "newtons-laws-of-motion"
    assert slugify("Schrödinger équation") == "schrodinger-equation"
    assert slugify("∫∑") == ""


def test_files_load_in_file_name_order_and_a_new_file_adds_its_subject(tmp_path):
    shutil.copytree(SHIPPED_DIR, tmp_path, dirs_exist_ok=True)
    before = load_taxonomy(tmp_path)
    write(tmp_path, "aaa-science.yaml", GOOD)
    after = load_taxonomy(tmp_path)
    assert after.subjects[0].id == "sci"
    assert [s.id for s in after.subjects[1:]] == [s.id for s in before.subjects]
    assert len(after.knowledge_points) == len(before.knowledge_points) + 3
    assert after.get("sci.mech.motion.speed").subject_name == "Science"


# --- validation: each message names the file and the entry ------------------------------------


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    message = one_file_error(tmp_path, "subject: {id: sci, name: Science\ncourses: []\n")
    assert "sci.yaml" in message and "YAML syntax error" in message and "line " in message


def test_duplicate_yaml_key_is_refused(tmp_path):
    text = GOOD.replace("    level: 3\n", "    level: 3\n    name: Again\n", 1)
    message = one_file_error(tmp_path, text)
    assert "sci.yaml" in message and "duplicate key 'name'" in message and "line 6" in message


def test_duplicate_course_id_within_a_file(tmp_path):
    text = GOOD + GOOD.split("courses:\n", 1)[1]
    message = one_file_error(tmp_path, text)
    assert "sci.yaml" in message
    assert "course #2 'mech'" in message and "duplicate course id 'mech'" in message


def test_duplicate_knowledge_point_id_derived_from_names(tmp_path):
    text = GOOD.replace("- {id: speed, name: Speed,", "- {name: Speed,").replace(
        "- name: Newton’s first law", "- name: speed"
    )
    message = one_file_error(tmp_path, text)
    assert "sci.yaml" in message
    assert "knowledge point #2 'speed'" in message and "duplicate knowledge point id 'speed'" in message


def test_duplicate_subject_across_files_names_both_files(tmp_path):
    write(tmp_path, "first.yaml", GOOD)
    write(tmp_path, "second.yaml", GOOD)
    message = str(load_error(tmp_path))
    assert "second.yaml: subject 'sci'" in message and "already defined in" in message
    assert "first.yaml" in message


def test_missing_name(tmp_path):
    message = one_file_error(tmp_path, GOOD.replace("          - name: Newton’s first law", "          - {id: newton}"))
    assert "sci.yaml" in message and "knowledge point #2 'newton'" in message and "missing `name`" in message


@pytest.mark.parametrize("level", ["0", "6", "'3'", "true", "2.5", "high"])
def test_bad_level(tmp_path, level):
    message = one_file_error(tmp_path, GOOD.replace("    level: 3\n", f"    level: {level}\n"))
    assert "sci.yaml" in message and "course #1 'mech'" in message and "bad level" in message
    assert "1 primary school" in message


def test_no_level_anywhere(tmp_path):
    message = one_file_error(tmp_path, GOOD.replace("    level: 3\n", ""))
    assert "sci.yaml" in message and "knowledge point #1 'speed'" in message and "no `level`" in message


def test_unknown_key_suggests_the_right_one(tmp_path):
    message = one_file_error(tmp_path, GOOD.replace('query: "speed', 'qeury: "speed'))
    assert "sci.yaml" in message and "knowledge point #1 'speed'" in message
    assert "unknown key 'qeury'" in message and "did you mean `query`?" in message


def test_unquoted_comma_in_a_flow_mapping_is_caught(tmp_path):
    message = one_file_error(tmp_path, GOOD.replace("name: Speed,", "name: Speed, distance and time,"))
    assert "knowledge point #1 'speed'" in message and "unknown key 'distance and time'" in message


@pytest.mark.parametrize(
    ("text", "entry", "what"),
    [
        ("subject: {id: sci, name: Science}\ncourses: []\n", "subject 'sci'", "`courses` is empty"),
        (
            "subject: {id: sci, name: Science}\ncourses: [{id: mech, name: Mechanics, sub_courses: []}]\n",
            "course #1 'mech'",
            "`sub_courses` is empty",
        ),
        (
            "subject: {id: sci, name: Science}\n"
            "courses: [{id: mech, name: Mechanics, sub_courses: [{name: Motion, knowledge_points: []}]}]\n",
            "course #1 'mech' > sub-course #1 'Motion'",
            "`knowledge_points` is empty",
        ),
    ],
)
def test_empty_lists(tmp_path, text, entry, what):
    message = one_file_error(tmp_path, text)
    assert f"sci.yaml: {entry}: {what}" in message


def test_missing_courses(tmp_path):
    message = one_file_error(tmp_path, "subject: {id: sci, name: Science}\n")
    assert "sci.yaml: subject 'sci': missing `courses`" in message


@pytest.mark.parametrize("bad_id", ["Motion", "mo.tion", "mo tion", "-motion", "42", "''"])
def test_bad_id_characters(tmp_path, bad_id):
    message = one_file_error(tmp_path, GOOD.replace("      - id: motion", f"      - id: {bad_id}"))
    assert "sci.yaml" in message and "sub-course #1" in message and "bad id" in message


def test_name_without_letters_needs_an_explicit_id(tmp_path):
    message = one_file_error(tmp_path, GOOD.replace("- name: Newton’s first law", "- name: '∫∑'"))
    assert "knowledge point #2 '∫∑'" in message and "cannot derive an id" in message


@pytest.mark.parametrize(("text", "what"), [("", "file is empty"), ("- a\n- b\n", "expected a mapping")])
def test_file_that_is_not_a_subject(tmp_path, text, what):
    message = one_file_error(tmp_path, text)
    assert "sci.yaml" in message and what in message


def test_dag_id_collisions_are_refused(tmp_path):
    text = """\
    subject: {id: sci, name: Science, level: 3}
    courses:
      - {id: a__b, name: A, sub_courses: [{id: c, name: C, knowledge_points: [{id: d, name: D}]}]}
      - {id: a, name: B, sub_courses: [{id: b__c, name: C, knowledge_points: [{id: d, name: D}]}]}
    """
    message = one_file_error(tmp_path, text)
    assert "sci.yaml" in message and "'sci.a.b__c.d'" in message and "'sci.a__b.c.d'" in message


def test_every_problem_is_reported_at_once(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("    level: 3\n", "    level: 9\n"))
    write(tmp_path, "b.yaml", GOOD.replace("sci", "bio").replace('query: "speed', 'qeury: "speed'))
    error = load_error(tmp_path)
    assert len(error.problems) == 2
    assert error.problems[0].startswith(str(tmp_path / "a.yaml"))
    assert error.problems[1].startswith(str(tmp_path / "b.yaml"))


def test_folder_problems(tmp_path):
    assert "does not exist" in str(load_error(tmp_path / "nowhere"))
    (tmp_path / "notes.txt").write_text("not a taxonomy")
    assert "no *.yaml" in str(load_error(tmp_path))


# --- lookup -----------------------------------------------------------------------------------


def test_get_unknown_id_lists_close_matches():
    taxonomy = load_taxonomy()
    with pytest.raises(KeyError) as caught:
        taxonomy.get("mathematics.calculus.derivatives.power-rul")
    assert "mathematics.calculus.derivatives.power-rule" in str(caught.value)
    with pytest.raises(TaxonomyLookupError, match="did you mean mathematics.calculus.derivatives.power-rule"):
        taxonomy.get("power-rule")


def test_select_filters():
    taxonomy = load_taxonomy()
    assert taxonomy.select() == list(taxonomy.knowledge_points)
    physics = taxonomy.select(subject="physics")
    assert physics and {kp.subject for kp in physics} == {"physics"}
    calculus = taxonomy.select(subject="mathematics", course="calculus")
    assert {kp.course for kp in calculus} == {"calculus"} and len(calculus) == 8
    derivatives = taxonomy.select(course="calculus.derivatives")
    assert [kp.id.rsplit(".", 1)[1] for kp in derivatives] == ["power-rule", "chain-rule", "implicit-differentiation"]
    power = taxonomy.get("mathematics.calculus.derivatives.power-rule")
    assert taxonomy.select(kp=power.id) == [power]
    assert taxonomy.select(subject="mathematics", kp="power-rule") == [power]
    assert taxonomy.select(course="calculus", kp="derivatives.power-rule") == [power]


def test_select_names_what_was_not_found():
    taxonomy = load_taxonomy()
    with pytest.raises(TaxonomyLookupError, match=r"unknown subject 'maths' \(subjects: chemistry, "):
        taxonomy.select(subject="maths")
    did_you_mean = "unknown course 'calculas' in subject 'mathematics'; did you mean calculus"
    with pytest.raises(TaxonomyLookupError, match=did_you_mean):
        taxonomy.select(subject="mathematics", course="calculas")
    with pytest.raises(TaxonomyLookupError, match="unknown course 'quantum-mechanics' in subject 'mathematics'"):
        taxonomy.select(subject="mathematics", course="quantum-mechanics")
    with pytest.raises(TaxonomyLookupError, match="unknown knowledge point 'chain-rule' in subject 'physics'"):
        taxonomy.select(subject="physics", kp="chain-rule")

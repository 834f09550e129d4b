"""`textbook taxonomy generate` against a real chat server on loopback: new subjects, merges, dry runs, bad answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from llm_server import llm_server

from textbook.cli import main
from textbook.taxonomy import SHIPPED_DIR, load_taxonomy
from textbook.taxonomy_files import read_header, render

ASTRONOMY = {"subject": "Astronomy", "courses": [
    {"name": "The Sky", "level": 1, "sub_courses": [
        {"name": "Sun and Moon", "knowledge_points": [
            {"name": "Phases of the Moon", "query": "phases of the moon lesson for kids"},
            {"name": "Day and night", "query": "why do we have day and night lesson"}]}]},
    {"name": "The Solar System", "level": 2, "sub_courses": [
        {"name": "Planets", "knowledge_points": [
            {"name": "Kepler's laws", "query": "kepler's laws of planetary motion lesson"}]}]}]}


@pytest.fixture
def taxonomy(tmp_path: Path) -> Path:
    folder = tmp_path / "taxonomy"
    folder.mkdir()
    for name in ("demo.yaml", "physics.yaml"):
        shutil.copy(SHIPPED_DIR / name, folder / name)
    return folder


@pytest.fixture
def server(monkeypatch):
    with llm_server() as srv:
        monkeypatch.setenv("TEXTBOOK_TAXONOMY__LLM__BACKEND", "openai")
        monkeypatch.setenv("TEXTBOOK_TAXONOMY__LLM__ENDPOINT", srv.url)
        monkeypatch.setenv("TEXTBOOK_TAXONOMY__LLM__MODEL", "tiny")
        yield srv


def generate(taxonomy: Path, *args: str) -> int:
    return main(["taxonomy", "generate", "--taxonomy-dir", str(taxonomy), *args])


def test_shipped_files_render_back_byte_for_byte():
    for path in sorted(SHIPPED_DIR.glob("*.yaml")):
        text = path.read_text()
        assert render(yaml.safe_load(text), read_header(text)) == text, path.name


def test_a_generated_subject_validates_and_its_dags_appear(taxonomy, server, tmp_path, capsys):
    from test_dags import REPO, parse

    server.answer = lambda body: "```json\n" + json.dumps(ASTRONOMY) + "\n```"
    assert generate(taxonomy, "--subject", "Astronomy", "--levels", "1-2", "--points", "3") == 0
    prompt = server.requests[0]["body"]["messages"]
    assert '"knowledge_points"' in prompt[0]["content"] and "3,915 knowledge points" in prompt[0]["content"]
    assert "Subject: Astronomy" in prompt[1]["content"] and "and 3 knowledge points in all" in prompt[1]["content"]
    written = (taxonomy / "astronomy.yaml").read_text()
    assert written.startswith("# Levels: 1 primary school") and "subject: {id: astronomy, name: Astronomy}" in written
    assert ('          - {id: keplers-laws, name: Kepler\'s laws, query: "kepler\'s laws of planetary motion lesson"}'
            in written)
    points = load_taxonomy(taxonomy).select(subject="astronomy")
    assert [(p.id, p.level) for p in points] == [("astronomy.the-sky.sun-and-moon.phases-of-the-moon", 1),
                                                 ("astronomy.the-sky.sun-and-moon.day-and-night", 1),
                                                 ("astronomy.the-solar-system.planets.keplers-laws", 2)]
    assert "1 file(s) written" in capsys.readouterr().out
    dags = tmp_path / "dags"  # the fallback DAG file alone builds every subject file: here demo, physics, astronomy
    dags.mkdir()
    shutil.copy(REPO / "dags" / "textbook_knowledge_points.py", dags)
    parsed = parse(tmp_path, taxonomy, dags=dags)
    assert parsed["errors"] == {}
    assert {p.dag_id for p in points} <= set(parsed["dags"])


def test_a_merge_keeps_existing_ids_names_and_entries(taxonomy, server, capsys):
    before = (taxonomy / "physics.yaml").read_text()
    kept = {p.id: (p.name, p.query, p.level) for p in load_taxonomy(taxonomy).select(subject="physics")}
    server.answer = lambda body: json.dumps({"subject": "Physics", "courses": [
        {"id": "physical-science", "name": "Physical Sciences (renamed)", "level": 2, "sub_courses": [
            {"name": "motion", "knowledge_points": [  # a name collision: the existing sub-course
                {"id": "newtons-laws", "name": "Newton's three laws", "query": "other query"},  # renamed by id
                {"name": "Speed, Distance and Time", "query": "x"},  # same name, other case
                {"name": "Inertia", "query": "inertia physics lesson"}]}]},  # new
        {"name": "Astrophysics", "level": 2, "sub_courses": [
            {"name": "Stars", "knowledge_points": [{"name": "Life of a star", "query": "life cycle of stars"}]}]}]})
    assert generate(taxonomy, "--subject", "physics") == 0
    assert "physics" in server.requests[0]["body"]["messages"][1]["content"]  # shown the existing tree with ids
    assert "{id: newtons-laws, name: Newton's laws of motion" in server.requests[0]["body"]["messages"][1]["content"]
    after = {p.id: (p.name, p.query, p.level) for p in load_taxonomy(taxonomy).select(subject="physics")}
    assert {k: after[k] for k in kept} == kept  # every existing point, untouched (omitted ones too)
    assert set(after) - set(kept) == {"physics.physical-science.motion.inertia",
                                      "physics.astrophysics.stars.life-of-a-star"}
    text = (taxonomy / "physics.yaml").read_text()
    assert text.startswith(read_header(before)) and "Physical Sciences (renamed)" not in text
    # the added lines are all that changed
    assert [line for line in before.splitlines() if line not in text.splitlines()] == []


def test_a_dry_run_prints_the_diff_and_writes_nothing(taxonomy, server, capsys):
    server.answer = lambda body: json.dumps(ASTRONOMY)
    files = {p.name: p.read_bytes() for p in taxonomy.iterdir()}
    assert generate(taxonomy, "--subject", "Astronomy", "--dry-run") == 0
    out = capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in taxonomy.iterdir()} == files
    assert "--- /dev/null\n+++ b/astronomy.yaml\n" in out and "+subject: {id: astronomy, name: Astronomy}" in out
    assert "dry run: nothing written" in out


def test_bad_json_is_retried_once_then_a_clear_error(taxonomy, server, capsys):
    answers = iter(["Sure! Here is the taxonomy: {", json.dumps(ASTRONOMY)])
    server.answer = lambda body: next(answers)
    assert generate(taxonomy, "--subject", "Astronomy") == 0
    retry = server.requests[1]["body"]["messages"]
    assert "not JSON" in retry[-1]["content"] and retry[-2]["content"].startswith("Sure!")

    server.requests.clear()
    server.answer = lambda body: json.dumps({"subject": "Geology", "courses": [
        {"name": "Rocks", "level": 4, "sub_courses": [{"name": "Kinds", "knowledge_points": [{"name": "Granite"}]}]}]})
    assert generate(taxonomy, "--subject", "Geology") == 1
    err = capsys.readouterr().err
    assert len(server.requests) == 2 and not (taxonomy / "geology.yaml").exists()
    assert "no usable answer after a retry" in err
    assert "answer.courses[0].sub_courses[0].knowledge_points[0]: missing `query`" in err


def test_levels_outside_the_scope_and_no_model_are_errors_naming_the_setting(taxonomy, server, monkeypatch, capsys):
    bad = dict(ASTRONOMY, courses=[dict(ASTRONOMY["courses"][0], level=4)])
    server.answer = lambda body: json.dumps(bad)
    assert generate(taxonomy, "--subject", "Astronomy", "--levels", "1,2") == 1
    assert "answer.courses[0].level: 4 is outside the levels asked for (1, 2)" in capsys.readouterr().err
    assert generate(taxonomy, "--levels", "0-9") == 1
    assert "--levels: levels '0-9': each must be one of 1 primary school" in capsys.readouterr().err
    monkeypatch.setenv("TEXTBOOK_TAXONOMY__LLM__BACKEND", "none")
    assert generate(taxonomy) == 1
    assert "taxonomy.llm.backend is none" in capsys.readouterr().err

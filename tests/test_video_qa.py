"""16 question types x 2 variants from a level-3 caption, with the release's filters and MiniLM dedup."""

from __future__ import annotations

import json

from textbook.config import ModelSettings
from textbook.embeddings import Embedder
from textbook.models.openai import OpenAIChat
from textbook.video_qa import TYPES, generate

from llm_server import llm_server


def answer(body: dict) -> str:
    text = body["messages"][0]["content"]
    kind = text.split(" of type ")[1].split(":")[0]
    mc = "multiple-choice" in text
    if kind == "Speed":
        return "None"
    if kind == "Plot":
        return json.dumps([{"Dimension": kind, "Question": "What is the speaker's name?",
                            "Answer": "The video does not mention the speaker's name."}])
    if mc:
        letter = "E" if kind == "Count" else "B"  # Count names a letter that is not an option
        q = f"Which {kind} detail is shown?\nA. red\nB. blue\nC. green\nD. gray"
        return json.dumps([{"Dimension": kind, "Question": q, "Answer": letter}])
    if kind == "Spatial":  # a near-duplicate of Temporal's question
        return json.dumps([{"Dimension": kind, "Question": "What colour does the screen turn to after red?",
                            "Answer": "Green."}])
    if kind == "Temporal":
        return json.dumps([{"Dimension": kind, "Question": "What colour does the screen turn after red?",
                            "Answer": "Green."}])
    return json.dumps([{"Dimension": kind, "Question": f"Question number {len(text)} on {kind.lower()}?",
                        "Answer": "An answer."}])


def test_types_variants_filters_and_dedup() -> None:
    with llm_server() as server:
        server.answer = answer
        llm = OpenAIChat(ModelSettings(backend="openai", model="m", endpoint=server.url, timeout=10))
        pairs = generate("The screen is red, then green, then blue.", llm, Embedder(device="cpu"))
        asked = [r["body"]["messages"][0]["content"] for r in server.requests]
    assert len(asked) == 32
    assert {(t.split(" of type ")[1].split(":")[0], "multiple-choice" in t) for t in asked} == \
        {(k, mc) for k in TYPES for mc in (True, False)}
    got = {(p["type"], p["variant"]) for p in pairs}
    assert ("Speed", "oe") not in got and ("Plot", "oe") not in got and ("Count", "mc") not in got
    assert ("Temporal", "oe") in got and ("Spatial", "oe") not in got  # the near-duplicate went
    assert len([p for p in pairs if p["variant"] == "oe"]) == 13

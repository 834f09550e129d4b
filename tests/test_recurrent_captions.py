"""The three-level recurrent caption schedule on a rendered 75 s video against the loopback server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from textbook.config import ModelSettings
from textbook.models.openai import OpenAIChat, data_url
from textbook.models.registry import BackendError
from textbook.recurrent_captions import CaptionState, Step, caption_segment, plan, sample_frames

from llm_server import llm_server

COLOURS = ["red", "green", "blue", "yellow", "cyan", "magenta", "white", "gray"]


def render(path: Path) -> Path:
    """75 s whose colour changes every 10 s (the last interval is 5 s)."""
    inputs: list[str] = []
    for k, colour in enumerate(COLOURS):
        inputs += ["-f", "lavfi", "-i", f"color=c={colour}:s=96x64:r=5:d={5 if k == 7 else 10}"]
    graph = "".join(f"[{k}]" for k in range(8)) + "concat=n=8,format=yuv420p"
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph, str(path)], check=True)
    return path


def images(request: dict) -> list[str]:
    return [p["image_url"]["url"] for p in request["body"]["messages"][0]["content"] if p["type"] == "image_url"]


def prompt(request: dict) -> str:
    return request["body"]["messages"][0]["content"][-1]["text"]


def test_plan_follows_the_three_rules() -> None:
    assert plan(75) == [Step(1, 1), Step(1, 2), Step(1, 3), Step(2, 3), Step(1, 4), Step(1, 5), Step(1, 6),
                        Step(2, 6), Step(1, 7), Step(1, 8), Step(3, 8)]
    with pytest.raises(ValueError, match="duration"):
        plan(0)


def test_schedule_calls_and_resume_after_a_failure(tmp_path: Path) -> None:
    video = render(tmp_path / "v.mp4")
    frames = sample_frames(video, tmp_path / "frames", 75.0)
    assert len(frames) == 75 and [t for t, _ in frames] == [float(k) for k in range(75)]
    state_path = tmp_path / "state.json"
    with llm_server() as server:
        vlm = OpenAIChat(ModelSettings(backend="openai", model="m", endpoint=server.url, timeout=10))
        answers = iter(range(100))
        server.answer = lambda body: None if len(server.requests) == 6 else f"text {next(answers)}"
        with pytest.raises(BackendError, match="HTTP 500"):
            caption_segment(frames, 75.0, CaptionState.file(state_path), vlm)
        assert len(CaptionState.file(state_path).captions) == 5  # calls 1-5 kept; call 6 failed
        server.answer = lambda body: f"text {next(answers)}"
        state = caption_segment(frames, 75.0, CaptionState.file(state_path), vlm)  # a fresh state object: a retry
        calls = server.requests[:5] + server.requests[6:]
        assert len(calls) == 11 and len(server.requests) == 12  # call 6 once failed, once answered; no other repeat
    steps = plan(75)
    assert [(c["level"], c["interval"]) for c in state.captions] == [(s.level, s.interval) for s in steps]
    level1 = [c for c, s in zip(calls, steps) if s.level == 1]
    assert len(level1) == 8
    for i, call in enumerate(level1):
        start = i * 10
        assert images(call) == [data_url(p) for t, p in frames if start <= t < start + 10]
    texts = {(c["level"], c["interval"]): c["text"] for c in state.captions}
    # interval 2 sees interval 1; interval 4 (after the level-2 of interval 3) sees only that level-2
    assert texts[(1, 1)] in prompt(level1[1]) and "level 2" not in prompt(level1[1])
    assert texts[(2, 3)] in prompt(level1[3]) and texts[(1, 3)] not in prompt(level1[3])
    assert texts[(1, 4)] in prompt(level1[4]) and texts[(1, 5)] in prompt(level1[5])
    l2 = [c for c, s in zip(calls, steps) if s.level == 2]
    assert [s.interval for s in steps if s.level == 2] == [3, 6]
    assert not images(l2[0]) and all(texts[(1, k)] in prompt(l2[0]) for k in (1, 2, 3))
    assert all(texts[(1, k)] in prompt(l2[1]) for k in (4, 5, 6)) and texts[(2, 3)] in prompt(l2[1])
    assert texts[(1, 3)] not in prompt(l2[1])
    l3 = prompt(calls[-1])
    assert texts[(1, 7)] in l3 and texts[(1, 8)] in l3 and texts[(2, 6)] in l3 and texts[(1, 6)] not in l3


def test_grounding_reaches_level1_prompts_only(tmp_path: Path) -> None:
    frames = sample_frames(render(tmp_path / "v.mp4"), tmp_path / "frames", 75.0)
    with llm_server() as server:
        server.answer = lambda body: "c"
        vlm = OpenAIChat(ModelSettings(backend="openai", model="m", endpoint=server.url, timeout=10))
        caption_segment(frames, 75.0, CaptionState.file(tmp_path / "s.json"), vlm,
                        grounding=lambda start, end: f"said between {start} and {end}")
        texts = [prompt(r) for r in server.requests]
    assert "said between 70 and 75.0" in texts[9] and "said between" not in texts[3] + texts[-1]

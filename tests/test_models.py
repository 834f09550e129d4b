"""The model backend registry: names, needs, the OpenAI-compatible client on loopback, and the
transformers chat backend on a tiny random Llama with a tokenizer trained here."""

from __future__ import annotations

import base64
import json

import pytest
from llm_server import llm_server

from textbook import models
from textbook.config import ConfigError, ModelSettings, load_settings
from textbook.models import BackendError, backends, build


@pytest.fixture
def server():
    with llm_server() as srv:
        yield srv


def test_an_unknown_name_lists_the_kind_s_backends():
    with pytest.raises(BackendError, match=r"refine\.llm\.backend: unknown llm backend 'gpt9'; "
                                           r"choose one of none, openai, transformers"):
        build("llm", ModelSettings(backend="gpt9"), "refine.llm")
    assert set(backends("text_embedder")) == {"minilm", "sentence_transformers"}
    assert {"faster_whisper", "whisperx"} <= set(backends("asr")) and "tesseract" in backends("ocr")


@pytest.mark.parametrize("cfg, message", [
    (ModelSettings(backend="openai", model="m"),
     r"refine\.judges\[1\]\.backend 'openai' needs refine\.judges\[1\]\.endpoint"),
    (ModelSettings(backend="openai", endpoint="http://x/v1"), r"needs refine\.judges\[1\]\.model \(the served"),
    (ModelSettings(backend="transformers"), r"needs refine\.judges\[1\]\.model \(a local model folder\)"),
    (ModelSettings(backend="transformers", model="/no/such/folder"), r"'/no/such/folder' is not a folder"),
])
def test_a_missing_need_names_the_setting(cfg, message):
    with pytest.raises(BackendError, match=message):
        build("llm", cfg, "refine.judges[1]")


def test_cuda_asked_for_on_a_machine_without_it(monkeypatch, tmp_path):
    monkeypatch.setattr(models.registry, "_cuda", lambda: False)
    with pytest.raises(BackendError, match=r"refine\.llm\.device is cuda and this machine has no CUDA GPU"):
        build("llm", ModelSettings(backend="transformers", model=str(tmp_path), device="cuda"), "refine.llm")


def test_the_offline_default_is_no_model():
    assert build("llm", ModelSettings(), "refine.llm") is None


def test_openai_chat_and_vision_on_loopback(server, monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_KEY", "sekrit")
    server.answer = lambda body: f"{body['model']} heard {len(body['messages'])} message(s)"
    llm = build("llm", ModelSettings(backend="openai", endpoint=server.url, model="judge-a", api_key_env="TEST_KEY",
                                     max_new_tokens=7), "refine.llm")
    assert llm.chat([[{"role": "user", "content": "hi"}], [{"role": "system", "content": "s"},
                                                            {"role": "user", "content": "hi"}]]) == [
        "judge-a heard 1 message(s)", "judge-a heard 2 message(s)"]
    first = server.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sekrit"
    assert (first["body"]["max_tokens"], first["body"]["temperature"]) == (7, 0)

    image = tmp_path / "slide.jpg"
    image.write_bytes(b"\xff\xd8fake jpeg")
    vlm = build("vlm", ModelSettings(backend="openai", endpoint=server.url, model="vlm"), "clips.vlm")
    vlm.chat([[{"role": "user", "content": [{"type": "text", "text": "what is shown?"},
                                            {"type": "image", "path": str(image)}]}]])
    parts = server.requests[-1]["body"]["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "what is shown?"}
    assert parts[1] == {"type": "image_url", "image_url": {
        "url": "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8fake jpeg").decode()}}


def test_openai_failures_are_backend_errors_naming_the_endpoint(server):
    llm = build("llm", ModelSettings(backend="openai", endpoint=server.url, model="m"), "refine.llm")
    for answer, message in ((None, "HTTP 500"), (b"not json", "not JSON"), (b'{"choices": []}', "unexpected answer")):
        server.answer = lambda body, a=answer: a
        with pytest.raises(BackendError, match=message):
            llm.chat([[{"role": "user", "content": "x"}]])
    gone = build("llm", ModelSettings(backend="openai", endpoint="http://127.0.0.1:9/v1", model="m"), "refine.llm")
    with pytest.raises(BackendError, match=r"chat endpoint http://127\.0\.0\.1:9/v1 unreachable"):
        gone.chat([[{"role": "user", "content": "x"}]])


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    from textbook.train.tiny import build_tiny_llm

    texts = ["system: you judge videos", "user: the derivative measures change", "assistant: relevance 7"] * 20
    return build_tiny_llm(tmp_path_factory.mktemp("tiny-llm"), texts)


def test_transformers_chat_batches_with_the_chat_template(tiny_llm):
    llm = build("llm", ModelSettings(backend="transformers", model=str(tiny_llm), device="cpu", batch_size=2,
                                     max_new_tokens=5), "refine.llm")
    calls = []
    generate = llm.model.generate
    llm.model.generate = lambda **kw: calls.append(kw["input_ids"].shape) or generate(**kw)
    conversations = [[{"role": "user", "content": "short"}],
                     [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a longer question here"}],
                     [{"role": "user", "content": "third"}]]
    answers = llm.chat(conversations)
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)  # random weights: gibberish
    assert [shape[0] for shape in calls] == [2, 1]  # batch_size 2: two generate calls
    prompts = llm.prompts(conversations)
    assert prompts[1] == "<s>system: be brief</s>\n<s>user: a longer question here</s>\n<s>assistant:"
    # left padding: every prompt of a batch ends where generation starts
    enc = llm.tokenizer(prompts[:2], return_tensors="pt", padding=True, add_special_tokens=False)
    assert enc["attention_mask"][:, -1].tolist() == [1, 1] and enc["attention_mask"][0, 0].item() == 0


def test_transformers_refuses_a_tokenizer_without_chat_template(tiny_llm, tmp_path):
    import shutil

    folder = shutil.copytree(tiny_llm, tmp_path / "no-template")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    for extra in folder.glob("chat_template.*"):
        extra.unlink()
    with pytest.raises(BackendError, match="has no chat template"):
        build("llm", ModelSettings(backend="transformers", model=str(folder), device="cpu"), "refine.llm")


def test_judges_from_yaml_and_environment(tmp_path):
    path = tmp_path / "textbook.yaml"
    path.write_text("refine:\n  judges:\n    - {backend: openai, endpoint: 'http://a/v1', model: deepseek-v2}\n"
                    "    - {backend: openai, endpoint: 'http://b/v1', model: llama3-70b-instruct}\n")
    s = load_settings(path, environ={})
    assert [j.model for j in s.refine.judges] == ["deepseek-v2", "llama3-70b-instruct"]
    env = load_settings(environ={"TEXTBOOK_REFINE__JUDGES": '[{"backend": "openai", "model": "m"}]'})
    assert env.refine.judges[0].model == "m"
    # the served model changes what the stage produces, the endpoint serving it does not
    moved = s.replace(refine={"judges": [{"backend": "openai", "endpoint": "http://c/v1", "model": "deepseek-v2"},
                                         {"backend": "openai", "endpoint": "http://b/v1",
                                          "model": "llama3-70b-instruct"}]})
    assert moved.section_hash("refine") == s.section_hash("refine")
    other = s.replace(refine={"judges": [{"backend": "openai", "model": "qwen"}]})
    assert other.section_hash("refine") != s.section_hash("refine")
    with pytest.raises(ConfigError, match=r"refine\.judges\[0\]: unknown key\(s\) modle"):
        load_settings(environ={"TEXTBOOK_REFINE__JUDGES": '[{"modle": "m"}]'})


def test_a_tiny_random_judge_is_recorded_unparseable_after_one_retry(tiny_llm):
    from textbook import judges

    llm = build("llm", ModelSettings(backend="transformers", model=str(tiny_llm), device="cpu", max_new_tokens=8),
                "refine.judges[0]")
    [verdict] = judges.ask([("tiny", llm)], judges.question("Derivatives", "t", "d", "the derivative"), 5.0)
    assert (verdict.verdict, verdict.scores, len(verdict.answers)) == ("unparseable", None, 2)


def test_transformers_vision_places_images_and_batches(tmp_path):
    from PIL import Image

    from textbook.train.tiny import build_tiny_llava

    folder = build_tiny_llava(tmp_path / "tiny-vlm", ["user: what is on the slide? assistant: a formula"] * 10)
    vlm = build("vlm", ModelSettings(backend="transformers", model=str(folder), device="cpu", batch_size=2,
                                     max_new_tokens=4), "clips.vlm")
    for n, colour in enumerate(("red", "blue")):
        Image.new("RGB", (40, 30), colour).save(tmp_path / f"{n}.png")
    ask = [{"role": "user", "content": [{"type": "text", "text": "what is on the slide?"},
                                        {"type": "image", "path": str(tmp_path / "0.png")}]}]
    two = [{"role": "user", "content": [{"type": "image", "path": str(tmp_path / "0.png")},
                                        {"type": "image", "path": str(tmp_path / "1.png")},
                                        {"type": "text", "text": "compare"}]}]
    assert vlm.prompts([ask])[0] == "<s>user: what is on the slide?<image></s>\n<s>assistant:"
    calls = []
    generate = vlm.model.generate
    vlm.model.generate = lambda **kw: calls.append(tuple(kw["pixel_values"].shape[:1])) or generate(**kw)
    answers = vlm.chat([ask, two, ask])
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    assert calls == [(3,), (1,)]  # batch of two conversations (three images), then one


def test_the_settings_accept_exactly_the_registered_asr_and_ocr_backends():
    """Settings refuse an unknown ASR or OCR name when they load (naming key and file), so their
    choices must be the registry's names."""
    import dataclasses

    from textbook.config import OcrSettings, TranscriptSettings
    from textbook.models import backends

    def choices(cls, name):
        return set(next(f for f in dataclasses.fields(cls) if f.name == name).metadata["rules"]["choices"])

    assert choices(TranscriptSettings, "asr_backend") == set(backends("asr"))
    assert choices(OcrSettings, "backend") == set(backends("ocr"))

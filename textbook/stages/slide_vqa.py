"""Text-rich multi-slide questions for the M4-Instruct view: an LLM reads what consecutive slides
say and writes a question only two or more of them answer (the model-based task of
LLaVA-NeXT-Interleave's multi-image domain, from our own keyframes, OCR and narration).

Windows of ``images_per_item`` consecutive keyframes with on-screen text, from clips that kept their
images (so every image is in the dataset), at most ``max_items`` a video. An answer that cannot be
read is asked once more with the format reminded, then recorded under ``failed``; never faked. With
no LLM configured the stage records why it did not run.
"""

from __future__ import annotations

import re
from typing import Any

from textbook.datasets import m4instruct
from textbook.artifacts import output_key, read_input
from textbook.context import Context
from textbook.llm_json import first_object
from textbook.records import Video
from textbook.stages.base import StageResult, stage, switched_off

PROMPT_VERSION = "slide-vqa-v1"
SYSTEM = (
    "You write questions for a multi-image instruction dataset from consecutive slides of a lecture video. You get "
    "the text read from each slide (by OCR: it may have errors) and what the teacher says. Write one question that "
    "can only be answered by reading at least two of the slides, and its short answer taken from the slides. Refer "
    "to the slides as Image 1, Image 2 and so on. Answer with one JSON object and nothing else: "
    '{"question": "...", "answer": "...", "images": [the numbers of the slides the answer needs]}'
)
REMINDER = ('Your answer could not be read. Answer with only the JSON object {"question": "...", "answer": "...", '
            '"images": [numbers]}, citing at least two slides.')
PLACEHOLDER = re.compile(r"<\s*image\s*>", re.I)  # the view's image token: never inside a model's text


def windows(doc_keyframes: dict[str, Any], doc_ocr: dict[str, Any], doc_visual: dict[str, Any],
            clips: dict[int, dict[str, Any]], size: int, limit: int) -> list[list[dict[str, Any]]]:
    """Non-overlapping runs of ``size`` keyframes with text, in time order, from clips that kept their images."""
    text = {r["key"]: r["text"].strip() for r in doc_ocr["results"]}
    kept = {v["clip_index"] for v in doc_visual["clips"] if v["kept"]}
    slides = [{"key": kf["key"], "text": text[kf["key"]], "clip": c["clip_index"]}
              for c in doc_keyframes["clips"] if c["clip_index"] in kept and c["clip_index"] in clips
              for kf in c["keyframes"] if text.get(kf["key"])]
    return [slides[i:i + size] for i in range(0, len(slides) - size + 1, size)][:limit]


def question(window: list[dict[str, Any]], clips: dict[int, dict[str, Any]]) -> list[dict[str, str]]:
    spoken = " ".join(dict.fromkeys((clips[s["clip"]].get("refined_text") or clips[s["clip"]]["text"]).strip()
                                    for s in window))
    slides = "\n".join(f"Image {k} text: {s['text'][:800]}" for k, s in enumerate(window, start=1))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{slides}\nNarration: {spoken[:2000]}"}]


def parse(answer: str, n: int) -> dict[str, Any] | None:
    """Question, answer and the cited slides (1..n, at least two); None when the answer is not that."""
    obj = first_object(answer)
    if obj is None:
        return None
    q, a, cited = obj.get("question"), obj.get("answer"), obj.get("images")
    if not (isinstance(q, str) and q.strip() and isinstance(a, str) and a.strip() and isinstance(cited, list)):
        return None
    if len(set(cited)) < 2 or not all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= n for k in cited):
        return None
    return {"question": PLACEHOLDER.sub("image", q.strip()), "answer": PLACEHOLDER.sub("image", a.strip()),
            "cites": sorted(set(cited))}


def ask(llm: Any, conversation: list[dict[str, str]], n: int) -> tuple[dict[str, Any] | None, list[str]]:
    answers, messages = [], list(conversation)
    for _ in range(2):
        [answer] = llm.chat([messages])
        answers.append(answer[:2000])
        parsed = parse(answer, n)
        if parsed is not None:
            return parsed, answers
        messages = [*messages, {"role": "assistant", "content": answer}, {"role": "user", "content": REMINDER}]
    return None, answers


@stage("slide_vqa", sections=("slide_vqa",), requires=("clips", "keyframes", "ocr", "visual_filter"),
       network=True, model=True, version=f"1+{PROMPT_VERSION}")
def run(video: Video, ctx: Context) -> StageResult:
    cfg, vid = ctx.settings.slide_vqa, video.video_id
    off = switched_off("slide_vqa", cfg, vid, ctx)
    if off:
        return StageResult(summary={"not_run": off})
    llm = m4instruct.llm_use(ctx.settings).load(ctx)
    if llm is None:
        return StageResult(summary={"not_run": "no LLM configured (slide_vqa.llm.backend: none)"})
    clips = {c["index"]: c for c in read_input(ctx, vid, "clips")["clips"]}
    groups = windows(read_input(ctx, vid, "keyframes"), read_input(ctx, vid, "ocr"),
                     read_input(ctx, vid, "visual_filter"), clips, cfg.images_per_item, cfg.max_items)
    items, failed = [], []
    for n, window in enumerate(groups):
        parsed, answers = ask(llm, question(window, clips), len(window))
        record = {"id": f"{vid}-slide_vqa-{n}", "keys": [s["key"] for s in window], "answers": answers}
        if parsed is None:
            failed.append({**record, "reason": "no readable question in two answers"})
        else:
            items.append({**record, **parsed})
    ref = ctx.store.put_json(output_key(ctx, vid, "slide_vqa", "slide_vqa.json"),
                             {"model": cfg.llm.model, "prompt_version": PROMPT_VERSION, "items": items, "failed": failed})
    return StageResult(artifacts=[ref], summary={"windows": len(groups), "items": len(items), "failed": len(failed)})


STAGE = run

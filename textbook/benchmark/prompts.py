"""Few-shot prompts with demonstration images, and the version hash stored with every score.

``plain`` is the official Idefics/OpenFlamingo format for base checkpoints (no chat template)::

    Instruction: provide an answer to the question. Use the image to answer.
    Image:<image>Question: {q} Answer: {a}
    ...
    Image:<image>Question: {q} Answer:

``llava_chat`` writes USER/ASSISTANT turns (the official LLaVA eval's ``llava_v1`` template).
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass

from textbook.benchmark.data import Item
from textbook.benchmark.tasks import TaskSpec

STYLES = ("plain", "llava_chat")
INSTRUCTION = "Instruction: provide an answer to the question. Use the image to answer.\n"
SYSTEM_V1 = ("A chat between a curious human and an artificial intelligence assistant. The assistant gives "
             "helpful, detailed, and polite answers to the human's questions.")


def question_text(item: Item, spec: TaskSpec) -> str:
    q = item.question
    if item.choices:
        q += "\n" + "\n".join(f"{string.ascii_uppercase[n]}. {c}" for n, c in enumerate(item.choices))
    if spec.ocr and item.ocr_tokens:
        q += "\nReference OCR token: " + ", ".join(item.ocr_tokens)
    if spec.suffix:
        q += spec.suffix if spec.suffix.startswith(".") else "\n" + spec.suffix
    return q


@dataclass(frozen=True)
class Prompt:
    """Text segments between images: ``texts[i]`` precedes ``images[i]``; ``texts[-1]`` ends it."""

    texts: tuple[str, ...]
    images: tuple[str, ...]
    demos: tuple[Item, ...]
    query: Item

    def joined(self, placeholder: str) -> str:
        return "".join(t + (placeholder if i < len(self.images) else "") for i, t in enumerate(self.texts))

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.texts, self.images]).encode()).hexdigest()[:16]


def build_prompt(query: Item, demos: list[Item], spec: TaskSpec, style: str = "plain") -> Prompt:
    if style not in STYLES:
        raise ValueError(f"prompt_style {style!r}: expected one of {', '.join(STYLES)}")
    texts: list[str] = []
    images: list[str] = []
    if style == "plain":
        pending = INSTRUCTION
        for d in demos:
            texts.append(pending + "Image:")
            images.append(str(d.image))
            pending = f"Question: {question_text(d, spec)} Answer: {d.demo_answer}\n"
        texts.append(pending + "Image:")
        images.append(str(query.image))
        texts.append(f"Question: {question_text(query, spec)} Answer:")
    else:
        pending = SYSTEM_V1 + " USER: "
        for d in demos:
            texts.append(pending)
            images.append(str(d.image))
            pending = f"\n{question_text(d, spec)} ASSISTANT: {d.demo_answer}</s>USER: "
        texts.append(pending)
        images.append(str(query.image))
        texts.append(f"\n{question_text(query, spec)} ASSISTANT:")
    return Prompt(tuple(texts), tuple(images), tuple(demos), query)


def prompt_version(spec: TaskSpec, style: str, **settings: object) -> str:
    """A hash of everything that shapes what the model sees and how its answer is read."""
    payload = {"task": spec.__dict__, "style": style, "instruction": INSTRUCTION, "system": SYSTEM_V1, **settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def first_answer(generated: str) -> str:
    """The answer part of a generation: cut where a new Question/Answer/turn begins (OpenFlamingo)."""
    text = generated.strip()
    for stop in ("Question", "Answer:", "USER:", "\n"):
        text = text.split(stop)[0]
    return text.strip()

"""Reading keyframes with a vision-language model, and optionally scoring them, as the paper does with InternVL2.

Tesseract reads printed lines but not formulas; the paper asks a VLM for the frame's text,
symbols and formulas. The prompt asks for plain text, one line per line of the frame, formulas in
LaTeX; fences and "no text" answers are cleaned to the empty string, so the OCR stage's dedup
against the previous keyframe sees lines as it does with tesseract.

With ``ocr.score_keyframes`` the same call also rates the keyframe (one image encode per keyframe,
not two): the answer's first line is a JSON object ``{"quality": 1-5, "issues": [...]}`` and the text
follows it. The text is kept outside the JSON on purpose: inside a JSON string a formula's
``\\nabla`` or ``\\frac`` would decode as a newline or a form feed. An answer without a valid score
is asked once more, then recorded ``unparseable`` and the keyframe kept, its text the second
answer's lines (never silently passed or dropped).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

from textbook.config import OcrSettings
from textbook.models.registry import BackendError

# Recorded in ocr.json and the card. Not in the stage's fingerprint (that would re-run tesseract corpora
# too): a changed prompt ships with a new version here and a bump of the ocr stage's version.
PROMPT_VERSION = "vlm-ocr-v1"
TEXT_PROMPT = (
    "Transcribe all the text visible in this video frame: titles, bullet points, labels, tables, symbols and "
    "formulas. Write every formula or equation in LaTeX between $ signs. Keep one line of the frame per line. "
    "Leave out slide numbers, logos and video player controls. Answer with the transcription only, no comments; "
    "if the frame has no text, answer with nothing.")
SCORE_PROMPT = (
    "Rate this video frame as an image for a textbook, then transcribe it.\n"
    'First line: a JSON object {"quality": Q, "issues": [...]} where Q is 1 to 5 (5: clear instructional '
    "content such as a slide, board, diagram or worked example; 1: nothing to learn from) and issues lists any of "
    '"occluded" (a person, window or cursor covers the content), "low_information" (blank, transition, title '
    'card, only the speaker), "blurry".\n'
    "Then, on the next lines: " + TEXT_PROMPT)
ISSUES = ("occluded", "low_information", "blurry")
_FENCE = re.compile(r"^\s*```[\w-]*\s*$")
_NO_TEXT = re.compile(r"(?:(?:there is|there's|the (?:image|frame) (?:has|contains)) )?"
                      r"(?:no|none)(?: visible| readable)?(?: text)?(?: (?:is )?(?:visible|found|present|detected))?"
                      r"(?: in (?:the|this) (?:image|frame))?|n/?a|empty|\(no text\)|\[no text\]")


class Vlm(Protocol):
    def chat(self, conversations: Sequence[Sequence[dict[str, Any]]],
             max_new_tokens: int | None = None) -> list[str]: ...


@dataclass(frozen=True)
class Reading:
    """What the VLM read on one keyframe, and its score when asked for one."""

    lines: list[str]
    quality: int | None = None  # 1-5; None: not scored, or unparseable
    issues: tuple[str, ...] = ()
    scoring: str = ""  # "": not asked; "scored"; "unparseable" (two answers without a valid score)


def conversation(image: Path, prompt: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image", "path": str(image)}, {"type": "text", "text": prompt}]}]


def text_lines(answer: str) -> list[str]:
    """The answer's non-empty lines without code fences; a "no text" style answer is no line."""
    lines = [line.strip() for line in answer.splitlines() if line.strip() and not _FENCE.match(line)]
    if len(lines) == 1 and _NO_TEXT.fullmatch(lines[0].lower().strip(" .!")):
        return []
    return lines


def _score(line: str) -> tuple[int, tuple[str, ...]] | None:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    quality, issues = obj.get("quality"), obj.get("issues", [])
    if isinstance(quality, bool) or not isinstance(quality, (int, float)) or quality != int(quality) \
            or not 1 <= quality <= 5:
        return None
    if not isinstance(issues, list) or not all(isinstance(i, str) for i in issues):
        return None
    return int(quality), tuple(i.strip().lower() for i in issues)


def scored(answer: str) -> Reading | None:
    """The score line (the first line that is a valid score object) and the text around it; None without one."""
    lines = text_lines(answer)
    for i, line in enumerate(lines):
        found = _score(line)
        if found is not None:
            rest = "\n".join(lines[:i] + lines[i + 1:])
            return Reading(text_lines(rest), found[0], found[1], "scored")
    return None


class VlmOcr:
    """The ``vlm`` OCR backend: the prompt and the answers' parsing; the model itself is loaded by the
    stage through the registry (``ocr.vlm``), so the model server builds it once for every stage."""

    def __init__(self, cfg: OcrSettings) -> None:
        if cfg.vlm.backend == "none":
            raise BackendError("ocr.backend 'vlm' needs ocr.vlm.backend (openai: an OpenAI-compatible server "
                               "such as vLLM serving InternVL2; transformers: a local model folder)")
        self.cfg = cfg

    @property
    def prompt(self) -> str:
        return SCORE_PROMPT if self.cfg.score_keyframes else TEXT_PROMPT

    def _ask(self, vlm: Vlm, images: Sequence[Path]) -> list[str]:
        answers = vlm.chat([conversation(p, self.prompt) for p in images], self.cfg.vlm.max_new_tokens)
        if len(answers) != len(images):
            raise BackendError(f"ocr.vlm: {len(answers)} answers for {len(images)} keyframes")
        return answers

    def read(self, vlm: Vlm, images: Sequence[Path]) -> list[Reading]:
        """One reading per image; with scoring, unparseable answers asked once more."""
        answers = self._ask(vlm, images)
        if not self.cfg.score_keyframes:
            return [Reading(text_lines(a)) for a in answers]
        first = [scored(a) for a in answers]
        retry = [i for i, r in enumerate(first) if r is None]
        again = dict(zip(retry, self._ask(vlm, [images[i] for i in retry]))) if retry else {}
        return [r if r is not None else scored(again[i]) or Reading(text_lines(again[i]), scoring="unparseable")
                for i, r in enumerate(first)]

"""The paper's LLM metadata filter: before anything is downloaded, an LLM reads a search result's
title, channel and description and says whether it teaches the knowledge point and whether it is
unsafe for a school textbook.

The answer is one JSON object; an answer that cannot be read is asked once more with the format
reminded, then recorded as ``unparseable``. An unparseable verdict keeps the video (the rules after
download still judge it) and the record says so: it is never counted as a pass the LLM gave.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from textbook.llm_json import first_object

PROMPT_VERSION = "metadata-v1"  # bump with any change to the prompts below: it is in the stage's version
SYSTEM = (
    "You screen search results for a school textbook built from instructional videos, before any video is "
    "downloaded. From the title, channel and description decide two things: relevant (the video most likely "
    "teaches the knowledge point: false for unrelated topics, entertainment, advertisements, vlogs) and unsafe "
    "(violence, sexual content, hate, self-harm, or anything unfit for primary and middle-school pupils). "
    'Answer with one JSON object and nothing else: {"relevant": true|false, "unsafe": true|false, '
    '"reason": "one sentence"}'
)
REMINDER = ('Your answer could not be read. Answer with only the JSON object '
            '{"relevant": true|false, "unsafe": true|false, "reason": "..."}.')
MAX_ANSWER_CHARS = 2000  # a rambling answer is stored cut to this
MAX_DESCRIPTION_CHARS = 1500


@dataclass
class MetadataVerdict:
    model: str
    answers: list[str]  # every raw answer, in order (two when the first was unreadable)
    relevant: bool | None  # None: unparseable
    unsafe: bool | None
    reason: str
    verdict: str  # keep | reject | unparseable
    prompt_version: str = PROMPT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse(answer: str) -> tuple[bool, bool, str] | None:
    """(relevant, unsafe, reason) from an answer; None unless both flags are JSON booleans."""
    obj = first_object(answer)
    if obj is None or not all(isinstance(obj.get(k), bool) for k in ("relevant", "unsafe")):
        return None
    return obj["relevant"], obj["unsafe"], str(obj.get("reason") or "")


def question(knowledge_point: str, title: str, channel: str, description: str) -> list[dict[str, Any]]:
    user = (f"Knowledge point: {knowledge_point}\nTitle: {title}\nChannel: {channel or '(unknown)'}\n"
            f"Description: {(description or '(none)')[:MAX_DESCRIPTION_CHARS]}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def ask(model: str, llm: Any, conversation: list[dict[str, Any]]) -> MetadataVerdict:
    """The LLM's verdict; an unreadable answer is asked once more with the format reminded."""
    answers: list[str] = []
    messages = list(conversation)
    for _ in range(2):
        [answer] = llm.chat([messages])
        answers.append(answer[:MAX_ANSWER_CHARS])
        parsed = parse(answer)
        if parsed is not None:
            relevant, unsafe, reason = parsed
            verdict = "keep" if relevant and not unsafe else "reject"
            return MetadataVerdict(model, answers, relevant, unsafe, reason, verdict)
        messages = [*messages, {"role": "assistant", "content": answer}, {"role": "user", "content": REMINDER}]
    return MetadataVerdict(model, answers, None, None, "no readable verdict in two answers", "unparseable")


def verdict_reason(v: MetadataVerdict) -> str:
    """The one line the video's record gives for the LLM's verdict."""
    if v.verdict == "unparseable":
        return f"{v.model}: unparseable answer, kept for the filters after download"
    why = [w for w, on in (("not relevant to the knowledge point", v.relevant is False),
                           ("unsafe", bool(v.unsafe))) if on]
    head = ", ".join(why) if why else "relevant and safe"
    return f"{v.model}: {head}" + (f" ({v.reason})" if v.reason else "")

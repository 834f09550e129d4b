"""The paper's video scoring: several LLM judges rate each video, and a rule combines their verdicts.

Each judge rates relevance to the knowledge point, knowledge density and transcription quality
from 0 to 10 under a versioned prompt, and rejects the video when a criterion is under the
threshold. An answer that cannot be read is asked once more with a reminder of the format, then
recorded as ``unparseable``: it never counts as a pass or a rejection, and the record shows it.
Rules: ``all_reject`` (the paper: drop only when every judge rejects) or ``any_reject``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from textbook.llm_json import first_object

PROMPT_VERSION = "judge-v1"  # bump with any change to the prompts below: it is in the stage's version
CRITERIA = ("relevance", "knowledge_density", "transcription_quality")
SYSTEM = (
    "You judge videos as material for a school textbook on one knowledge point. Rate the video from 0 to 10 "
    "on three criteria: relevance (how directly it teaches the knowledge point), knowledge_density (how much "
    "teaching per minute: 0 for chatter, advertisements or vlogs) and transcription_quality (how readable and "
    "correct the transcript is). Answer with one JSON object and nothing else: "
    '{"relevance": N, "knowledge_density": N, "transcription_quality": N, "reason": "one sentence"}'
)
REMINDER = ("Your answer could not be read. Answer with only the JSON object "
            '{"relevance": N, "knowledge_density": N, "transcription_quality": N, "reason": "..."}, N from 0 to 10.')
MAX_ANSWER_CHARS = 4000  # a rambling answer is stored cut to this


@dataclass
class JudgeVerdict:
    judge: str  # the judge's model, as the records name it
    answers: list[str]  # every raw answer, in order (two when the first was unreadable)
    scores: dict[str, float] | None  # None: unparseable
    reason: str
    verdict: str  # keep | reject | unparseable
    prompt_version: str = PROMPT_VERSION

    @property
    def score(self) -> float | None:
        """The lowest criterion: what the threshold is compared with."""
        return min(self.scores.values()) if self.scores else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "score": self.score}


@dataclass
class Decision:
    drop: bool
    score: float | None  # the deciding judge's lowest criterion; None when no judge answered usably
    reason: str
    judges: list[JudgeVerdict] = field(default_factory=list)


def parse(answer: str) -> tuple[dict[str, float], str] | None:
    """The three scores and the reason from a judge's answer; None when it does not hold all three in 0-10."""
    obj = first_object(answer)
    if obj is None:
        return None
    scores = {}
    for name in CRITERIA:
        value = obj.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not 0 <= value <= 10:
            return None
        scores[name] = float(value)
    return scores, str(obj.get("reason") or "")


def question(knowledge_point: str, title: str, description: str, transcript: str) -> list[dict[str, Any]]:
    user = (f"Knowledge point: {knowledge_point}\nTitle: {title}\nDescription: {description[:1000]}\n"
            f"Transcript: {transcript[:4000]}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def ask(judges: Sequence[tuple[str, Any]], conversation: list[dict[str, Any]], min_score: float) -> list[JudgeVerdict]:
    """Each judge's verdict; an unreadable answer is asked once more with the format reminded."""
    out = []
    for name, llm in judges:
        answers: list[str] = []
        messages = list(conversation)
        parsed = None
        for _ in range(2):
            [answer] = llm.chat([messages])
            answers.append(answer[:MAX_ANSWER_CHARS])
            parsed = parse(answer)
            if parsed is not None:
                break
            messages = [*messages, {"role": "assistant", "content": answer}, {"role": "user", "content": REMINDER}]
        if parsed is None:
            out.append(JudgeVerdict(name, answers, None, "no readable scores in two answers", "unparseable"))
            continue
        scores, reason = parsed
        verdict = "reject" if min(scores.values()) < min_score else "keep"
        out.append(JudgeVerdict(name, answers, scores, reason, verdict))
    return out


def combine(verdicts: list[JudgeVerdict], rule: str, min_score: float) -> Decision:
    """Drop under ``all_reject`` when every judge rejected, under ``any_reject`` when one did."""
    rejected = [v for v in verdicts if v.verdict == "reject"]
    scored = [v.score for v in verdicts if v.score is not None]
    unreadable = sum(v.verdict == "unparseable" for v in verdicts)
    drop = bool(verdicts) and len(rejected) == len(verdicts) if rule == "all_reject" else bool(rejected)
    score = (max(scored) if rule == "all_reject" else min(scored)) if scored else None
    tally = f"{len(rejected)} of {len(verdicts)} judges rejected (a criterion under {min_score:g})"
    if unreadable:
        tally += f", {unreadable} unparseable"
    reason = f"{tally}; rule {rule}" + (": dropped" if drop else ": kept")
    return Decision(drop, score, reason, verdicts)

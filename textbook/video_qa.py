"""LLaVA-Video-178K's question generation from a level-3 caption: 16 types, two variants, the release's filters.

One text-only call per (type, variant) holds the type's definition, three in-context examples and the
caption, and must answer the paper's JSON contract ``[{"Dimension", "Question", "Answer"}]`` or
``None`` when the caption cannot support that type. Answers the release filters out ("does not
mention …") are dropped, multiple-choice letters are checked against the options, and questions
closer than ``threshold`` (MiniLM cosine) to an earlier one are removed.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

import numpy as np

PROMPT_VERSION = "1"
VARIANTS = ("oe", "mc")

TYPES = {  # the paper's Table 5 names, with our one-line definitions
    "Temporal": "when something happens relative to other events",
    "Spatial": "where things are relative to each other",
    "Causal": "why something happens or what it leads to",
    "Description-Scene": "the setting and overall scene",
    "Description-Human": "the appearance or actions of a person",
    "Description-Object": "the appearance of an object",
    "Count": "how many of something appear or happen",
    "Binary": "a yes/no question about the video",
    "Fine-Grained Action": "the precise manner of an action",
    "Plot": "the overall storyline or purpose of the video",
    "Non-Existent Actions with Existent Scene": "an action that does not happen in a scene that does exist",
    "Time Order": "the order in which events happen",
    "Object Direction": "the direction an object moves",
    "Camera Direction": "how the camera moves",
    "Speed": "how fast something moves or changes",
    "Attribute Change": "how a property of something changes over the video",
}

EXAMPLES = {  # three short demonstrations per variant, shared across types unless a pool is given
    "oe": [("Count", "How many slides are shown?", "Three slides are shown."),
           ("Temporal", "What appears after the title slide?", "A diagram of the cell appears."),
           ("Binary", "Does the presenter write on the board?", "Yes, she writes an equation.")],
    "mc": [("Count", "How many slides are shown?\nA. One\nB. Two\nC. Three\nD. Four", "C"),
           ("Temporal", "What appears after the title slide?\nA. A diagram\nB. A quiz\nC. Credits\nD. A map", "A"),
           ("Binary", "Does the presenter write on the board?\nA. Yes\nB. No", "A")],
}

FILTERED = re.compile(r"^\s*(the (video|caption) )?does not (specify|mention|specifically|depict|show)", re.I)


def prompt(kind: str, variant: str, caption: str, examples: Sequence[tuple[str, str, str]] | None = None) -> str:
    if kind not in TYPES or variant not in VARIANTS:
        raise ValueError(f"video QA: unknown question type {kind!r} or variant {variant!r}")
    demos = examples or EXAMPLES[variant]
    form = ("a multiple-choice question with lettered options, answered by the letter" if variant == "mc"
            else "an open-ended question with a short answer")
    shots = json.dumps([{"Dimension": d, "Question": q, "Answer": a} for d, q, a in demos])
    return (f"Write {form} of type {kind}: {TYPES[kind]}. Use only the description. Reply with JSON "
            f'[{{"Dimension", "Question", "Answer"}}], or None if the description cannot support one.\n'
            f"Examples: {shots}\nDescription: {caption}")


def parse(answer: str, kind: str, variant: str) -> list[dict[str, str]]:
    """The pairs of one answer; [] for ``None``; ValueError naming the type when it is neither."""
    text = answer.strip().strip("`").removeprefix("json").strip()
    if text in ("None", "null", ""):
        return []
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"video QA {kind}/{variant}: the answer is neither JSON nor None: {text[:80]!r}") from None
    items = items if isinstance(items, list) else [items]
    out = []
    for item in items:
        if not isinstance(item, dict) or not {"Question", "Answer"} <= item.keys():
            raise ValueError(f"video QA {kind}/{variant}: a pair lacks Question/Answer: {str(item)[:80]}")
        pair = {"type": kind, "variant": variant, "question": str(item["Question"]).strip(),
                "answer": str(item["Answer"]).strip()}
        if keep(pair):
            out.append(pair)
    return out


def keep(pair: dict[str, str]) -> bool:
    """The release's answer filter, and for multiple choice an answer letter among the options."""
    if FILTERED.match(pair["answer"]):
        return False
    if pair["variant"] == "mc":
        letters = set(re.findall(r"^\s*([A-Z])[.)]", pair["question"], re.M))
        match = re.match(r"^\s*\(?([A-Z])\b", pair["answer"])
        return bool(match and match.group(1) in letters)
    return True


def dedup(pairs: list[dict[str, str]], embedder: Any, threshold: float = 0.9) -> list[dict[str, str]]:
    """Drop each question within ``threshold`` cosine of a kept one of the same variant."""
    kept: list[dict[str, str]] = []
    vectors: dict[str, list[np.ndarray]] = {}
    for pair, vec in zip(pairs, embedder.encode([p["question"] for p in pairs]) if pairs else []):
        seen = vectors.setdefault(pair["variant"], [])
        if seen and float(np.max(np.stack(seen) @ vec)) >= threshold:
            continue
        seen.append(vec)
        kept.append(pair)
    return kept


def generate(caption: str, llm: Any, embedder: Any, threshold: float = 0.9) -> list[dict[str, str]]:
    """All kept pairs for one level-3 caption: one call per type and variant."""
    jobs = [(kind, variant) for variant in VARIANTS for kind in TYPES]
    answers = llm.chat([[{"role": "user", "content": prompt(k, v, caption)}] for k, v in jobs])
    pairs = [p for (k, v), a in zip(jobs, answers) for p in parse(a, k, v)]
    return dedup(pairs, embedder, threshold)

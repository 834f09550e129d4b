"""Transcript refinement by an LLM: numbered lines in, the same numbered lines cleaned out.

Whatever chat backend the settings name (textbook.models) does the work; the lines go in chunks
so a prompt stays small, and all chunks go to the backend at once so a local model batches them.
A line the model dropped or left empty keeps its original text rather than vanishing. The drift
guard (textbook.drift) then judges each changed line.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

PROMPT_VERSION = "refine-v1"  # bump with any change to the prompts below: it is in the stage's version
SYSTEM = (
    "You clean up speech transcripts of lectures. Each input line is 'N: text'. Fix recognition errors, "
    "punctuation and casing, remove filler words, keep the meaning and the speaker's words otherwise. Answer "
    "with exactly the same numbered lines, 'N: cleaned text', one per input line, nothing else."
)
CHUNK = 40  # lines per prompt


def conversations(lines: Sequence[str]) -> list[list[dict[str, Any]]]:
    return [[{"role": "system", "content": SYSTEM},
             {"role": "user", "content": "\n".join(f"{n}: {t}" for n, t in enumerate(lines[i:i + CHUNK]))}]
            for i in range(0, len(lines), CHUNK)]


def parse(answer: str, chunk: Sequence[str]) -> list[str]:
    got = dict(re.findall(r"^\s*(\d+):\s*(.*)$", answer, re.M))
    return [got.get(str(n), "").strip() or t for n, t in enumerate(chunk)]


def refine_lines(llm: Any, lines: Sequence[str]) -> list[str]:
    """Each line cleaned by ``llm`` (a textbook.models chat backend), in order."""
    answers = llm.chat(conversations(lines))
    out: list[str] = []
    for k, answer in enumerate(answers):
        out += parse(answer, lines[k * CHUNK:(k + 1) * CHUNK])
    return out

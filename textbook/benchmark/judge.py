"""An optional LLM judge for the math columns, over an OpenAI-compatible endpoint.

The official prompt's shape ("Predicted Answer / Choice / Labeled Answer", reply ``###judge:
True|False``) but at temperature 0 (the official uses 0.2) and with a verdict cache keyed by
(judge model, prompt version, prediction, gold, choices), so re-scoring is free and reproducible.
An unparseable reply is retried once, then counted as judge-failed: never as correct.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from textbook.models.openai import chat

JUDGE_PROMPT_VERSION = "judge-v1"
JUDGE_PROMPT = (
    "You are checking a student's answer to a math question against the labeled answer. Decide whether "
    "the predicted answer means the same as the labeled answer (same value, or the same choice).\n"
    "Predicted Answer: {pred}\nChoice: {choices}\nLabeled Answer: {gold}\n"
    "Please output you judgement as '###judge: True' or '###judge: False'.")
_VERDICT = re.compile(r"###judge:\s*(True|False)", re.IGNORECASE)


class Judge:
    def __init__(self, endpoint: str, model: str, cache_file: Path, api_key_env: str = "OPENAI_API_KEY") -> None:
        self.endpoint, self.model, self.api_key_env = endpoint, model, api_key_env
        self.cache_file = cache_file
        self.cache: dict[str, bool | None] = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
        self.calls = 0

    @property
    def scorer(self) -> str:
        return f"judge:{self.model}"

    def verdict(self, prediction: str, gold: str, choices: tuple[str, ...] | None) -> bool | None:
        """True/False, or None when the judge's reply could not be read twice."""
        key = hashlib.sha256(json.dumps([self.model, JUDGE_PROMPT_VERSION, prediction, gold, choices]).encode()
                             ).hexdigest()
        if key in self.cache:
            return self.cache[key]
        prompt = JUDGE_PROMPT.format(pred=prediction, gold=gold, choices="; ".join(choices or ()) or "none")
        result = None
        for _ in range(2):
            self.calls += 1
            reply = chat(self.endpoint, self.model, [{"role": "user", "content": prompt}], max_tokens=32,
                         api_key_env=self.api_key_env)
            m = _VERDICT.search(reply)
            if m:
                result = m.group(1).lower() == "true"
                break
        self.cache[key] = result
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        self.cache_file.write_text(json.dumps(self.cache, sort_keys=True))
        return result

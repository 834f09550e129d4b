"""LLM backends that score a video's educational value and refine its transcript.

``none`` is the offline default and says so: it scores nothing and leaves the text as transcribed
(FORMAT.md: ``refined_asr`` equals ``asr`` where no refinement ran). ``openai`` talks to any
OpenAI-compatible endpoint (vLLM, TGI, llama.cpp server, OpenAI itself).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Protocol

from textbook.config import RefineSettings

SCORE_PROMPT = (
    "You rate videos as material for a textbook. Given the title, description and transcript excerpt of "
    "a video, answer with one line 'score: N' (N from 0 to 10: 10 = clear instructional content on the topic, "
    "0 = advertisement, vlog or no teaching) followed by one line 'reason: ...'."
)
REFINE_PROMPT = (
    "You clean up speech transcripts of lectures. Each input line is 'N: text'. Fix recognition errors, "
    "punctuation and casing, remove filler words, keep the meaning and the speaker's words otherwise. Answer "
    "with exactly the same numbered lines, 'N: cleaned text', one per input line, nothing else."
)


class RefineError(RuntimeError):
    """The LLM endpoint failed or answered in a shape we cannot use."""


@dataclass
class Score:
    value: float | None
    reason: str


class Refiner(Protocol):
    name: str

    def score(self, title: str, description: str, transcript: str) -> Score: ...

    def refine(self, lines: list[str]) -> list[str]: ...


class NoRefiner:
    """No LLM configured: no score, text unchanged, and the records say 'none'."""

    name = "none"

    def score(self, title: str, description: str, transcript: str) -> Score:
        return Score(None, "no LLM configured (refine.backend: none)")

    def refine(self, lines: list[str]) -> list[str]:
        return list(lines)


class OpenAIRefiner:
    """Chat completions over HTTP; batches transcript lines to keep requests small."""

    name = "openai"
    batch = 40

    def __init__(self, cfg: RefineSettings) -> None:
        if not cfg.endpoint or not cfg.model:
            raise RefineError("refine.backend 'openai' needs refine.endpoint and refine.model")
        self.cfg = cfg
        self.api_key = os.environ.get(cfg.api_key_env, "")

    def _chat(self, system: str, user: str) -> str:
        body = json.dumps({"model": self.cfg.model, "temperature": 0,
                           "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]})
        req = urllib.request.Request(self.cfg.endpoint.rstrip("/") + "/chat/completions", data=body.encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})})
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout) as resp:
                payload = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise RefineError(f"LLM endpoint {self.cfg.endpoint}: HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError) as exc:
            raise RefineError(f"LLM endpoint {self.cfg.endpoint} unreachable: {exc}") from None
        try:
            return payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise RefineError(f"LLM endpoint {self.cfg.endpoint}: unexpected answer {str(payload)[:200]}") from None

    def score(self, title: str, description: str, transcript: str) -> Score:
        answer = self._chat(SCORE_PROMPT, f"Title: {title}\nDescription: {description[:1000]}\n"
                                          f"Transcript: {transcript[:4000]}")
        m = re.search(r"score:\s*(\d+(?:\.\d+)?)", answer, re.I)
        if not m:
            raise RefineError(f"LLM score answer has no 'score: N': {answer[:200]!r}")
        reason = re.search(r"reason:\s*(.+)", answer, re.I)
        return Score(float(m.group(1)), reason.group(1).strip() if reason else "")

    def refine(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        for i in range(0, len(lines), self.batch):
            chunk = lines[i:i + self.batch]
            answer = self._chat(REFINE_PROMPT, "\n".join(f"{n}: {t}" for n, t in enumerate(chunk)))
            got = dict(re.findall(r"^\s*(\d+):\s*(.*)$", answer, re.M))
            # A line the model dropped keeps its original text rather than vanishing.
            out += [got.get(str(n), t).strip() or t for n, t in enumerate(chunk)]
        return out


def get_refiner(cfg: RefineSettings) -> Refiner:
    if cfg.backend == "none":
        return NoRefiner()
    if cfg.backend == "openai":
        return OpenAIRefiner(cfg)
    raise RefineError(f"refine.backend: unknown backend {cfg.backend!r} (expected none or openai)")

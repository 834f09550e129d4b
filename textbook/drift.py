"""The drift guard: a refined segment must still say what the speaker said.

A refinement that fixes recognition errors, punctuation and fillers keeps the sentence's meaning
(high embedding cosine with the original), most of its content words, and adds few of its own.
One that states other claims, talks to the user instead of cleaning the text, or appends invented
facts fails one of the three tests, and the segment keeps its original text.

Measured with the packaged all-MiniLM-L6-v2 on 16 faithful clean-ups (recognition fixes such as
"sign x is cause x" -> "sin x is cos x", fillers, repeats, punctuation, numbers as digits) and
16 drifted ones (other facts on the same topic, chat-assistant replies, outros, original kept
with invented sentences appended), all in tests/test_drift.py:

==========================  ==============  ==============  =========
measure                     faithful        drifted         threshold
==========================  ==============  ==============  =========
cosine                      0.68 - 0.98     -0.04 - 0.79    0.6 (min)
content words kept          0.43 - 1.00     0.00 - 1.00     0.4 (min)
content words added         0.00 - 0.40     0.58 - 1.00     0.5 (max)
==========================  ==============  ==============  =========

Cosine alone misses appended inventions (0.71-0.79: the original sentence is still there); the
share of added words catches them. The kept-words margin is narrow (0.38 drifted, 0.43 faithful):
a false rejection only costs that segment its clean-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

# Filler and function words: removing them is what a refinement is for, so they do not count.
STOPWORDS = frozenset("""
a an the and or but if so then than that this these those there here of to in on at by for with from as
is are was were be been being am do does did have has had it its it's we our us you your i me my he she
they them their his her what which who whom how when where why not no yes just very really also can
could would should will shall may might must about into over under up down out uh um uhm er erm ah oh
okay ok like well right yeah you know kind sort gonna wanna let's lets
""".split())


def content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOPWORDS]


def kept_share(original: str, refined: str) -> float:
    """Share of the original's distinct content words still present in the refinement (1.0 if none)."""
    before = set(content_words(original))
    return len(before & set(content_words(refined))) / len(before) if before else 1.0


def added_share(original: str, refined: str) -> float:
    """Share of the refinement's content words (with repeats) the original did not have (0.0 if none)."""
    before, after = set(content_words(original)), content_words(refined)
    return sum(w not in before for w in after) / len(after) if after else 0.0


@dataclass(frozen=True)
class Thresholds:
    min_cosine: float
    min_kept: float
    max_added: float


@dataclass
class DriftCheck:
    segment: int
    cosine: float
    kept_words: float
    added_words: float
    rejected: bool

    def to_dict(self) -> dict[str, Any]:
        return {"segment": self.segment, "cosine": round(self.cosine, 4), "kept_words": round(self.kept_words, 4),
                "added_words": round(self.added_words, 4), "rejected": self.rejected}


def guard(embedder: Any, originals: Sequence[str], refined: Sequence[str],
          limits: Thresholds) -> tuple[list[str], list[DriftCheck]]:
    """The texts to keep (the original where the refinement drifted) and a check per changed segment."""
    changed = [i for i, (a, b) in enumerate(zip(originals, refined, strict=True)) if a.strip() != b.strip()]
    out = list(refined)
    if not changed:
        return out, []
    vectors = embedder.encode([originals[i] for i in changed] + [refined[i] for i in changed])
    checks = []
    for n, i in enumerate(changed):
        cosine = float(vectors[n] @ vectors[len(changed) + n])
        kept, added = kept_share(originals[i], refined[i]), added_share(originals[i], refined[i])
        rejected = cosine < limits.min_cosine or kept < limits.min_kept or added > limits.max_added
        if rejected:
            out[i] = originals[i]
        checks.append(DriftCheck(i, cosine, kept, added, rejected))
    return out, checks

"""What each filter's score means: its unit, the setting that is its threshold, and which side passes.

videos.jsonl keeps a verdict's bare score (FORMAT.md section 4); a reader needs "4.6 s, under the
10 s minimum", never "score 4.6" or "score None". Thresholds come from the dataset card's
configuration (the settings the exported videos were made with), so they are those really applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    unit: str  # the score's unit, as shown after a number ("" for a bare number)
    quantity: str  # what the score measures
    setting: tuple[str, str] | None  # (section, key) of the threshold in the settings
    passes_above: bool  # True: a score at or above the threshold passes


RULES: dict[str, Rule] = {
    "too_short": Rule("s", "duration", ("filters", "min_duration"), True),
    "silent": Rule("dBFS", "mean loudness", ("filters", "silence_dbfs"), True),
    "not_english": Rule("", "English confidence (0-1)", ("filters", "english_min_confidence"), True),
    "transcript_quality": Rule("", "mean log-probability of the ASR", ("filters", "min_avg_logprob"), True),
    "repetitive": Rule("", "share of repeated word 3-grams (0-1)", ("filters", "max_repetition"), False),
    "metadata_duration": Rule("s", "listed duration", ("search", "min_duration"), True),
    "metadata_language": Rule("", "listed language", None, True),
    "metadata_llm": Rule("", "LLM on title and description", None, True),
    "llm_judges": Rule("", "deciding LLM judge's lowest criterion (0-10)", ("refine", "min_score"), True),
}
UNKNOWN = Rule("", "score", None, True)


def rule(name: str) -> Rule:
    return RULES.get(name, UNKNOWN)


def threshold(name: str, config: dict[str, Any]) -> float | None:
    """The threshold the videos were filtered with; None when unknown or when videos differed on it."""
    setting = rule(name).setting
    section = config.get(setting[0]) if setting else None
    value = section.get(setting[1]) if isinstance(section, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def number(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def value_text(name: str, score: Any) -> str:
    """A verdict's score with its unit ("4.6 s"); "-" for a rule that gives none."""
    if not isinstance(score, (int, float)) or isinstance(score, bool):
        return "-"
    return f"{number(score)} {rule(name).unit}".strip()


def threshold_text(name: str, config: dict[str, Any]) -> str:
    """"min 10 s", "max 0.5"; "-" when the threshold is unknown."""
    limit, r = threshold(name, config), rule(name)
    if limit is None:
        return "-"
    return f"{'min' if r.passes_above else 'max'} {number(limit)} {r.unit}".strip()


def score_text(name: str, score: Any, config: dict[str, Any]) -> str:
    """Score and threshold together: "4.6 s (min 10 s)"."""
    value, limit = value_text(name, score), threshold_text(name, config)
    return value if value == "-" or limit == "-" else f"{value} ({limit})"


def scores(videos: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Every numeric score per filter name, over all videos (kept or not), names sorted."""
    out: dict[str, list[float]] = {}
    for video in videos:
        for v in video.get("verdicts") or []:
            score = v.get("score")
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                out.setdefault(str(v.get("name")), []).append(float(score))
    return dict(sorted(out.items()))

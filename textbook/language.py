"""Which language a transcript is in, with lingua (its n-gram models ship inside the wheel).

Restricted to widely spoken languages in low-accuracy mode: about 0.3 s to load and some 40 MB,
which is plenty for whole transcripts (low accuracy only hurts on a handful of words).
"""

from __future__ import annotations

from functools import lru_cache

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

LANGUAGES = (
    Language.ENGLISH, Language.SPANISH, Language.FRENCH, Language.GERMAN, Language.PORTUGUESE,
    Language.ITALIAN, Language.DUTCH, Language.RUSSIAN, Language.UKRAINIAN, Language.POLISH,
    Language.TURKISH, Language.ARABIC, Language.HINDI, Language.BENGALI, Language.URDU, Language.PERSIAN,
    Language.INDONESIAN, Language.MALAY, Language.VIETNAMESE, Language.THAI, Language.CHINESE,
    Language.JAPANESE, Language.KOREAN, Language.TAGALOG, Language.SWAHILI,
)


@lru_cache(maxsize=1)
def detector() -> LanguageDetector:
    """Built once per process."""
    return (LanguageDetectorBuilder.from_languages(*LANGUAGES)
            .with_low_accuracy_mode().with_preloaded_language_models().build())


def scores(text: str) -> dict[str, float]:
    """ISO 639-1 code -> confidence (summing to 1), best first; empty when the text has no letters."""
    values = detector().compute_language_confidence_values(text) if any(c.isalpha() for c in text) else []
    return {v.language.iso_code_639_1.name.lower(): float(v.value) for v in values}


def detect(text: str) -> tuple[str, float]:
    """The most likely language of ``text`` and its confidence; ``("", 0.0)`` when it cannot tell."""
    best = next(iter(scores(text).items()), None)
    return best if best is not None and best[1] > 0 else ("", 0.0)

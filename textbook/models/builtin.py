"""The backends that existed before the registry (ASR, tesseract) and the offline "no model"."""

from __future__ import annotations

from typing import Any

from textbook.models.registry import register


@register("asr", "faster_whisper", about="CTranslate2 Whisper; default the packaged tiny.en, offline")
def faster_whisper(cfg: Any):  # noqa: ANN201 - cfg: TranscriptSettings
    from textbook.transcript.asr.faster_whisper import FasterWhisperAsr

    return FasterWhisperAsr(cfg.asr_model, cfg.device, cfg.compute_type)


@register("asr", "whisperx", about="whisperx with forced alignment (GPU worker image)")
def whisperx(cfg: Any):  # noqa: ANN201
    from textbook.transcript.asr.whisperx import WhisperxAsr

    return WhisperxAsr(cfg.asr_model, cfg.device, cfg.compute_type)


@register("ocr", "tesseract", about="tesseract, offline")
def tesseract(cfg: Any):  # noqa: ANN201 - cfg: OcrSettings
    from textbook.stages.ocr import Tesseract

    return Tesseract(cfg.language, cfg.threads)


@register("ocr", "vlm", about="a VLM (ocr.vlm: openai or transformers; the paper's InternVL2) reads text, symbols "
                              "and formulas as LaTeX, and can score keyframes (ocr.score_keyframes)")
def vlm_ocr(cfg: Any):  # noqa: ANN201 - cfg: OcrSettings
    from textbook.vlm_ocr import VlmOcr

    return VlmOcr(cfg)


@register("ocr", "none", about="no OCR: keyframes keep empty text (the paper's Table 6 w/o-OCR ablation), and the "
                               "records say so")
def no_ocr(cfg: Any) -> None:
    return None


@register("llm", "none", about="no model: scoring and refinement are skipped, and the records say so")
def no_llm(cfg: Any) -> None:
    return None

"""Transcripts of a video: parsed from its captions, or recognised from its audio (``asr``)."""


def count_tokens(text: str) -> int:
    """Whitespace-separated words: the token count stage summaries and filters report."""
    return len(text.split())

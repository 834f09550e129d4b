"""Transcripts of a video: parsed from its captions, or recognised from its audio (``asr``)."""

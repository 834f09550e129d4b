"""textbook: instructional videos in, a multimodal (interleaved image-text) textbook out."""

__version__ = "0.1.0"

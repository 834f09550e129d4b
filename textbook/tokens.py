"""Offline token estimates, so sample sizes never depend on downloading a tokenizer.

The count is deterministic and stated in the dataset card: every run of word characters and
every other non-space character is one token. Real subword tokenizers give more tokens for rare
words and fewer for common punctuation runs; the estimate only has to be stable, not exact.
"""

from __future__ import annotations

import re

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")

TOKEN_RULE = (
    "each run of word characters (regex `\\w+`) and each other non-space character "
    "(regex `[^\\w\\s]`) counts as one token"
)


def count_tokens(text: str | None) -> int:
    return len(TOKEN_PATTERN.findall(text)) if text else 0

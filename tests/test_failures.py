"""Failure categories and one-line messages, from the exceptions stages really raise."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from textbook.cli import Terminated
from textbook.failures import CATEGORIES, categorize, one_line
from textbook.media import MediaError
from textbook.sources.ytdlp import classify

YTDLP_500 = ("ERROR: [generic] Unable to download webpage: HTTP Error 500: Internal Server Error "
             "(caused by <HTTPError 500: 'Internal Server Error'>)")


@pytest.mark.parametrize("exc, category", [
    (classify(Exception(YTDLP_500)), "network"),
    (classify(Exception("ERROR: [youtube] x: Sign in to confirm your age")), "sign_in_required"),
    (classify(Exception("ERROR: HTTP Error 429: Too Many Requests")), "rate_limited"),
    (classify(Exception("ERROR: [youtube] x: Video unavailable")), "unavailable"),
    (classify(Exception("ERROR: Read timed out.")), "timeout"),
    (MediaError("truncated: 45.8 of 125.6 s decodable (a.mp4)"), "truncated"),
    (MediaError("a.mp4: not a readable media file (moov atom not found)"), "corrupt"),
    (OperationalError("SELECT 1", {}, Exception("connection refused")), "database"),
    (OSError(28, "No space left on device"), "storage"),
    (Terminated(15), "terminated"),
    (ValueError("something odd"), "error"),
])
def test_each_failure_gets_a_category_with_advice(exc, category):
    assert categorize(exc) == category and CATEGORIES[category]


def test_one_line_drops_prefixes_and_repeats_and_is_short():
    line = one_line(f"network: {classify(Exception(YTDLP_500))}")
    assert line.startswith("network: http_500: Unable to download webpage: HTTP Error 500")
    assert "ERROR" not in line and "[generic]" not in line and line.count("network") == 1
    assert len(one_line("x" * 1000)) == 160

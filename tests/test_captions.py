"""WebVTT / SRT parsing, markup cleaning, and removal of YouTube's rolling auto-caption repetition."""

from __future__ import annotations

import pytest

from textbook.transcript.captions import CaptionError, load_captions, parse_captions, parse_timestamp

MANUAL_VTT = """\ufeffWEBVTT - lecture 3
Kind: captions
Language: en

STYLE
::cue { color: yellow }

NOTE this cue was checked by hand
and spans two lines

intro-1
00:00:01.000 --> 00:00:04.500 align:start position:10% line:90%
<v Prof. Ada>Welcome to <b>calculus</b>,
<i>everyone</i> &amp; friends &lt;3</v>

00:04.500 --> 00:07.250
<c.colorE5E5E5>[MUSIC]</c> The derivative&nbsp;measures change.

01:00:00.000 --> 01:00:02.000
&gt;&gt; A question from the back.
"""

SRT = """1
00:00:00,500 --> 00:00:02,000
{\\an8}<font color="#ffffff">Limits come</font>
<i>first.</i>

2
00:00:02,000 --> 00:00:03,250
Then continuity.

3
00:00:03,250 --> 00:00:05,000
Then continuity.
"""

# Shaped like yt-dlp's download of YouTube automatic captions: each cue repeats the line before
# it, 10 ms cues repeat the finished line, words carry inline times, some lines hold one space.
YOUTUBE_AUTO_VTT = """WEBVTT
Kind: captions
Language: en

00:00:00.030 --> 00:00:02.869 align:start position:0%
_
so<00:00:00.420><c> today</c><00:00:00.840><c> we're</c><00:00:01.020><c> going</c><00:00:01.230><c> to</c><00:00:01.380><c> talk</c><00:00:01.650><c> about</c>

00:00:02.869 --> 00:00:02.879 align:start position:0%
so today we're going to talk about
_

00:00:02.879 --> 00:00:05.749 align:start position:0%
so today we're going to talk about
derivatives<00:00:03.480><c> which</c><00:00:03.870><c> are</c><00:00:04.020><c> rates</c><00:00:04.410><c> of</c><00:00:04.560><c> change</c>

00:00:05.749 --> 00:00:05.759 align:start position:0%
derivatives which are rates of change
_

00:00:05.759 --> 00:00:08.000 align:start position:0%
derivatives which are rates of change
[Music]

00:00:08.000 --> 00:00:08.010 align:start position:0%
[Music]
_

00:00:08.010 --> 00:00:10.500 align:start position:0%
[Music]
okay<00:00:08.400><c> so</c><00:00:08.700><c> so</c><00:00:09.000><c> let's</c><00:00:09.300><c> begin</c>

00:00:10.500 --> 00:00:10.510 align:start position:0%
okay so so let's begin
_

00:00:10.510 --> 00:00:12.000 align:start position:0%
okay so so let's begin
begin<00:00:11.000><c> again</c>

00:00:12.000 --> 00:00:12.010 align:start position:0%
begin again
_

00:00:12.010 --> 00:00:13.000 align:start position:0%
begin again
yes
""".replace("\n_\n", "\n \n")  # "_" stands for a line of one space, as YouTube writes it

SPOKEN = ("so today we're going to talk about derivatives which are rates of change "
          "okay so so let's begin begin again yes")


def test_timestamps_in_every_spelling():
    assert parse_timestamp("01:02:03.456") == 3723.456
    assert parse_timestamp("02:03.4") == 123.4
    assert parse_timestamp("00:00:01,250") == 1.25
    assert parse_timestamp("100:00:00.000") == 360000.0
    with pytest.raises(CaptionError, match="bad timestamp"):
        parse_timestamp("00:61.000")


def test_manual_vtt_cues_become_clean_segments():
    segs = parse_captions(MANUAL_VTT, "vtt", name="lecture.en.vtt")
    assert [(s.start, s.end) for s in segs] == [(1.0, 4.5), (4.5, 7.25), (3600.0, 3602.0)]
    assert [s.text for s in segs] == [
        "Welcome to calculus, everyone & friends <3",
        "The derivative measures change.",
        "A question from the back.",
    ]
    assert all(s.words is None for s in segs)


def test_srt_with_commas_and_markup_keeps_manual_repeats():
    segs = parse_captions(SRT, "srt")
    assert [(s.start, s.end, s.text) for s in segs] == [
        (0.5, 2.0, "Limits come first."),
        (2.0, 3.25, "Then continuity."),
        (3.25, 5.0, "Then continuity."),  # manual captions are taken as written
    ]


def test_youtube_rolling_auto_captions_keep_each_word_once_with_its_time():
    segs = parse_captions(YOUTUBE_AUTO_VTT, "vtt", auto=True)
    words = [w for s in segs for w in s.words]
    assert " ".join(w.text for w in words) == SPOKEN
    assert " ".join(s.text for s in segs) == SPOKEN
    starts = {w.text: w.start for w in words}
    assert starts["today"] == 0.42 and starts["derivatives"] == 2.879 and starts["change"] == 4.56
    assert words[0].start == 0.03 and words[-1].end == 13.0
    assert all(a.start <= a.end <= b.start + 1e-9 for a, b in zip(words, words[1:]))
    for s in segs:
        assert s.start == s.words[0].start and s.end >= s.words[-1].end


def test_auto_captions_saved_with_empty_lines_instead_of_spaces():
    variant = YOUTUBE_AUTO_VTT.replace("\n \n", "\n\n")
    assert " ".join(s.text for s in parse_captions(variant, "vtt", auto=True)) == SPOKEN


def test_naive_reading_of_the_same_file_repeats_words():
    """What the deduplication is for: read as manual captions, the rolled lines come back."""
    naive = " ".join(s.text for s in parse_captions(YOUTUBE_AUTO_VTT, "vtt"))
    assert naive.count("derivatives") == 3 and SPOKEN.count("derivatives") == 1


def test_growing_line_auto_captions_without_word_times():
    srt = ("1\n00:00:00,000 --> 00:00:01,000\nso\n\n"
           "2\n00:00:01,000 --> 00:00:02,000\nso today\n\n"
           "3\n00:00:02,000 --> 00:00:04,000\nso today we learn limits\n\n"
           "4\n00:00:04,000 --> 00:00:06,000\nlearn limits of sequences\n")
    segs = parse_captions(srt, "srt", auto=True)
    assert " ".join(s.text for s in segs) == "so today we learn limits of sequences"
    learn = next(w for s in segs for w in s.words if w.text == "learn")
    assert 2.0 <= learn.start < learn.end <= 4.0


def test_load_captions_reads_a_file(tmp_path):
    path = tmp_path / "talk.en.srt"
    path.write_text(SRT, encoding="utf-8")
    assert load_captions(path)[0].text == "Limits come first."


@pytest.mark.parametrize("text, ext, message", [
    ("", "vtt", r"talk\.vtt: line 1: not a WebVTT file"),
    ("WEBVTT\n\n", "vtt", r"talk\.vtt: no caption text"),
    ("", "srt", r"talk\.srt: no caption text"),
    ("1\n00:00:01,000 --> 00:00:02,000\n[Music]\n", "srt", "no caption text"),
    ("WEBVTT\n\n00:00:01.000 --> 00:00:0x.000\nhello\n", "vtt", r"talk\.vtt: line 3: bad timestamp '00:00:0x.000'"),
    ("WEBVTT\n\n00:00:05.000 --> 00:00:02.000\nhello\n", "vtt", r"line 3: cue ends .* before it starts"),
    ("WEBVTT\n\nhello there\nnothing else\n", "vtt", r"line 3: expected a cue timing line"),
    ("1\n00:00:01,000 --> 00:00:02,000\nhi\n2\n00:00:02,000 --> 00:00:03,000\nyo\n", "srt",
     r"line 5: cue text holds a timing line"),
    ("WEBVTT\n\n00:01.000 --> 00:02.000\nhi\n", "ass", "unsupported caption format 'ass'"),
])
def test_malformed_or_empty_files_name_the_file_and_line(text, ext, message):
    with pytest.raises(CaptionError, match=message):
        parse_captions(text, ext, name=f"talk.{ext}")

"""Sentence merging and 10-20 s clip cutting."""

from __future__ import annotations

from textbook.records import Segment, Word
from textbook.stages.clips import cut_clips, sentences_of, words_of


def _cues(sentences: list[str], seconds: float = 4.0, gap: float = 0.4) -> list[Segment]:
    """Caption-like cues that break sentences in the middle, as real captions do."""
    segs, t = [], 0.0
    for s in sentences:
        half = len(s.split()) // 2
        a, b = " ".join(s.split()[:half]), " ".join(s.split()[half:])
        segs += [Segment(t, t + seconds / 2, a), Segment(t + seconds / 2, t + seconds, b)]
        t += seconds + gap
    return segs


SENTENCES = [f"This is sentence number {i} of the lecture about derivatives." for i in range(12)]


def test_fragments_merge_into_whole_sentences():
    sents = sentences_of(words_of(_cues(SENTENCES)), max_seconds=20)
    assert [s.text for s in sents] == SENTENCES


def test_clips_are_10_to_20_s_tile_the_video_and_never_split_a_sentence():
    segs = _cues(SENTENCES)
    clips = cut_clips(segs, duration=53.0, min_seconds=10, max_seconds=20)
    assert clips[0].start == 0.0 and clips[-1].end == 53.0
    for a, b in zip(clips, clips[1:]):
        assert a.end == b.start
    for c in clips:
        assert 10 <= c.end - c.start <= 20.5, (c.start, c.end)
        assert c.text.endswith("derivatives.")
    assert " ".join(c.text for c in clips) == " ".join(SENTENCES)
    assert [c.index for c in clips] == list(range(len(clips)))


def test_unpunctuated_asr_splits_at_pauses():
    words = []
    t = 0.0
    for n in range(6):  # six 3-second utterances separated by 1 s pauses
        for k in range(6):
            words.append(Word(t, t + 0.5, f"w{n}{k}"))
            t += 0.5
        t += 1.0
    sents = sentences_of(words, max_seconds=20)
    assert len(sents) == 6 and sents[1].text.startswith("w10")


def test_a_run_on_sentence_longer_than_a_clip_is_cut_at_its_longest_pause():
    words = [Word(i * 1.0, i * 1.0 + 0.8, f"w{i}") for i in range(30)]
    words[14] = Word(14.0, 14.2, "w14")  # the longest pause follows word 14
    clips = cut_clips([Segment(0, 30, "", words)], duration=30, min_seconds=10, max_seconds=20)
    assert [c.text.split()[-1] for c in clips] == ["w14", "w29"]


def test_short_tail_joins_previous_clip_and_refined_text_follows_segments():
    segs = _cues(SENTENCES[:4])  # ~17.2 s of speech
    refined = [Segment(s.start, s.end, s.text.upper()) for s in segs]
    clips = cut_clips(segs, duration=18, min_seconds=10, max_seconds=12, refined=refined)
    assert all(c.end - c.start >= 10 for c in clips)
    assert " ".join(c.refined_text for c in clips) == " ".join(s.text.upper() for s in segs)


def test_no_speech_gives_no_clips():
    assert cut_clips([], duration=30, min_seconds=10, max_seconds=20) == []


def test_a_short_tail_is_balanced_with_the_clip_before_it_never_glued_past_20_s():
    # 6 sentences of 4.4 s: greedy 10-20 s grouping leaves 17.6 s + an 8.8 s tail (26.4 s if glued)
    segs = _cues(SENTENCES[:6])
    clips = cut_clips(segs, duration=26.4, min_seconds=10, max_seconds=20)
    assert [(c.start, c.end) for c in clips] == [(0.0, 13.0), (13.0, 26.4)]  # three sentences each
    assert " ".join(c.text for c in clips) == " ".join(SENTENCES[:6])

"""Merge transcript fragments into sentences, then cut 10-20 s clips that never split a sentence.

Clips tile the whole video (each boundary sits in the pause between two sentences), so every
sampled frame belongs to exactly one clip, also the frames of silent stretches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from textbook.artifacts import output_key, read_input
from textbook.context import Context
from textbook.records import Clip, Segment, Transcript, Video, Word
from textbook.stages.base import StageResult, stage

_SENTENCE_END = re.compile(r"[.!?…]['\")\]]*$")
# Without punctuation (plain ASR output) a pause this long ends a sentence.
PAUSE_SECONDS = 0.7


@dataclass
class Sentence:
    words: list[Word]

    @property
    def start(self) -> float:
        return self.words[0].start

    @property
    def end(self) -> float:
        return self.words[-1].end

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


def words_of(segments: list[Segment]) -> list[Word]:
    """Timed words: the backend's where it gave them, else spread over the segment by length."""
    words: list[Word] = []
    for seg in segments:
        if seg.words:
            words += [w for w in seg.words if w.text.strip()]
            continue
        tokens = seg.text.split()
        if not tokens:
            continue
        total = sum(len(t) + 1 for t in tokens)
        t = seg.start
        for tok in tokens:
            step = (seg.end - seg.start) * (len(tok) + 1) / total
            words.append(Word(t, t + step, tok))
            t += step
    return sorted(words, key=lambda w: w.start)


def sentences_of(words: list[Word], max_seconds: float) -> list[Sentence]:
    punctuated = any(_SENTENCE_END.search(w.text) for w in words)
    out: list[Sentence] = []
    cur: list[Word] = []
    for i, w in enumerate(words):
        cur.append(w)
        nxt = words[i + 1] if i + 1 < len(words) else None
        ends = bool(_SENTENCE_END.search(w.text)) if punctuated else (nxt is None or nxt.start - w.end >= PAUSE_SECONDS)
        if ends or nxt is None:
            out.append(Sentence(cur))
            cur = []
    return [part for s in out for part in _split_long(s, max_seconds)]


def _split_long(s: Sentence, max_seconds: float) -> list[Sentence]:
    """A run-on sentence longer than a whole clip is cut at its longest pause."""
    if s.end - s.start <= max_seconds or len(s.words) < 2:
        return [s]
    gaps = [(s.words[i + 1].start - s.words[i].end, i) for i in range(len(s.words) - 1)]
    _, at = max(gaps)
    return _split_long(Sentence(s.words[:at + 1]), max_seconds) + _split_long(Sentence(s.words[at + 1:]), max_seconds)


def group_sentences(sentences: list[Sentence], min_seconds: float, max_seconds: float) -> list[list[Sentence]]:
    groups: list[list[Sentence]] = []
    for s in sentences:
        cur = groups[-1] if groups else None
        if cur is not None and (s.end - cur[0].start <= max_seconds or cur[-1].end - cur[0].start < min_seconds):
            cur.append(s)
        else:
            groups.append([s])
    if len(groups) > 1 and _span(groups[-1]) < min_seconds:
        tail = groups.pop()
        groups += _rebalanced(groups.pop() + tail, min_seconds, max_seconds)
    return groups


def _span(group: list[Sentence]) -> float:
    return group[-1].end - group[0].start


def _rebalanced(joined: list[Sentence], min_seconds: float, max_seconds: float) -> list[list[Sentence]]:
    """The last clip and a short tail after it: one clip when that fits in ``max_seconds``, else the
    two most even clips that both fit in [min, max] (a 26 s stretch gives 13 + 13, not 20 + 6 or 26);
    one long clip only when no split fits (less speech than two minimum clips)."""
    if _span(joined) <= max_seconds:
        return [joined]
    splits = [(abs(_span(joined[:k]) - _span(joined[k:])), k) for k in range(1, len(joined))
              if all(min_seconds <= _span(part) <= max_seconds for part in (joined[:k], joined[k:]))]
    if not splits:
        return [joined]
    _, k = min(splits)
    return [joined[:k], joined[k:]]


def cut_clips(segments: list[Segment], duration: float, min_seconds: float, max_seconds: float,
              refined: list[Segment] | None = None) -> list[Clip]:
    groups = group_sentences(sentences_of(words_of(segments), max_seconds), min_seconds, max_seconds)
    if not groups:
        return []
    bounds = [0.0]
    for a, b in zip(groups, groups[1:]):
        bounds.append(round((a[-1].end + b[0].start) / 2, 1))
    bounds.append(round(max(duration, groups[-1][-1].end), 1))
    clips = []
    for i, group in enumerate(groups):
        start, end = bounds[i], bounds[i + 1]
        text = " ".join(s.text for s in group)
        refined_text = None
        if refined is not None:
            refined_text = " ".join(r.text for r in refined if start <= (r.start + r.end) / 2 < end and r.text)
        clips.append(Clip(index=i, start=start, end=end, text=text, refined_text=refined_text))
    return clips


@stage("clips", sections=("clips",), requires=("refine",), version="2")
def run(video: Video, ctx: Context) -> StageResult:
    cfg = ctx.settings.clips
    if not 0 < cfg.min_seconds <= cfg.max_seconds:
        raise ValueError(f"clips: need 0 < min_seconds <= max_seconds, got {cfg.min_seconds}, {cfg.max_seconds}")
    vid = video.video_id
    transcript = Transcript.from_dict(read_input(ctx, vid, "transcript"))
    refine = read_input(ctx, vid, "refine")
    refined = [Segment.from_dict(s) for s in refine["segments"]] if refine["refinement"]["refined"] else None
    duration = float(read_input(ctx, vid, "download", "info.json").get("duration") or 0.0)
    clips = cut_clips(transcript.segments, duration, cfg.min_seconds, cfg.max_seconds, refined)
    ref = ctx.store.put_json(output_key(ctx, vid, "clips", "clips.json"), {"clips": [c.to_dict() for c in clips]})
    lengths = [c.end - c.start for c in clips]
    return StageResult(artifacts=[ref], summary={"clips": len(clips),
                                                 "mean_seconds": round(sum(lengths) / len(lengths), 2) if clips else 0})


STAGE = run

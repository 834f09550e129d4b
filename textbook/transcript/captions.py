"""WebVTT and SRT captions -> timed ``Segment``s.

Manual captions become one segment per cue. YouTube's automatic captions roll: each cue repeats
the line shown before it and adds a few words (with inline ``<00:00:01.230>`` word times), so
read naively every word appears two or three times. ``dedupe_rolling`` keeps each spoken word
once, with its time.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from textbook.records import Segment, Word


class CaptionError(ValueError):
    """A caption file is empty or malformed; the message names the file and line."""


_TIMESTAMP = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})$")
_TIMING_LINE = re.compile(r"^\s*(\S+)\s+-->\s+(\S+)(?:\s+.*)?$")
_INLINE_TIME = re.compile(r"<((?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})>")
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_ASS_OVERRIDE = re.compile(r"\{\\[^}]*\}")  # {\an8} and friends, common in SRT from fansub tools
_SOUND_LABEL = re.compile(r"\[[A-Za-z][A-Za-z .'-]*\]")  # [Music], [Applause], [inaudible]
_SPEAKER_CHANGE = re.compile(r"(?:^|\s)>>+(?=\s|$)")
_NON_WORD = re.compile(r"[^\w']+")


@dataclass
class Cue:
    start: float
    end: float
    lines: list[str]  # payload lines, markup included
    line_no: int  # where the cue's timing line is, for error messages


def parse_timestamp(text: str, where: str = "") -> float:
    """``hh:mm:ss.mmm``, ``mm:ss.mmm`` or SRT's ``hh:mm:ss,mmm`` -> seconds."""
    m = _TIMESTAMP.match(text.strip())
    if m is None:
        raise CaptionError(f"{where}: bad timestamp {text!r}" if where else f"bad timestamp {text!r}")
    hours, minutes, seconds, frac = m.groups()
    if int(minutes) >= 60 or int(seconds) >= 60:
        raise CaptionError(f"{where}: bad timestamp {text!r}" if where else f"bad timestamp {text!r}")
    millis = ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(frac.ljust(3, "0"))
    return millis / 1000


def clean_text(raw: str) -> str:
    """Caption markup -> plain words: tags, inline times, entities, sound labels and '>>' removed."""
    text = _TAG.sub("", _INLINE_TIME.sub(" ", raw))
    text = html.unescape(_ASS_OVERRIDE.sub("", text)).replace("\u00a0", " ")
    text = _SPEAKER_CHANGE.sub(" ", text)
    text = _SOUND_LABEL.sub(" ", text)
    return " ".join(text.split())


def _blocks(text: str, *, spaces_separate: bool) -> list[tuple[int, list[str]]]:
    """Blank-line separated blocks with the 1-based line number of their first line.

    In WebVTT only an empty line ends a cue: YouTube's automatic captions hold lines of one space.
    """
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start = 0
    for no, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        if (line.strip() if spaces_separate else line):
            if not current:
                start = no
            current.append(line.rstrip())
        elif current:
            blocks.append((start, current))
            current = []
    if current:
        blocks.append((start, current))
    return blocks


def _cue(block: list[str], start_no: int, name: str) -> Cue:
    """A cue from its block: optional identifier (VTT id or SRT index), timing line, payload."""
    timing_at = next((i for i, line in enumerate(block[:2]) if "-->" in line), None)
    if timing_at is None:
        raise CaptionError(f"{name}: line {start_no}: expected a cue timing line "
                           f"('00:00:01.000 --> 00:00:02.000'), got {block[0][:60]!r}")
    no = start_no + timing_at
    m = _TIMING_LINE.match(block[timing_at])
    if m is None:
        raise CaptionError(f"{name}: line {no}: malformed cue timing {block[timing_at][:80]!r}")
    start = parse_timestamp(m.group(1), f"{name}: line {no}")
    end = parse_timestamp(m.group(2), f"{name}: line {no}")
    if end < start:
        raise CaptionError(f"{name}: line {no}: cue ends ({m.group(2)}) before it starts ({m.group(1)})")
    payload = block[timing_at + 1:]
    for offset, line in enumerate(payload, start=1):
        if "-->" in line:
            raise CaptionError(f"{name}: line {no + offset}: cue text holds a timing line "
                               "(a blank line missing between two cues?)")
    return Cue(start, end, payload, no)


def parse_vtt_cues(text: str, name: str = "<vtt>") -> list[Cue]:
    blocks = _blocks(text, spaces_separate=False)
    if not blocks or not blocks[0][1][0].startswith("WEBVTT"):
        raise CaptionError(f"{name}: line 1: not a WebVTT file (no 'WEBVTT' header)")
    header_no, header = blocks[0]
    # A cue glued to the header without a blank line: still a cue.
    glued = next((i for i, line in enumerate(header) if "-->" in line), None)
    if glued is not None:
        blocks[1:1] = [(header_no + glued, header[glued:])]
    cues = []
    for start_no, block in blocks[1:]:
        head = block[0]
        if head.startswith(("NOTE", "STYLE", "REGION")) and "-->" not in head:
            continue
        if cues and not any(line.strip() for line in cues[-1].lines) and not any("-->" in ln for ln in block[:2]):
            # Automatic captions saved with an empty line (not one space) between timing and text.
            cues[-1].lines = block
            continue
        cues.append(_cue(block, start_no, name))
    return cues


def parse_srt_cues(text: str, name: str = "<srt>") -> list[Cue]:
    return [_cue(block, start_no, name) for start_no, block in _blocks(text, spaces_separate=True)]


def cues_to_segments(cues: list[Cue]) -> list[Segment]:
    """One segment per cue with text; the text of multi-line cues is joined with spaces."""
    segments = []
    for cue in cues:
        text = " ".join(t for t in map(clean_text, cue.lines) if t)
        if text:
            segments.append(Segment(cue.start, cue.end, text))
    return segments


def _timed_words(cue: Cue, line: str, name: str) -> list[Word]:
    """Words of one payload line; inline ``<time>`` tags give start times, the rest is spread by length."""
    pieces = _INLINE_TIME.split(line)  # text, time, text, time, ...
    starts: list[float | None] = [None]
    starts += [parse_timestamp(t, f"{name}: line {cue.line_no}") for t in pieces[1::2]]
    raw: list[tuple[float | None, str]] = []
    for start, chunk in zip(starts, pieces[0::2]):
        for i, token in enumerate(clean_text(chunk).split()):
            raw.append((start if i == 0 else None, token))
    if not raw:
        return []
    # Fill the missing start times by spreading the gaps between known ones by word length.
    known = [i for i, (t, _) in enumerate(raw) if t is not None]
    anchors = [(0, cue.start)] if not known or known[0] != 0 else []
    latest = cue.start
    for i in known:  # clamp into the cue and keep times from going backwards
        latest = min(max(raw[i][0], latest), cue.end)  # type: ignore[type-var]
        anchors.append((i, latest))
    anchors.append((len(raw), cue.end))
    times = [0.0] * (len(raw) + 1)
    for (i0, t0), (i1, t1) in zip(anchors, anchors[1:]):
        lengths = [len(raw[k][1]) + 1 for k in range(i0, i1)]
        total = sum(lengths) or 1
        t = t0
        for k, length in zip(range(i0, i1), lengths):
            times[k] = t
            t += max(t1 - t0, 0.0) * length / total
    times[len(raw)] = cue.end
    return [Word(round(times[k], 3), round(max(times[k + 1], times[k]), 3), raw[k][1]) for k in range(len(raw))]


def _norm(word: str) -> str:
    return _NON_WORD.sub("", word.lower())


def _overlap(emitted: list[str], incoming: list[str], prev_last_line: list[str]) -> int:
    """How many leading words of ``incoming`` repeat the tail of what was already emitted.

    An overlap of one word is only trusted when it is the whole line shown before (a rolled line
    of one word); otherwise a new line that happens to start with the last word said would lose it.
    """
    for k in range(min(len(emitted), len(incoming)), 0, -1):
        if emitted[-k:] == incoming[:k] and (k >= 2 or incoming[:k] == prev_last_line):
            return k
    return 0


def dedupe_rolling(cues: list[Cue], name: str = "<captions>") -> list[Segment]:
    """Automatic captions -> segments holding each spoken word once, with word times.

    Each cue contributes the words it adds to what was already shown; a cue that only repeats
    (YouTube's 10 ms transition cues) contributes nothing.
    """
    segments: list[Segment] = []
    emitted: list[str] = []
    prev_last_line: list[str] = []
    for cue in cues:
        words = [w for line in cue.lines for w in _timed_words(cue, line, name) if _norm(w.text)]
        normed = [_norm(w.text) for w in words]
        repeated = _overlap(emitted, normed, prev_last_line)
        last_line = next((ln for ln in reversed(cue.lines) if clean_text(ln)), "")
        prev_last_line = [n for n in map(_norm, clean_text(last_line).split()) if n]
        if repeated == len(words):
            continue
        new = words[repeated:]
        emitted = (emitted + normed[repeated:])[-200:]
        segments.append(Segment(new[0].start, cue.end, " ".join(w.text for w in new), new))
    return segments


def parse_captions(text: str, ext: str, *, auto: bool = False, name: str = "") -> list[Segment]:
    """Caption text in ``ext`` ('vtt' or 'srt') -> segments; ``auto`` removes rolling repetition."""
    name = name or f"<{ext}>"
    ext = ext.lower().lstrip(".")
    if ext == "vtt":
        cues = parse_vtt_cues(text, name)
    elif ext == "srt":
        cues = parse_srt_cues(text, name)
    else:
        raise CaptionError(f"{name}: unsupported caption format {ext!r} (expected vtt or srt)")
    segments = dedupe_rolling(cues, name) if auto else cues_to_segments(cues)
    if not segments:
        raise CaptionError(f"{name}: no caption text (empty file or only sound labels)")
    return segments


def load_captions(path: Path, *, auto: bool = False) -> list[Segment]:
    path = Path(path)
    return parse_captions(path.read_bytes().decode("utf-8-sig", errors="replace"), path.suffix, auto=auto,
                          name=path.name)

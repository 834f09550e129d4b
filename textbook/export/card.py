"""The dataset card (FORMAT.md section 5): what was collected, how, what was dropped, and the numbers.

Everything in it is derived from the database and the exported data, never from the clock, so
exporting the same input twice writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import yaml

import textbook
from textbook.config import Settings, output_knobs
from textbook.tokens import TOKEN_RULE, count_tokens
from textbook.export.videos import KnowledgePoint, VideoEntry, failure, filtered_by
from textbook.vlm_ocr import PROMPT_VERSION

_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def _mask(value: Any) -> Any:
    """Credentials embedded in URLs (proxy, endpoint) are never published."""
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v) for v in value]
    if isinstance(value, str):
        return _URL_CREDENTIALS.sub("***@", value)
    return value


def video_facts(entry: VideoEntry) -> dict[str, Any]:
    """What the card needs from one video, small enough to keep for every video of the corpus."""
    kp = entry.knowledge_point
    download = entry.run("download")
    outcome = None
    if entry.status == "filtered":
        rule = entry.reason.split(":")[0].strip()
        outcome = [f"filtered at {filtered_by(entry) or 'an unknown stage'}", rule or "(no reason given)"]
    elif entry.status == "failed":
        stage, error = failure(entry)
        outcome = [f"failed at {stage or 'an unknown stage'}", error.split(":")[0] or "(no error given)"]
    elif entry.status != "done":
        outcome = ["not finished", entry.status]
    clips = entry.clips or []
    finished = [r.finished_at for r in entry.runs if r.finished_at]
    return {
        "subject": entry.subject, "kp": kp.id if kp else None, "status": entry.status, "outcome": outcome,
        "downloaded": download is not None and download.status == "done" and not download.result.get("filtered"),
        "duration": entry.duration or 0.0, "clips": len(clips), "images": sum(len(c.images) for c in clips),
        "text_tokens": sum(c.text_tokens for c in clips), "ocr_tokens": sum(count_tokens(c.ocr_text) for c in clips),
        "refined_clips": sum(c.refined_asr != c.asr for c in clips),
        "score_dropped": sum(c.score_dropped for c in clips),
        "runs": [[r.stage, r.config_hash] for r in entry.runs],
        "created_at": entry.created_at.isoformat() if entry.created_at else None,
        "finished_at": max(finished).isoformat() if finished else None,
    }


class _Spread:
    """min / max / mean of a stream of counts, as the paper's Table 1 gives them."""

    def __init__(self) -> None:
        self.n = self.total = 0
        self.low: int | None = None
        self.high: int | None = None

    def add(self, value: int) -> None:
        self.n += 1
        self.total += value
        self.low = value if self.low is None else min(self.low, value)
        self.high = value if self.high is None else max(self.high, value)

    def __str__(self) -> str:
        return "-" if not self.n else f"{self.low} / {self.high} / {self.total / self.n:.1f}"


def spread(values: list[int]) -> str:
    acc = _Spread()
    for v in values:
        acc.add(v)
    return str(acc)


@dataclass
class _SubjectStats:
    videos: int = 0
    seconds: float = 0.0
    clips: int = 0
    images: int = 0
    text_tokens: int = 0
    ocr_tokens: int = 0
    refined_clips: int = 0  # clips whose text the refinement changed
    score_dropped: int = 0  # keyframes the OCR stage's keyframe score left out
    samples: int = 0
    image_num: _Spread = field(default_factory=_Spread)
    text_num: _Spread = field(default_factory=_Spread)

    def add_video(self, facts: dict[str, Any]) -> None:
        self.videos += 1
        self.seconds += facts["duration"]
        for name in ("clips", "images", "text_tokens", "ocr_tokens", "refined_clips"):
            setattr(self, name, getattr(self, name) + facts[name])
        self.score_dropped += facts.get("score_dropped", 0)  # facts kept before the score existed: none

    def add_sample(self, image_num: int, text_num: int) -> None:
        self.samples += 1
        self.image_num.add(image_num)
        self.text_num.add(text_num)

    def row(self, name: str) -> list[Any]:
        return [name, self.videos, f"{self.seconds / 3600:.2f}", self.clips, self.images, self.text_tokens,
                self.ocr_tokens, self.samples, str(self.image_num), str(self.text_num)]


class CorpusFacts:
    """The card's numbers, accumulated one video and one sample at a time (videos in video id
    order), so a card of any corpus is written in bounded memory."""

    def __init__(self) -> None:
        self.videos = self.downloaded = self.finished = self.exported = 0
        self.rest: Counter[tuple[str, str]] = Counter()
        self.found: Counter[str] = Counter()
        self.kept: Counter[str] = Counter()
        self.subjects: dict[str, _SubjectStats] = defaultdict(_SubjectStats)
        self.overall = _SubjectStats()
        self.fingerprints: dict[str, Counter[str]] = {}
        self.created: list[str] = []  # the earliest and latest seen, as ISO strings
        self.finished_at: str | None = None

    def add_video(self, facts: dict[str, Any], exported: bool) -> None:
        self.videos += 1
        self.downloaded += facts["downloaded"]
        self.finished += facts["status"] == "done"
        if facts["outcome"]:
            self.rest[tuple(facts["outcome"])] += 1
        elif not exported:
            self.rest[("finished, not exported", "see export_error in videos.jsonl")] += 1
        if facts["kp"] is not None:
            self.found[facts["kp"]] += 1
            self.kept[facts["kp"]] += exported
        if created := facts["created_at"]:
            self.created = [min(self.created[0], created), max(self.created[1], created)] if self.created \
                else [created, created]
        if facts["finished_at"] and (self.finished_at is None or facts["finished_at"] > self.finished_at):
            self.finished_at = facts["finished_at"]
        if not exported:
            return
        self.exported += 1
        self.subjects[facts["subject"]].add_video(facts)
        self.overall.add_video(facts)
        for stage, fingerprint in facts["runs"]:
            self.fingerprints.setdefault(stage, Counter())[fingerprint or ""] += 1

    def add_sample(self, subjects: Iterable[str], image_num: int, text_num: int) -> None:
        for subject in set(subjects):
            self.subjects[subject].add_sample(image_num, text_num)
        self.overall.add_sample(image_num, text_num)


def made_with(settings: Settings, facts: CorpusFacts, stage_settings: dict[str, dict[str, Any]]) -> dict:
    """The output settings the exported videos were made with, read from their published stage
    runs (a re-run in progress under new settings does not change them), plus today's export
    settings. A section on which the videos differ lists each variant with its number of videos.

    Operational knobs and paths are never part of it: tuning retries or moving the source list
    must not change a byte of the dataset.
    """
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    unrecorded: set[str] = set()
    for stage, by_hash in facts.fingerprints.items():
        for fingerprint, n in by_hash.items():
            recorded = stage_settings.get(fingerprint)
            if recorded is None:
                unrecorded.add(stage)
                continue
            for section, value in recorded.items():
                seen[section][json.dumps(value, sort_keys=True)] += n
    config: dict[str, Any] = {}
    for section, variants in sorted(seen.items()):
        if len(variants) == 1:
            config[section] = json.loads(next(iter(variants)))
        else:
            config[section] = {"varies": [{"videos": n, "settings": json.loads(v)} for v, n in
                                          sorted(variants.items(), key=lambda kv: (-kv[1], kv[0]))]}
    if unrecorded:
        config["not_recorded"] = sorted(unrecorded)  # stages finished before settings were kept per run
    config["export"] = output_knobs(settings.export)
    return _mask(config)


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _date(value: str | None) -> str:
    return value[:10] if value else "n/a"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


STATS_HEADER = ("Subject", "Videos", "Hours", "Clips", "Keyframes", "Transcript tokens", "OCR tokens", "Samples",
                "Images / sample (min / max / mean)", "Text tokens / sample (min / max / mean)")


def _statistics(facts: CorpusFacts) -> str:
    rows = [facts.subjects[s].row(s) for s in sorted(facts.subjects)]
    rows.append(facts.overall.row("**Overall**"))
    return table(list(STATS_HEADER), rows)


def _funnel(facts: CorpusFacts) -> str:
    steps = [
        ("found by search", facts.videos),
        ("downloaded", facts.downloaded),
        ("finished the pipeline", facts.finished),
        ("exported", facts.exported),
    ]
    out = table(["Step", "Videos"], steps)
    if facts.rest:
        out += "\n\nThe rest, by reason:\n\n" + table(["Outcome", "Reason", "Videos"],
                                                      [(o, r, n) for (o, r), n in sorted(facts.rest.items())])
    return out


def _taxonomy(kps: list[KnowledgePoint], facts: CorpusFacts) -> str:
    groups: dict[tuple[str, str, str], list[KnowledgePoint]] = defaultdict(list)
    for kp in kps:
        groups[(kp.subject, kp.course, kp.sub_course)].append(kp)
    rows = [(*key, len(g), sum(facts.found[k.id] for k in g), sum(facts.kept[k.id] for k in g))
            for key, g in sorted(groups.items())]
    return table(["Subject", "Course", "Sub-course", "Knowledge points", "Videos (own)", "Videos exported"], rows)


def _fingerprints(facts: CorpusFacts) -> str:
    rows = [(stage, h or "(none)", n) for stage, c in facts.fingerprints.items() for h, n in sorted(c.items())]
    return table(["Stage", "Config fingerprint", "Videos"], rows) if rows else "No stage runs."


def _made_with(config: dict[str, Any], section: str, name: str, before: str) -> str:
    """The value of ``section.name`` (a dotted path within the section) the exported videos were
    made with, each variant with its videos where they differ; ``before``: the value of videos
    made before the knob existed."""
    recorded = config.get(section)
    if recorded is None:
        return "not recorded"

    def value(settings: dict[str, Any]) -> str:
        for key in name.split("."):
            settings = settings.get(key) if isinstance(settings, dict) else None
        return str(before if settings is None else settings)

    if "varies" in recorded:
        return "; ".join(f"{value(v['settings'])} ({v['videos']} video(s))" for v in recorded["varies"])
    return value(recorded)


def _score_effect(config: dict[str, Any], dropped: int) -> str:
    """The keyframe score's part of the OCR row, where any exported video was made with it."""
    if "True" not in _made_with(config, "ocr", "score_keyframes", "False") and not dropped:
        return ""
    return f"; {dropped} keyframe(s) dropped by the VLM keyframe score (`ocr.score_keyframes`)"


def _switches(config: dict[str, Any], facts: CorpusFacts) -> str:
    """The paper's Table 6 ablations as this corpus was made, each with what it did to the corpus."""
    o = facts.overall
    hours = o.seconds / 3600
    per_hour = f", {o.images / hours:.1f} per video hour" if hours else ""
    rows = [
        ("Keyframe extractor (`keyframes.extractor`: ssim, pixel, clip)",
         _made_with(config, "keyframes", "extractor", "ssim"), f"{o.images} keyframes shown{per_hour}"),
        ("ASR refinement (`refine.llm.backend`; none: off)", _made_with(config, "refine", "llm.backend", "none"),
         f"{o.refined_clips} of {o.clips} clips' text changed by the refinement"),
        ("OCR (`ocr.backend`; none: off)", _made_with(config, "ocr", "backend", "tesseract"),
         f"{o.ocr_tokens} OCR tokens in `text_ocr_list`" + _score_effect(config, o.score_dropped)),
    ]
    return table(["Switch", "Exported videos made with", "Effect on this corpus"], rows)


def _columns(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """HF ``dataset_info`` features in the card's YAML form: 'str' dtypes, ['dtype'] lists, dict structs."""
    out = []
    for name, kind in spec.items():
        if isinstance(kind, list):
            inner = kind[0]
            out.append({"name": name, "list": _columns(inner) if isinstance(inner, dict) else inner})
        else:
            out.append({"name": name, "dtype": kind})
    return out


# Declared column types, so that HF ``datasets`` never infers them from one shard (a shard whose
# lists are all empty would be read as ``null`` and the next shard then fails to cast).
OBELICS_FEATURES = {
    "images": ["string"], "texts": ["string"], "text_ocr_list": ["string"],
    "metadata": [{"video_id": "string", "clip_start": "float64", "clip_end": "float64", "kind": "string",
                  "knowledge_point": "string"}],
    "image_num": "int64", "text_num": "int64", "token_num": "int64",
}
CLIP_FEATURES = {
    "vid": "string", "clip_start": "float64", "clip_end": "float64", "asr": "string", "refined_asr": "string",
    "extracted_frames": ["string"], "keyframe_ssim": ["string"], "keyframe_ssim_dropped": ["string"],
    "ocr": ["string"], "ocr_image": ["string"], "ocr_deduplicates": ["string"], "ocr_boilerplate": ["string"],
    "visual_kept": "bool",
    "visual_reason": "string", "caption": "string", "image_tokens": "int64", "token_num": "int64", "asr_token_num": "int64",
    "ocr_engine": "string",
}


def _front_matter(compat: bool) -> str:
    clip = {**CLIP_FEATURES, **({"ocr_qwen2_vl_72b": "string"} if compat else {})}
    meta = {
        "pretty_name": "Multimodal textbook",
        "language": ["en"],
        "license": "other",
        "task_categories": ["image-text-to-text"],
        "tags": ["interleaved", "pretraining", "instructional-video"],
        "configs": [
            {"config_name": "obelics", "data_files": "obelics/part-*.jsonl", "default": True},
            {"config_name": "clips", "data_files": "clips/part-*.jsonl"},
            {"config_name": "videos", "data_files": "videos.jsonl"},
            {"config_name": "wds", "data_files": "wds/shard-*.tar"},
        ],
        "dataset_info": [
            {"config_name": "obelics", "features": _columns(OBELICS_FEATURES)},
            {"config_name": "clips", "features": _columns({"token_num": "int64", "conversations": [clip]})},
        ],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _ocr_line(settings: Settings) -> str:
    ocr = settings.ocr
    if ocr.backend != "vlm":
        return (f"- OCR is `{ocr.backend}`: it reads printed slide text; it cannot read formulas (an equation "
                "comes out as a few symbols or not at all), nor most handwriting.")
    score = (f"; it also rated each keyframe 1-5 and those under {ocr.min_quality} (occluded, low information) "
             "were left out" if ocr.score_keyframes else "")
    return (f"- OCR is `vlm` (`{ocr.vlm.backend}` model `{ocr.vlm.model}`, prompt `{PROMPT_VERSION}`): the model was "
            f"asked for each keyframe's text, symbols and formulas, formulas in LaTeX{score}.")


def render_card(*, settings: Settings, kps: list[KnowledgePoint], facts: CorpusFacts, files: list[str],
                images: int, stage_settings: dict[str, dict[str, Any]], measures: Sequence[str] = ()) -> str:
    """``files``: the views' lines of the "Files" section (views.View.card); ``measures``: their
    sections after the statistics (views.View.card_section)."""
    exp = settings.export
    config = made_with(settings, facts, stage_settings)
    created = facts.created or [None, None]
    order = ("curriculum order: easiest knowledge points first (taxonomy level), not shuffled" if exp.curriculum
             else f"shuffled across videos with seed {exp.seed}")
    sections = [
        _front_matter(exp.single_json),
        "# Multimodal textbook\n",
        "Keyframes of instructional videos interleaved with what the teacher says over them, after "
        '"2.5 Years in Class: A Multimodal Textbook for Vision-Language Pretraining" (arXiv 2501.00958). '
        f"Written by `textbook` {textbook.__version__}.\n",
        "## What was collected\n",
        f"- Taxonomy slice: {len(kps)} knowledge point(s), below.",
        f"- Videos found between {_date(created[0])} and {_date(created[1])}; "
        f"last processed {_date(facts.finished_at)}.",
        f"- Pipeline version: `textbook` {textbook.__version__}.",
        f"- Configuration hash: `{config_hash(config)}` (SHA-256 of the configuration below, as sorted JSON; "
        "credentials in URLs masked): the output settings the exported videos were made with.\n",
        _taxonomy(kps, facts) + "\n",
        "Stage fingerprints of the exported videos (version, configuration and inputs of each stage):\n",
        _fingerprints(facts) + "\n",
        "## Funnel\n",
        _funnel(facts) + "\n",
        "Every video considered has a line in `videos.jsonl` with each filter's verdict, score and reason.\n",
        "## Statistics\n",
        _statistics(facts) + "\n",
        "Keyframes are those shown in the OBELICS view (kept by the visual filter). A sample may hold videos of "
        "several subjects; a subject's row describes the samples that hold any of its videos, so per-subject "
        "sample counts can add up to more than the total.\n",
        *measures,
        "## Ablation switches (the paper's Table 6)\n",
        _switches(config, facts) + "\n",
        "## Files\n",
        *files,
        "- Column types are declared in this card's `dataset_info`, so HF `datasets` reads every shard alike.",
        "- `videos.jsonl`: one line per video considered, kept or not.",
        f"- `images/<video_id>/<video_id>@<start>_<end>#<k>.jpg`: {images} keyframe(s): every keyframe of the "
        "exported videos, also those the visual filter dropped (only the clip view shows those)"
        + (f", except the {facts.overall.score_dropped} the VLM keyframe score dropped (no view shows those)."
           if facts.overall.score_dropped else "."),
        "- `frames/<video_id>/`: the sampled frames that SSIM compared (export.sampled_frames)." if exp.sampled_frames
        else "- Sampled frames are not shipped (export.sampled_frames is off), so the clip view's "
             "`extracted_frames` lists are empty.",
        "- Image paths are absolute (export.absolute_paths)." if exp.absolute_paths
        else "- Image paths are relative to this folder.",
        "",
        "## How samples are built\n",
        "- Inside a video, for each clip in time order: its keyframes, then its transcript (refined where a "
        "refinement ran, else as transcribed). A clip whose images the visual filter dropped keeps its text.",
        "- `text_ocr_list` holds the transcript followed by the clip's deduplicated OCR, one line each, from the "
        "keyframes the visual filter kept only (a dropped clip's OCR is dropped with its images).",
        _ocr_line(settings),
        f"- Tokens are estimated offline, without a model tokenizer: {TOKEN_RULE}. Each image counts as "
        f"{exp.image_tokens} tokens. `text_num` counts transcript tokens; `token_num` counts every text "
        "position (End-of-Video markers included) plus the images.",
        f"- Budget rule: a sample holds at most {exp.token_budget} tokens, images counted at {exp.image_tokens} "
        "each. The paper's samples average 10.7 images and 1,297 text tokens, 10.7 x 576 + 1,297 = 7,460 tokens: "
        "the default budget of 8192 with 576 per image gives samples of that shape on lecture-length videos "
        "(how many images a sample holds depends on how often the slides change against how much is said).",
        f"- Videos are packed into samples of at most {exp.token_budget} tokens, ordered by knowledge point then "
        "video id; a video is only cut (at clip boundaries) when it is larger than the budget. Every video ends "
        f"with the text position `{exp.end_of_video}`; in the clip view, with the pseudo-clip "
        '`{"vid": "End of a Video", "image_tokens": 0, "token_num": 0}`.',
        "- Every sample holds at least one image: a piece without one is merged into its neighbour, which may "
        "take a sample over the budget.",
        f"- Samples are {order}.\n",
        "## Configuration\n",
        "```yaml\n" + yaml.safe_dump(config, sort_keys=True) + "```\n",
    ]
    return "\n".join(sections)

"""Check a written dataset against FORMAT.md, the way its readers will rely on it.

Returns the problems found, each naming the file and sample at fault; an empty list means valid.
The End-of-Video marker and the per-image token cost are configurable, so they are read off the
data itself: an End-of-Video position is the text position with no clip bounds, and every sample
must agree on the marker and on the image cost.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from textbook.export.clipview import END_OF_VIDEO_CLIP
from textbook.store.base import sha256_file
from textbook.tokens import count_tokens

MAX_PROBLEMS = 200

IMAGE_NAME = re.compile(
    r"^images/(?P<vid>[A-Za-z0-9_-]{1,128})/(?P=vid)@(?P<start>\d+\.\d)_(?P<end>\d+\.\d)#(?P<k>[1-9]\d*)\.jpg$")
SAMPLE_FIELDS = ("images", "texts", "text_ocr_list", "metadata", "image_num", "text_num", "token_num")
METADATA_FIELDS = ("video_id", "clip_start", "clip_end", "kind", "knowledge_point")
CLIP_FIELDS = ("vid", "clip_start", "clip_end", "asr", "refined_asr", "extracted_frames", "keyframe_ssim",
               "keyframe_ssim_dropped", "ocr", "ocr_image", "ocr_deduplicates", "visual_kept", "image_tokens",
               "token_num", "asr_token_num")
VIDEO_FIELDS = ("video_id", "url", "status", "reason", "knowledge_point", "search_keyword", "title", "desc",
                "channel", "duration", "language", "license", "transcript_source", "verdicts", "counts")


@dataclass
class Checker:
    root: Path
    problems: list[str] = field(default_factory=list)
    dropped: int = 0
    markers: set[str] = field(default_factory=set)
    image_costs: set[int] = field(default_factory=set)
    ends: dict[str, int] = field(default_factory=dict)  # video id -> End-of-Video positions seen
    sample_videos: set[str] = field(default_factory=set)
    obelics_eov_order: list[list[str]] = field(default_factory=list)
    obelics_images: list[int] = field(default_factory=list)
    obelics_names: list[str] = field(default_factory=list)

    def problem(self, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)
        else:
            self.dropped += 1

    # -- files ------------------------------------------------------------------------------

    def load_json(self, rel: str) -> Any:
        path = self.root / rel
        if not path.is_file():
            self.problem(f"{rel}: missing")
            return None
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self.problem(f"{rel}: not valid JSON ({exc})")
            return None

    def lines(self, rel: str) -> Iterator[tuple[int, Any]]:
        with open(self.root / rel, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as exc:
                    self.problem(f"{rel} line {n}: not valid JSON ({exc})")
                    yield n, None

    def relative(self, path: Any, where: str) -> str | None:
        """The dataset-relative form of a path written in the data, or None (problem reported)."""
        if not isinstance(path, str) or not path:
            self.problem(f"{where}: path {path!r} is not a non-empty string")
            return None
        p = Path(path)
        if p.is_absolute():
            try:
                return p.resolve().relative_to(self.root).as_posix()
            except ValueError:
                self.problem(f"{where}: absolute path {path!r} is outside the dataset root {self.root}")
                return None
        if ".." in p.parts:
            self.problem(f"{where}: path {path!r} climbs out of the dataset root")
            return None
        return p.as_posix()

    def image_file(self, path: Any, where: str, video_id: Any = None, start: Any = None, end: Any = None) -> None:
        rel = self.relative(path, where)
        if rel is None:
            return
        match = IMAGE_NAME.match(rel)
        if match is None:
            self.problem(f"{where}: image path {rel!r} does not follow images/<vid>/<vid>@<start>_<end>#<k>.jpg")
            return
        if video_id is not None and match["vid"] != video_id:
            self.problem(f"{where}: image {rel!r} is not of video {video_id!r}")
        for name, value in (("start", start), ("end", end)):
            if isinstance(value, (int, float)) and match[name] != f"{value:.1f}":
                self.problem(f"{where}: image {rel!r} does not match the clip's {name} {value}")
        if not (self.root / rel).is_file():
            self.problem(f"{where}: image file {rel} does not exist")

    # -- shards -----------------------------------------------------------------------------

    def shard_names(self, folder: str) -> list[str]:
        base = self.root / folder
        if not base.is_dir():
            self.problem(f"{folder}/: missing")
            return []
        return sorted(p.name for p in base.glob("part-*.jsonl"))

    def check_shard_index(self, names: list[str]) -> None:
        lengths = self.load_json("obelics/length.json")
        ranges = self.load_json("obelics/shard_id_range.json")
        if not isinstance(lengths, dict) or not isinstance(ranges, dict):
            if lengths is not None or ranges is not None:
                self.problem("obelics/length.json and shard_id_range.json must be JSON objects")
            return
        for label, table in (("length.json", lengths), ("shard_id_range.json", ranges)):
            if sorted(table) != names:
                self.problem(f"obelics/{label} names shards {sorted(table)}, the folder holds {names}")
        start = 0
        for name in names:
            with open(self.root / "obelics" / name, encoding="utf-8") as fh:
                count = sum(1 for _ in fh)
            if lengths.get(name) != count:
                self.problem(f"obelics/length.json: {name} has {count} samples, length.json says {lengths.get(name)}")
            if ranges.get(name) != [start, start + count]:
                self.problem(f"obelics/shard_id_range.json: {name} should be [{start}, {start + count}], "
                             f"is {ranges.get(name)}")
            start += count

    # -- OBELICS view -----------------------------------------------------------------------

    def check_sample(self, s: Any, where: str) -> None:
        if not isinstance(s, dict):
            self.problem(f"{where}: not a JSON object")
            return
        missing = [f for f in SAMPLE_FIELDS if f not in s]
        if missing:
            self.problem(f"{where}: missing field(s) {', '.join(missing)}")
            return
        images, texts, text_ocr, meta = s["images"], s["texts"], s["text_ocr_list"], s["metadata"]
        if not all(isinstance(x, list) for x in (images, texts, text_ocr, meta)):
            self.problem(f"{where}: images, texts, text_ocr_list and metadata must be lists")
            return
        if not len(images) == len(texts) == len(text_ocr) == len(meta):
            self.problem(f"{where}: lengths differ: images {len(images)}, texts {len(texts)}, "
                         f"text_ocr_list {len(text_ocr)}, metadata {len(meta)}")
            return
        for i, m in enumerate(meta):
            if not isinstance(m, dict) or any(f not in m for f in METADATA_FIELDS):
                self.problem(f"{where}: metadata[{i}] lacks one of {', '.join(METADATA_FIELDS)}")
                return
        image_num = 0
        text_tokens = 0
        all_text_tokens = 0
        eov_videos = []
        for i, (img, txt, tocr, m) in enumerate(zip(images, texts, text_ocr, meta, strict=True)):
            at = f"{where} position {i}"
            if (img is None) == (txt is None):
                self.problem(f"{at}: exactly one of images/texts must be non-null")
                continue
            if (txt is None) != (tocr is None):
                self.problem(f"{at}: text_ocr_list must be non-null exactly where texts is")
            vid = m["video_id"]
            self.sample_videos.add(str(vid))
            if img is not None:
                image_num += 1
                if m["kind"] != "keyframe":
                    self.problem(f"{at}: an image position has kind {m['kind']!r}, expected 'keyframe'")
                self.image_file(img, at, vid, m["clip_start"], m["clip_end"])
                continue
            if not isinstance(txt, str) or not isinstance(tocr, str):
                self.problem(f"{at}: texts and text_ocr_list must be strings at a text position")
                continue
            if m["kind"] != "text":
                self.problem(f"{at}: a text position has kind {m['kind']!r}, expected 'text'")
            all_text_tokens += count_tokens(txt)
            if m["clip_start"] is None and m["clip_end"] is None:
                self.markers.add(txt)
                if tocr != txt:
                    self.problem(f"{at}: End-of-Video text_ocr_list differs from its text")
                self.ends[str(vid)] = self.ends.get(str(vid), 0) + 1
                eov_videos.append(str(vid))
                if i + 1 < len(meta) and meta[i + 1]["video_id"] == vid:
                    self.problem(f"{at}: video {vid!r} continues after its End-of-Video")
            else:
                text_tokens += count_tokens(txt)
                if not tocr.startswith(txt):
                    self.problem(f"{at}: text_ocr_list does not start with the transcript")
        for i in range(1, len(meta)):
            a, b = meta[i - 1], meta[i]
            if (a["video_id"] != b["video_id"] and
                    not (texts[i - 1] is not None and a["clip_start"] is None and a["clip_end"] is None)):
                self.problem(f"{where} position {i}: video {a['video_id']!r} ends without an End-of-Video position")
            if (a["video_id"] == b["video_id"] and a["clip_start"] is not None and b["clip_start"] is not None
                    and b["clip_start"] < a["clip_start"]):
                self.problem(f"{where} position {i}: clips of {b['video_id']!r} are out of time order")
        if image_num == 0:
            self.problem(f"{where}: no image (every sample needs at least one)")
        if s["image_num"] != image_num:
            self.problem(f"{where}: image_num is {s['image_num']}, the sample has {image_num} images")
        if s["text_num"] != text_tokens:
            self.problem(f"{where}: text_num is {s['text_num']}, its transcripts count {text_tokens} tokens")
        residual = s["token_num"] - all_text_tokens if isinstance(s["token_num"], int) else None
        if residual is None or residual < 0 or (image_num and residual % image_num):
            self.problem(f"{where}: token_num {s['token_num']} is not its text tokens plus a whole cost per image")
        elif image_num:
            self.image_costs.add(residual // image_num)
        self.obelics_eov_order.append(eov_videos)
        self.obelics_images.append(image_num)

    def check_obelics(self) -> list[str]:
        names = self.shard_names("obelics")
        self.check_shard_index(names)
        for name in names:
            for n, sample in self.lines(f"obelics/{name}"):
                if sample is not None:
                    self.check_sample(sample, f"obelics/{name} line {n}")
        if len(self.markers) > 1:
            self.problem(f"obelics: End-of-Video markers differ between positions: {sorted(self.markers)}")
        if len(self.image_costs) > 1:
            self.problem(f"obelics: the per-image token cost differs between samples: {sorted(self.image_costs)}")
        for vid, n in sorted(self.ends.items()):
            if n != 1:
                self.problem(f"obelics: video {vid!r} has {n} End-of-Video positions, expected 1")
        for vid in sorted(self.sample_videos - set(self.ends)):
            self.problem(f"obelics: video {vid!r} never ends with an End-of-Video position")
        return names

    # -- clip view --------------------------------------------------------------------------

    def check_clip(self, c: Any, where: str, frames_shipped: bool) -> int:
        """Checks one clip record; returns how many images it shows in the OBELICS view."""
        if not isinstance(c, dict) or any(f not in c for f in CLIP_FIELDS):
            self.problem(f"{where}: a clip record needs {', '.join(CLIP_FIELDS)}")
            return 0
        lists = [c[f] for f in ("keyframe_ssim", "keyframe_ssim_dropped", "ocr", "ocr_image", "ocr_deduplicates")]
        if not all(isinstance(x, list) for x in lists + [c["extracted_frames"]]):
            self.problem(f"{where}: keyframe_ssim(_dropped), ocr, ocr_image and ocr_deduplicates must be lists")
            return 0
        frames = c["keyframe_ssim"] + c["keyframe_ssim_dropped"]
        if len({len(frames), *(len(x) for x in lists[2:])}) != 1:
            self.problem(f"{where}: ocr, ocr_image and ocr_deduplicates need one entry per SSIM keyframe")
            return 0
        if not isinstance(c.get("caption"), (str, type(None))):  # absent in datasets older than the field
            self.problem(f"{where}: caption must be a string or null")
        if c["keyframe_ssim_dropped"] if c["visual_kept"] else c["keyframe_ssim"]:
            self.problem(f"{where}: keyframe_ssim must list only shipped keyframes (visual_kept "
                         f"{c['visual_kept']}), the others keyframe_ssim_dropped")
        for path in frames + [p for p in c["ocr_image"] if p not in frames]:
            self.image_file(path, where, c["vid"], c["clip_start"], c["clip_end"])
        if frames_shipped:
            for path in c["extracted_frames"]:
                rel = self.relative(path, where)
                if rel is not None and not (self.root / rel).is_file():
                    self.problem(f"{where}: sampled frame {rel} does not exist")
        if c["token_num"] != c["image_tokens"] + c["asr_token_num"]:
            self.problem(f"{where}: token_num is not image_tokens + asr_token_num")
        return len(frames) if c["visual_kept"] else 0

    def check_clips(self, obelics_names: list[str]) -> None:
        if not obelics_names and not (self.root / "clips").exists():
            return  # an export without samples has no clip view either
        names = self.shard_names("clips")
        if names != obelics_names:
            self.problem(f"clips/ shards {names} differ from obelics/ shards {obelics_names}")
        frames_shipped = (self.root / "frames").is_dir()
        g = 0
        for name in names:
            for n, sample in self.lines(f"clips/{name}"):
                where = f"clips/{name} line {n}"
                if not isinstance(sample, dict) or not isinstance(sample.get("conversations"), list):
                    self.problem(f"{where}: needs token_num and a conversations list")
                    g += 1
                    continue
                ends, images, previous = [], 0, None
                for c in sample["conversations"]:
                    if isinstance(c, dict) and c.get("vid") == END_OF_VIDEO_CLIP["vid"]:
                        if c != END_OF_VIDEO_CLIP:
                            self.problem(f"{where}: End-of-Video pseudo-clip must be exactly {END_OF_VIDEO_CLIP}")
                        if previous is None:
                            self.problem(f"{where}: End-of-Video pseudo-clip with no clip before it")
                        else:
                            ends.append(previous)
                        continue
                    images += self.check_clip(c, where, frames_shipped)
                    previous = c.get("vid") if isinstance(c, dict) else None
                if sample.get("token_num") != sum(c.get("token_num", 0) for c in sample["conversations"]
                                                  if isinstance(c, dict)):
                    self.problem(f"{where}: token_num is not the sum of its clips' token_num")
                if g < len(self.obelics_images):
                    if ends != self.obelics_eov_order[g] or images != self.obelics_images[g]:
                        self.problem(f"{where}: does not describe the same videos and images as obelics sample {g}")
                g += 1
        if g != len(self.obelics_images):
            self.problem(f"clips/ holds {g} samples, obelics/ holds {len(self.obelics_images)}")

    # -- records and extras -----------------------------------------------------------------

    def check_videos(self) -> None:
        if not (self.root / "videos.jsonl").is_file():
            self.problem("videos.jsonl: missing")
            return
        seen: dict[str, dict[str, Any]] = {}
        for n, rec in self.lines("videos.jsonl"):
            where = f"videos.jsonl line {n}"
            if not isinstance(rec, dict) or any(f not in rec for f in VIDEO_FIELDS):
                self.problem(f"{where}: a video record needs {', '.join(VIDEO_FIELDS)}")
                continue
            if rec["video_id"] in seen:
                self.problem(f"{where}: video {rec['video_id']!r} is listed twice")
            seen[rec["video_id"]] = rec
            if rec["status"] == "filtered" and not rec["reason"]:
                self.problem(f"{where}: filtered video {rec['video_id']!r} does not say why")
            if rec["status"] == "failed" and not (rec.get("error") or rec["reason"]):
                self.problem(f"{where}: failed video {rec['video_id']!r} does not say why")
        for vid in sorted(self.sample_videos):
            rec = seen.get(vid)
            if rec is None:
                self.problem(f"videos.jsonl: video {vid!r} is in the samples but has no record")
            elif rec["status"] != "done":
                self.problem(f"videos.jsonl: video {vid!r} is in the samples but its status is {rec['status']!r}")

    def check_single_json(self, names: list[str]) -> None:
        if not (self.root / "multimodal_textbook.json").is_file():
            return
        whole = self.load_json("multimodal_textbook.json")
        if not isinstance(whole, list):
            if whole is not None:
                self.problem("multimodal_textbook.json: not a JSON array")
            return
        rows = [s for name in names for _, s in self.lines(f"obelics/{name}")]
        if whole != rows:
            self.problem("multimodal_textbook.json: differs from the obelics shards")

    def check_wds(self) -> None:
        """Each listed tar is there with its SHA-256, and together they hold every OBELICS sample."""
        if not (self.root / "wds").exists():
            return
        index = self.load_json("wds/index.json")
        if not isinstance(index, list):
            self.problem("wds/index.json: missing or not a JSON array")
            return
        total = 0
        for entry in index:
            path = self.root / "wds" / str(entry.get("shard", ""))
            if not path.is_file():
                self.problem(f"wds/index.json: {entry.get('shard')!r} is not there")
                continue
            if sha256_file(path) != entry.get("sha256"):
                self.problem(f"wds/{entry['shard']}: SHA-256 differs from wds/index.json")
            total += entry.get("samples", 0)
        if total != len(self.obelics_images):
            self.problem(f"wds/ holds {total} samples, obelics/ holds {len(self.obelics_images)}")

    def run(self) -> None:
        from textbook.export.views import registered

        if not self.root.is_dir():
            self.problem(f"{self.root}: not a folder")
            return
        for view in registered():
            view.check(self)
        self.check_videos()
        if not (self.root / "README.md").is_file():
            self.problem("README.md: missing (the dataset card)")
        if self.dropped:
            self.problems.append(f"... and {self.dropped} more problem(s)")


def validate_dataset(root: Path) -> list[str]:
    """Every way the dataset at ``root`` breaks FORMAT.md; empty when it is valid."""
    checker = Checker(Path(root).resolve())
    checker.run()
    return checker.problems

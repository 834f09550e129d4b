"""A simulated corpus at paper scale: state database and artifact store as the stages leave them.

The paper (arXiv 2501.00958) keeps 75K videos for 3,915 knowledge points, about 18 minutes and
87 keyframes a video. ``generate`` writes that many finished videos (plus a share filtered, failed
and not yet processed) into a fresh data root: every stage run with its published snapshot, and
the documents the exporter reads (download ``info.json``, ``filters.json``, ``clips.json``,
``keyframes.json``, ``ocr.json``, ``visual_filter.json``) at the keys the stages use. Stages whose
outputs the exporter does not read (media, audio, transcript, refine; qa, which finds no cycle in a
lecture) are recorded without files.
Keyframe images are hard links to one tiny JPEG (a new one every 30,000 links: the dataset links each again).

Fast enough for a 2-core CI machine: a few shapes of video are serialized once with a
placeholder id, each video is its shape with the id substituted, and rows go in with
``executemany``, one transaction per batch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from textbook import keys
from textbook.config import load_settings, output_knobs
from textbook.context import Context
from textbook.pipeline import STAGES
from textbook.runner import fingerprint
from textbook.state import StateDB
from textbook.store import LocalStore

PLACEHOLDER = "QQQQQQQQQQQ"  # a valid id no generated one equals (those are s + 10 digits)
SHAPES = 16
LINKS_PER_JPEG = 30_000  # the dataset's hard link doubles that, under ext4's 65,000 links an inode
BATCH = 2_000
T0 = datetime(2026, 1, 1, 2, 0, 0, 1)
SENTENCE = ("the derivative of a function measures how fast it changes when its input moves a little so the "
            "slope of the tangent line at each point tells us the rate and we write it as a limit of ratios")
WORDS = tuple(SENTENCE.split())
SECONDS_PER_VIDEO_HOUR = {"metadata": 0.01, "download": 40.0, "audio": 6.0, "transcript": 180.0, "filters": 8.0, "refine": 1.0,
                          "clips": 0.5, "keyframes": 300.0, "ocr": 240.0, "visual_filter": 60.0,
                          "qa_cycles": 2.0, "qa_mcq": 0.0, "slide_vqa": 0.0, "video_captions": 0.0, "video_qa": 0.0}

LISTED = {"kept": True, "llm": {"skipped": "no LLM configured (metadata.llm.backend: none)"},  # the gate's run
          "verdicts": [{"name": "metadata_duration", "passed": True, "score": None, "reason": "duration unknown"},
                       {"name": "metadata_language", "passed": True, "score": None, "reason": "no language listed"}]}


@dataclass(frozen=True)
class Scale:
    videos: int  # finished (kept) videos
    keyframes: int = 87  # per finished video, on average
    minutes: float = 18.0  # per video, on average
    words_per_clip: int = 40
    filtered_share: float = 0.10  # extra videos a filter dropped, as a share of ``videos``
    failed_share: float = 0.03  # extra videos whose download failed
    new_share: float = 0.02  # extra videos found and not processed yet
    shared_share: float = 0.10  # videos a second knowledge point found too

    def describe(self) -> str:
        extra = {k: int(self.videos * s) for k, s in (("filtered", self.filtered_share),
                                                       ("failed", self.failed_share), ("new", self.new_share))}
        return (f"{self.videos} finished videos (+ {extra['filtered']} filtered, {extra['failed']} failed, "
                f"{extra['new']} new), ~{self.minutes:g} min and ~{self.keyframes} keyframes each, "
                f"{self.words_per_clip} words a clip")


def write_taxonomy(folder: Path, knowledge_points: int = 3915, subjects: int = 6, courses: int = 9,
                   sub_courses: int = 5) -> int:
    """A taxonomy of ``knowledge_points`` in ``subjects`` files (the paper: 6 subjects, 55 courses)."""
    folder.mkdir(parents=True, exist_ok=True)
    cells = subjects * courses * sub_courses
    n = 0
    for s in range(subjects):
        doc: dict[str, Any] = {"subject": {"id": f"subject{s:02d}", "name": f"Subject {s}", "level": 1 + s % 5},
                               "courses": []}
        for c in range(courses):
            subs = []
            for u in range(sub_courses):
                cell = (s * courses + c) * sub_courses + u
                count = knowledge_points * (cell + 1) // cells - knowledge_points * cell // cells
                subs.append({"id": f"sub{u:02d}", "name": f"Sub-course {s}-{c}-{u}", "knowledge_points": [
                    {"id": f"kp{k:03d}", "name": f"Knowledge point {s}-{c}-{u}-{k}"} for k in range(count)]})
                n += count
            doc["courses"].append({"id": f"course{c:02d}", "name": f"Course {s}-{c}", "sub_courses": subs})
        (folder / f"subject{s:02d}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return n


def context(data_root: Path, taxonomy_dir: Path) -> Context:
    settings = load_settings(environ={}, data_root=str(data_root), taxonomy_dir=str(taxonomy_dir))
    return Context(settings=settings, store=LocalStore(settings.artifact_root), db=StateDB(settings.db_url))


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (40, 90, 160)).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=1)  # as ArtifactStore.put_json writes


def _time(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")  # how SQLAlchemy stores a DateTime in SQLite


@dataclass
class Shape:
    """One kind of video, serialized with PLACEHOLDER for its id: status, documents, runs."""

    status: str
    reason: str
    docs: dict[str, tuple[str, str]]  # stage -> (document name, text)
    images: list[str]  # keyframe keys
    runs: list[dict[str, Any]]  # stage, status, error, result, seconds (artifacts added per video)
    duration: float
    keyframes: int = 0


class Generator:
    def __init__(self, ctx: Context, scale: Scale) -> None:
        self.ctx, self.scale = ctx, scale
        self.fp = {s.name: fingerprint(s, ctx) for s in STAGES}
        self.jpeg = _jpeg()
        self.jpeg_ref = {"sha256": hashlib.sha256(self.jpeg).hexdigest(), "size": len(self.jpeg)}
        self.pool = ctx.settings.data_path / "sim-jpeg"  # beside the store, not in it
        self.pool.mkdir(parents=True, exist_ok=True)
        self.links = 0

    def _dir(self, stage: str, vid: str = PLACEHOLDER) -> str:
        return keys.stage_dir(vid, stage, self.fp[stage])

    def _run(self, stage: str, duration: float, result: dict[str, Any], status: str = "done",
             error: str = "") -> dict[str, Any]:
        return {"stage": stage, "status": status, "error": error, "result": result,
                "seconds": round(SECONDS_PER_VIDEO_HOUR[stage] * duration / 3600, 3)}

    def done_shape(self, n: int) -> Shape:
        sc = self.scale
        factor = 0.5 + n / max(1, SHAPES - 1)  # 0.5 .. 1.5 of the average
        duration = round(sc.minutes * 60 * factor, 1)
        count = max(1, int(duration // 15))  # clips of 15 s (clips.min_seconds 10, max 20)
        total = max(1, round(sc.keyframes * factor))
        vid = PLACEHOLDER
        clips, frames, ocr, visual, images = [], [], [], [], []
        for i in range(count):
            start, end = 15.0 * i, (15.0 * (i + 1) if i < count - 1 else duration)
            text = " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(sc.words_per_clip))
            clips.append({"index": i, "start": start, "end": end, "text": text, "refined_text": None})
            kfs, here = [], total * (i + 1) // count - total * i // count
            for k in range(1, here + 1):
                key = f"{self._dir('keyframes')}/{keys.keyframe_name(vid, start, end, k)}"
                images.append(key)
                kfs.append({"clip_index": i, "k": k, "time": round(start + k * (end - start) / (here + 1), 1),
                            "key": key})
                line = f"Slide {i + 1}: rate of change, step {k}"
                ocr.append({"key": key, "text": line, "deduplicated": line, "confidence": [91.0],
                            "boilerplate": []})
            frames.append({"clip_index": i, "sampled": [], "keyframes": kfs})
            face = i % 20 == 19 and bool(kfs)
            visual.append({"clip_index": i, "kept": not face, "reason": "face" if face else "", "score": 0.5})
        verdicts = [{"name": "too_short", "passed": True, "score": duration, "reason": f"duration {duration} s"},
                    {"name": "silent", "passed": True, "score": -20.0, "reason": "loud enough"},
                    {"name": "not_english", "passed": True, "score": 0.98, "reason": "English confidence 0.98"},
                    {"name": "repetitive", "passed": True, "score": 0.01, "reason": "1% of word 3-grams repeated"}]
        dropped = sum(not v["kept"] for v in visual)
        docs = {
            "download": ("info.json", _dumps(self._info(duration))),
            "filters": ("filters.json", _dumps({"kept": True, "reason": "", "language": "en",
                                                "language_confidence": 0.98, "speech_seconds": duration * 0.8,
                                                "verdicts": verdicts})),
            "clips": ("clips.json", _dumps({"clips": clips})),
            "keyframes": ("keyframes.json", _dumps({"clips": frames, "params": {"fps": 1.0}})),
            "ocr": ("ocr.json", _dumps({"results": ocr, "ocr_boilerplate": []})),
            "visual_filter": ("visual_filter.json", _dumps({"clips": visual})),
        }
        results = {
            "metadata": LISTED,
            "download": {"duration": duration, "captions": 0, "height": 720},
            "audio": {"duration": duration, "sample_rate": 16000},
            "transcript": {"source": "faster_whisper"},
            "filters": {"kept": True, "language": "en", "duration": duration, "dbfs": -20.0, "failed": [],
                        "verdicts": verdicts},
            "refine": {"backend": "none", "llm_score": None},
            "clips": {"clips": count, "mean_seconds": round(duration / count, 2)},
            "keyframes": {"keyframes": len(images), "sampled": 0},
            "ocr": {"keyframes": len(images), "chars": sum(len(o["text"]) for o in ocr),
                    "deduplicated_chars": sum(len(o["text"]) for o in ocr), "boilerplate_lines": 0},
            "visual_filter": {"clips": count, "kept": count - dropped, "dropped": {"face": dropped} if dropped else {}},
            # lectures rarely pause for an answer: no question-pause-answer cycle, no model for MCQ
            "qa_cycles": {"pauses": 0, "cycles": 0, "dropped": 0, "frames": 0},
            "qa_mcq": {"not_run": "no LLM configured (qa_mcq.llm.backend: none): no multiple-choice questions"},
            "slide_vqa": {"not_run": "no LLM configured (slide_vqa.llm.backend: none)"},
            "video_captions": {"not_run": "no VLM configured (video_captions.vlm.backend: none)"},
            "video_qa": {"not_run": "video_captions did not run: no VLM configured (video_captions.vlm.backend: none)"},
        }
        runs = [self._run(s.name, duration, results[s.name]) for s in STAGES]
        return Shape("done", "", docs, images, runs, duration, len(images))

    def _info(self, duration: float) -> dict[str, Any]:
        return {"video_id": PLACEHOLDER, "url": f"https://www.youtube.com/watch?v={PLACEHOLDER}",
                "media_key": f"{self._dir('download')}/{keys.media_name()}", "captions": [], "duration": duration,
                "has_audio": True, "width": 1280, "height": 720, "fps": 30.0, "title": f"Lesson {PLACEHOLDER}",
                "channel": "Teacher", "license": "cc-by"}

    def filtered_shape(self) -> Shape:
        duration = 420.0
        reason = "not_english: English confidence 0.31"
        verdicts = [{"name": "not_english", "passed": False, "score": 0.31, "reason": "English confidence 0.31"}]
        docs = {"download": ("info.json", _dumps(self._info(duration))),
                "filters": ("filters.json", _dumps({"kept": False, "reason": reason, "language": "de",
                                                    "language_confidence": 0.69, "verdicts": verdicts}))}
        runs = [self._run("metadata", duration, LISTED),
                self._run("download", duration, {"duration": duration, "captions": 0, "height": 720}),
                self._run("audio", duration, {"duration": duration, "sample_rate": 16000}),
                self._run("transcript", duration, {"source": "faster_whisper"}),
                self._run("filters", duration, {"kept": False, "filtered": reason, "verdicts": verdicts})]
        return Shape("filtered", reason, docs, [], runs, duration)

    def failed_shape(self) -> Shape:
        error = "DownloadError: HTTP Error 403: Forbidden"
        run = self._run("download", 0.0, {"permanent": False, "category": "unavailable"}, status="failed",
                        error=error)
        return Shape("failed", f"download: unavailable: {error}", {}, [], [self._run("metadata", 0.0, LISTED), run], 0.0)

    def _link(self, key: str) -> None:
        if self.links % LINKS_PER_JPEG == 0:
            (self.pool / f"{self.links // LINKS_PER_JPEG}.jpg").write_bytes(self.jpeg)
        target = self.ctx.store.path(key)
        os.link(self.pool / f"{self.links // LINKS_PER_JPEG}.jpg", target)
        self.links += 1

    def write_video(self, vid: str, shape: Shape, at: datetime) -> tuple[list[tuple], str | None]:
        """The video's files; returns its stage-run rows and its published snapshot (JSON)."""
        artifacts: dict[str, list[dict[str, Any]]] = {r["stage"]: [] for r in shape.runs}
        made: set[str] = set()
        for key in shape.images:
            key = key.replace(PLACEHOLDER, vid)
            folder = key.rpartition("/")[0]
            if folder not in made:
                os.makedirs(self.ctx.store.root / folder, exist_ok=True)
                made.add(folder)
            self._link(key)
            artifacts["keyframes"].append({"key": key, **self.jpeg_ref})
        for stage, (name, text) in shape.docs.items():
            data = text.replace(PLACEHOLDER, vid).encode()
            key = f"{self._dir(stage, vid)}/{name}"
            os.makedirs(self.ctx.store.root / self._dir(stage, vid), exist_ok=True)
            (self.ctx.store.root / key).write_bytes(data)
            artifacts[stage].append({"key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
        rows, snapshot_runs = [], []
        for r in shape.runs:
            started = at
            at += timedelta(seconds=r["seconds"])
            result = r["result"]
            rows.append((vid, r["stage"], r["status"], 1, r["error"], self.fp[r["stage"]],
                         json.dumps(artifacts[r["stage"]]), json.dumps(result), "sim:1", "sim", 1, "", "",
                         _time(at), _time(started), _time(at), r["seconds"]))
            snapshot_runs.append({"stage": r["stage"], "status": r["status"], "attempts": 1, "error": r["error"],
                                  "config_hash": self.fp[r["stage"]], "artifacts": artifacts[r["stage"]],
                                  "result": result, "worker": "sim:1", "started_at": started.isoformat(),
                                  "finished_at": at.isoformat(), "seconds": r["seconds"]})
        published = None
        if shape.status in ("done", "filtered"):
            published = json.dumps({"status": shape.status, "reason": shape.reason, "runs": snapshot_runs})
        return rows, published


VIDEO_COLUMNS = ("video_id", "url", "source", "meta", "status", "reason", "created_at", "updated_at", "published",
                 "published_at")
LINK_COLUMNS = ("video_id", "kp_id", "search_keyword", "rank", "found_at")
RUN_COLUMNS = ("video_id", "stage", "status", "attempts", "error", "config_hash", "artifacts", "result", "worker",
               "owner_host", "owner_pid", "owner_started", "claim_token", "heartbeat_at", "started_at",
               "finished_at", "seconds")


def _insert(db: sqlite3.Connection, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)


def generate(data_root: Path, taxonomy_dir: Path, scale: Scale) -> dict[str, Any]:
    """Write the corpus into ``data_root`` (a fresh folder); returns what was written."""
    ctx = context(data_root, taxonomy_dir)
    ctx.db.create_schema()
    kps = ctx.taxonomy.knowledge_points
    ctx.db.upsert_knowledge_points(kps)
    gen = Generator(ctx, scale)
    for s in STAGES:
        ctx.db.remember_settings(gen.fp[s.name], s.name, {x: output_knobs(getattr(ctx.settings, x)) for x in s.sections})
    done = [gen.done_shape(n) for n in range(SHAPES)]
    plan = ([done[n % SHAPES] for n in range(scale.videos)] + [gen.filtered_shape()] * int(scale.videos * scale.filtered_share)
            + [gen.failed_shape()] * int(scale.videos * scale.failed_share) + [None] * int(scale.videos * scale.new_share))
    ctx.db.engine.dispose()
    db = sqlite3.connect(ctx.settings.db_url.removeprefix("sqlite:///"))
    db.execute("PRAGMA synchronous=OFF")
    counts: dict[str, int] = {}
    kf = 0
    for lo in range(0, len(plan), BATCH):
        videos, links, runs = [], [], []
        for n in range(lo, min(lo + BATCH, len(plan))):
            vid, shape = f"s{n:010d}", plan[n]
            kp = kps[(n * 7919) % len(kps)]  # a prime stride spreads neighbours over the taxonomy
            at = T0 + timedelta(minutes=n)
            status = shape.status if shape else "new"
            counts[status] = counts.get(status, 0) + 1
            published = None
            if shape is not None:
                rows, published = gen.write_video(vid, shape, at)
                runs += rows
                kf += shape.keyframes
            meta = {"video_id": vid, "url": f"https://www.youtube.com/watch?v={vid}", "source": "youtube",
                    "title": f"Lesson {vid}", "channel": "Teacher", "duration": shape.duration if shape else None,
                    "license": "cc-by", "search_keyword": kp.query, "rank": n // len(kps)}
            videos.append((vid, meta["url"], "youtube", json.dumps(meta), status, shape.reason if shape else "",
                           _time(at), _time(at), published, _time(at) if published else None))
            links.append((vid, kp.id, kp.query, n // len(kps), _time(at)))
            if scale.shared_share and n % round(1 / scale.shared_share) == 0:
                other = kps[(n * 7919 + 1) % len(kps)]
                links.append((vid, other.id, other.query, 0, _time(at + timedelta(days=1))))
        with db:
            _insert(db, "videos", VIDEO_COLUMNS, videos)
            _insert(db, "video_knowledge_points", LINK_COLUMNS, links)
            _insert(db, "stage_runs", RUN_COLUMNS, runs)
    db.close()
    return {"videos": len(plan), "by_status": counts, "keyframes": kf, "knowledge_points": len(kps),
            "jpeg_files": len(list(gen.pool.iterdir()))}

"""The M4-Instruct view (LLaVA-NeXT-Interleave): multi-image instructions built from the corpus.

Four tasks need no model, because the corpus already holds keyframes in time order, each with
the OCR lines it added over the keyframe before it, and the refined transcript of its clip:

- ``spot_the_difference``: two consecutive keyframes of a clip; the answer is the text the
  second adds (the OCR deduplication's new lines).
- ``temporal_order``: up to four keyframes of a video, shuffled; which was shown first.
- ``slide_narration``: a clip's narration and four keyframes of the video; which one it explains.
- ``multi_frame_narration``: a clip's keyframes as frames; the answer is its narration.

One task needs a model, and is added where the ``slide_vqa`` stage ran with an LLM:

- ``text_rich_vqa``: consecutive slides and a question that two or more of them answer.

One reuses the LLaVA-Video captions where the ``video_captions`` stage ran:

- ``video_detailed_caption``: a segment's keyframes as frames; the answer is its level-3 caption.

Records take the released ``m4_instruct_annotations.json`` shape: ``id``, ``image`` (paths),
``conversations`` (human, gpt) and ``metadata``; multiple-choice ones also carry ``choice_list``.
Every human turn holds exactly one ``<image>`` per path, in the order of ``image``. Placement
follows the paper's Table 6: ``interleaved`` keeps each ``<image>`` where it belongs,
``in_front`` moves them all to the start and leaves ``Image k`` where each was, ``mixed`` draws
one of the two per record with a seeded generator (the paper's best).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, Any, Sequence

from textbook.config import ExportSettings
from textbook.export.files import DatasetWriter, dumps
from textbook.export.interleave import ClipItem
from textbook.export.obelics import write_array
from textbook.export.spool import Ordered, Spool
from textbook.export.views import Example, Produced, View, ViewContext

if TYPE_CHECKING:
    from textbook.export.validate import Checker
    from textbook.export.videos import VideoEntry

FOLDER = "m4"
ARRAY = f"{FOLDER}/m4_textbook_annotations.json"
LINES = f"{FOLDER}/m4_textbook_annotations.jsonl"
IMAGE = "<image>"
LETTERS = "ABCD"
TASKS = ("spot_the_difference", "temporal_order", "slide_narration", "multi_frame_narration", "text_rich_vqa",
         "video_detailed_caption")
MAX_CAPTION_FRAMES = 8


def placed(turn: str, count: int, placement: str) -> str:
    """``turn`` written with its ``count`` placeholders where they belong, moved to the front for
    ``in_front`` (each old place then says ``Image k``)."""
    if placement != "in_front":
        return turn
    parts = turn.split(IMAGE)
    anchored = parts[0] + "".join(f"Image {k}" + rest for k, rest in enumerate(parts[1:], start=1))
    return f"{IMAGE}\n" * count + anchored


def choose_placement(setting: str, ratio: float, seed: int, record_id: str) -> str:
    if setting != "mixed":
        return setting
    return "in_front" if random.Random(f"{seed}:{record_id}").random() < ratio else "interleaved"


class _Builder:
    """The records of one video."""

    def __init__(self, entry: VideoEntry, exp: ExportSettings, path: Any) -> None:
        self.entry, self.exp, self.path = entry, exp, path
        self.records: list[dict[str, Any]] = []
        self.made: Counter[str] = Counter()  # records of each task so far: their ids count them
        kp = entry.knowledge_point
        self.kp = kp.id if kp else None

    def add(self, task: str, images: Sequence[str], human: str, answer: str, clip: ClipItem | None,
            instruction: str, choices: Sequence[str] = ()) -> None:
        record_id = f"{self.entry.video_id}-{task}-{self.made[task]}"
        self.made[task] += 1
        placement = choose_placement(self.exp.m4_placement, self.exp.m4_mixed_ratio, self.exp.seed, record_id)
        record: dict[str, Any] = {
            "id": record_id,
            "image": [self.path(p) for p in images],
            "conversations": [{"from": "human", "value": placed(human, len(images), placement)},
                              {"from": "gpt", "value": answer}],
            "metadata": {"dataset": f"textbook_{task}", "split": "train", "task_instruction": instruction,
                         "question_type": "multi-choice" if choices else "open-ended", "placement": placement,
                         "video_id": self.entry.video_id, "knowledge_point": self.kp,
                         "clip_start": clip.start if clip else None, "clip_end": clip.end if clip else None},
        }
        if choices:
            record["choice_list"] = list(choices)
        self.records.append(record)

    def build(self) -> list[dict[str, Any]]:
        clips = [c for c in self.entry.clips or [] if c.images]
        for clip in clips:
            self.spot_the_difference(clip)
            if len(clip.images) >= 2 and clip.refined_asr:
                self.add("multi_frame_narration", clip.images,
                         "These frames come from one part of a lecture video, in order:\n"
                         + "\n".join(IMAGE for _ in clip.images) + "\nWhat does the teacher explain here?",
                         clip.refined_asr, clip, "Narrate what the teacher explains over these frames.")
        self.temporal_order(clips)
        rng = random.Random(f"{self.exp.seed}:{self.entry.video_id}:match")
        for n in range(len(clips)):
            self.slide_narration(clips, n, rng)
        self.text_rich_vqa(clips)
        self.video_detailed_caption(clips)
        return self.records

    def video_detailed_caption(self, clips: Sequence[ClipItem]) -> None:
        """A segment's shown keyframes (at most ``MAX_CAPTION_FRAMES``, evenly spread) and its level-3 caption."""
        by_index = {clip.index: clip for clip in clips}
        for seg in (self.entry.derived.get("video_captions") or {}).get("segments", []):
            shown = [(image, by_index[i]) for i in seg["clips"] if i in by_index for image in by_index[i].images]
            if len(shown) < 2:
                continue
            step = max(1, -(-len(shown) // MAX_CAPTION_FRAMES))
            frames = shown[::step][:MAX_CAPTION_FRAMES]
            final = next(c["text"] for c in seg["captions"] if c["level"] == 3)
            self.add("video_detailed_caption", [image for image, _ in frames],
                     "These frames come from one part of a lecture video, in order:\n"
                     + "\n".join(IMAGE for _ in frames) + "\nDescribe this part of the video in detail.",
                     final, frames[0][1], "Describe the video from its frames.")

    def text_rich_vqa(self, clips: Sequence[ClipItem]) -> None:
        """The slide_vqa stage's questions, over keyframes this dataset shows."""
        shown = {f.source_key: (f.path, clip) for clip in clips if clip.visual_kept for f in clip.frames}
        for item in (self.entry.derived.get("slide_vqa") or {}).get("items", []):
            if not all(key in shown for key in item["keys"]):
                continue
            slides = "\n".join(IMAGE for _ in item["keys"])  # in_front leaves "Image k" where each was
            self.add("text_rich_vqa", [shown[key][0] for key in item["keys"]],
                     f"These slides come from one lecture video, in order:\n{slides}\n{item['question']}",
                     item["answer"], shown[item["keys"][0]][1], "Answer from the text of several slides.")

    def spot_the_difference(self, clip: ClipItem) -> None:
        frames = clip.frames if clip.visual_kept else ()
        for before, after in zip(frames, frames[1:]):
            added = [line.strip() for line in after.ocr_deduplicated.splitlines() if line.strip()]
            if not added:
                continue
            self.add("spot_the_difference", (before.path, after.path),
                     f"First slide: {IMAGE}\nSecond slide: {IMAGE}\nWhat text does the second slide add to the first?",
                     "The second slide adds: " + "; ".join(added), clip,
                     "Find the difference between two consecutive slides.")

    def temporal_order(self, clips: Sequence[ClipItem]) -> None:
        shown = [(clip, image) for clip in clips for image in clip.images]
        if len(shown) < 2:
            return
        step = max(1, len(shown) // 4)
        picked = shown[::step][:4]
        order = list(range(len(picked)))
        random.Random(f"{self.exp.seed}:{self.entry.video_id}:order").shuffle(order)
        images = [picked[i][1] for i in order]
        letters = LETTERS[:len(images)]
        self.add("temporal_order", images,
                 "These slides come from one lecture video:\n"
                 + "\n".join(f"{letter}. {IMAGE}" for letter in letters)
                 + "\nWhich of them was shown first? Answer with the letter.",
                 letters[order.index(0)], None, "Order the slides in time.", list(letters))

    def slide_narration(self, clips: Sequence[ClipItem], n: int, rng: random.Random) -> None:
        clip = clips[n]
        if not clip.refined_asr or len(clips) < 2:
            return
        picks = rng.sample(range(len(clips) - 1), min(3, len(clips) - 1))  # other clips: skip n itself
        options = [clip] + [clips[k + (k >= n)] for k in picks]
        rng.shuffle(options)
        gold = options.index(clip)
        letters = LETTERS[:len(options)]
        self.add("slide_narration", [c.images[0] for c in options],
                 f'The teacher says: "{clip.refined_asr}"\nWhich slide is the teacher talking about?\n'
                 + "\n".join(f"{letters[k]}. {IMAGE}" for k in range(len(options))) + "\nAnswer with the letter.",
                 letters[gold], clip, "Match the narration to its slide.", list(letters))


class M4View(View):
    name = "m4"
    folders = (FOLDER,)
    produced_by = (Produced("slide_vqa", "items", "text-rich multi-slide questions"),)  # video_captions: llava_video's

    @staticmethod
    def examples(stage: str, doc: Any) -> list[Example]:
        return [Example(i["question"], (f"Answer: {i['answer']}", f"Cites images {i['cites']}"), tuple(i["keys"]))
                for i in doc["items"]]

    def __init__(self, vc: ViewContext) -> None:
        super().__init__(vc)
        self.spool = Spool(vc.tmp / "m4")
        self.counts = {task: 0 for task in TASKS}

    @classmethod
    def enabled(cls, exp: ExportSettings) -> bool:
        return exp.m4

    def add_video(self, entry: VideoEntry, ready: bool) -> None:
        if not ready:
            return
        for record in _Builder(entry, self.vc.export, self.vc.path).build():
            self.counts[record["metadata"]["dataset"].removeprefix("textbook_")] += 1
            self.spool.append((dumps(record) + "\n").encode())

    def write(self, writer: DatasetWriter, order: Sequence[int]) -> None:
        if not len(self.spool):
            return
        lines = Ordered(self.spool, range(len(self.spool)))
        writer.write_lines(LINES, iter(lines))
        write_array(writer, ARRAY, lines)

    def card(self) -> list[str]:
        counts = ", ".join(f"{n} {task}" for task, n in self.counts.items())
        return [f"- `m4/m4_textbook_annotations.json` (and a `.jsonl` twin): {len(self.spool)} multi-image instruction "
                f"record(s) in the M4-Instruct shape of LLaVA-NeXT-Interleave ({counts}), placement "
                f"`{self.vc.export.m4_placement}`, built from the exported videos; text_rich_vqa only where the "
                f"slide_vqa stage ran with an LLM, video_detailed_caption where video_captions ran with a VLM."]

    @classmethod
    def card_when_off(cls, exp: ExportSettings) -> list[str]:
        return ["- `m4/`: not written (export.m4 is off)."]

    def close(self) -> None:
        self.spool.close()

    @staticmethod
    def check(checker: Checker) -> None:
        if not (checker.root / FOLDER).exists():
            return
        array = checker.load_json(ARRAY)
        if not isinstance(array, list):
            checker.problem(f"{ARRAY}: not a JSON array")
            return
        for n, record in enumerate(array):
            where = f"{ARRAY} record {n}"
            if not isinstance(record, dict) or not {"id", "image", "conversations", "metadata"} <= set(record):
                checker.problem(f"{where}: needs id, image, conversations and metadata")
                continue
            human = "".join(t.get("value", "") for t in record["conversations"] if t.get("from") == "human")
            if human.count(IMAGE) != len(record["image"]):
                checker.problem(f"{where}: {human.count(IMAGE)} {IMAGE} placeholder(s) for {len(record['image'])} images")
            for image in record["image"]:
                checker.image_file(image, where)
        lines = [record for _, record in checker.lines(LINES)]
        if lines != array:
            checker.problem(f"{LINES}: differs from {ARRAY}")


"""The clip view (FORMAT.md section 3): the same samples, one record per clip with intermediates.

It is what the release's Idefics trainer reads, and what a person reads to see why a clip looks
the way it does: every sampled frame compared, the keyframes SSIM kept, each keyframe's OCR before
and after deduplication (and the template lines, such as footers, set apart in ``ocr_boilerplate``),
and whether the visual filter kept the clip's images.

That trainer reads ``keyframe_ssim`` as the images to train on, so it lists only keyframes that
ship: the ones SSIM kept in a clip whose visuals were filtered out move to ``keyframe_ssim_dropped``.
With ``compat`` (export.single_json) each clip also carries the OCR field name that trainer reads,
``ocr_qwen2_vl_72b``: an alias holding the clip's deduplicated OCR as one string, whatever engine
(``ocr_engine``) produced it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from textbook.config import ExportSettings
from textbook.export.files import DatasetWriter, dumps
from textbook.export.interleave import ClipItem
from textbook.export.obelics import write_array, write_shards
from textbook.export.packing import Sample
from textbook.export.spool import Ordered, Spool
from textbook.export.views import View, ViewContext

if TYPE_CHECKING:
    from textbook.export.validate import Checker

FOLDER = "clips"
SINGLE_JSON = "multimodal_textbook_meta_data.json"  # the release's name for this view as one array
OCR_ALIAS = "ocr_qwen2_vl_72b"
# The release's spelling of the pseudo-clip that marks a video boundary.
END_OF_VIDEO_CLIP = {"vid": "End of a Video", "image_tokens": 0, "token_num": 0}


def clip_record(clip: ClipItem, image_tokens: int, path: Callable[[str], str], frames_shipped: bool,
                ocr_engine: str = "", compat: bool = False) -> dict[str, Any]:
    images = len(clip.images) * image_tokens
    ssim_kept = [path(f.path) for f in clip.frames]
    record = {
        "vid": clip.video_id,
        "clip_start": clip.start,
        "clip_end": clip.end,
        "asr": clip.asr,
        "refined_asr": clip.refined_asr,
        # only paths that exist in the dataset: the sampled frames ship with export.sampled_frames
        "extracted_frames": [path(f.path) for f in clip.sampled] if frames_shipped else [],
        "keyframe_ssim": ssim_kept if clip.visual_kept else [],
        "keyframe_ssim_dropped": [] if clip.visual_kept else ssim_kept,
        "ocr": [f.ocr for f in clip.frames],
        "ocr_image": [path(f.path) for f in clip.frames],
        "ocr_deduplicates": [f.ocr_deduplicated for f in clip.frames],
        "ocr_boilerplate": [f.ocr_boilerplate for f in clip.frames],
        "visual_kept": clip.visual_kept,
        "visual_reason": clip.visual_reason,
        "caption": clip.caption,
        "image_tokens": images,
        "token_num": images + clip.text_tokens,
        "asr_token_num": clip.text_tokens,
        "ocr_engine": ocr_engine,
    }
    if compat:
        record[OCR_ALIAS] = clip.ocr_text
    return record


def clip_sample(sample: Sample, *, image_tokens: int, path: Callable[[str], str],
                frames_shipped: bool, ocr_engine: str = "", compat: bool = False) -> dict[str, Any]:
    conversations = [clip_record(e, image_tokens, path, frames_shipped, ocr_engine, compat)
                     if isinstance(e, ClipItem) else dict(END_OF_VIDEO_CLIP) for e in sample]
    return {"token_num": sum(c["token_num"] for c in conversations), "conversations": conversations}


def write_clip_view(writer: DatasetWriter, rows: Ordered, exp: ExportSettings) -> list[str]:
    """The clip view's shards (``clips/part-NNNNN.jsonl``) from ``clip_sample`` rows in published
    order, and with export.single_json also the one JSON array the release's Idefics2 trainer
    reads; returns the shard names."""
    names = write_shards(writer, FOLDER, rows, exp.shard_size)
    if exp.single_json:
        write_array(writer, SINGLE_JSON, rows)
    return names


class ClipView(View):
    name = "clips"
    folders = (FOLDER,)
    files = (SINGLE_JSON,)

    def __init__(self, vc: ViewContext) -> None:
        super().__init__(vc)
        self.spool = Spool(vc.tmp / "clips")

    def add_sample(self, sample: Sample, row: dict[str, Any]) -> None:
        exp = self.vc.export
        record = clip_sample(sample, image_tokens=exp.image_tokens, path=self.vc.path, frames_shipped=exp.sampled_frames,
                             ocr_engine=self.vc.settings.ocr.backend, compat=exp.single_json)
        self.spool.append((dumps(record) + "\n").encode())

    def write(self, writer: DatasetWriter, order: Sequence[int]) -> None:
        write_clip_view(writer, Ordered(self.spool, order), self.vc.export)

    def card(self) -> list[str]:
        single = (
            "- `multimodal_textbook.json` and `multimodal_textbook_meta_data.json`: the OBELICS and clip views as one "
            "JSON array each, for the release's LLaVA and Idefics2 trainers. Their clips also carry `ocr_qwen2_vl_72b`, "
            "the field name the Idefics2 trainer reads OCR from: it is an alias holding the clip's deduplicated OCR "
            f"as one string, produced by `{self.vc.settings.ocr.backend}` (named in `ocr_engine`), not by Qwen2-VL-72B."
            if self.vc.export.single_json else
            "- `multimodal_textbook.json`, `multimodal_textbook_meta_data.json`: not written (export.single_json is off).")
        return ["- `clips/part-NNNNN.jsonl`: the same samples, one record per clip with its intermediates. "
                "`keyframe_ssim` lists only keyframes that ship; the keyframes SSIM kept in a clip whose visuals were "
                "filtered out are in `keyframe_ssim_dropped`.", single]

    def close(self) -> None:
        self.spool.close()

    @staticmethod
    def check(checker: Checker) -> None:
        checker.check_clips(checker.obelics_names)

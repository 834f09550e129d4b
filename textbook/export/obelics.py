"""The OBELICS view (FORMAT.md section 2): interleaved samples in JSON Lines shards.

Beside the shards go ``length.json`` and ``shard_id_range.json``, which the public LLaVA loader
needs to read a folder of shards, and optionally the release's single JSON array.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from textbook.export.files import DatasetWriter, dumps
from textbook.export.interleave import ClipItem, positions
from textbook.export.packing import Sample
from textbook.export.spool import Ordered, Spool
from textbook.export.views import View, ViewContext
from textbook.tokens import count_tokens

if TYPE_CHECKING:
    from textbook.export.validate import Checker

FOLDER = "obelics"
SINGLE_JSON = "multimodal_textbook.json"


def shard_name(n: int) -> str:
    return f"part-{n:05d}.jsonl"


def obelics_sample(sample: Sample, *, end_of_video: str, image_tokens: int,
                   image_path: Callable[[str], str]) -> dict[str, Any]:
    images: list[str | None] = []
    texts: list[str | None] = []
    text_ocr: list[str | None] = []
    metadata: list[dict[str, Any]] = []
    for entry in sample:
        for pos in positions(entry, end_of_video):
            images.append(image_path(pos.image) if pos.image is not None else None)
            texts.append(pos.text)
            text_ocr.append(pos.text_ocr)
            metadata.append({"video_id": pos.video_id, "clip_start": pos.clip_start, "clip_end": pos.clip_end,
                             "kind": pos.kind, "knowledge_point": pos.knowledge_point})
    image_num = sum(1 for i in images if i is not None)
    return {
        "images": images,
        "texts": texts,
        "text_ocr_list": text_ocr,
        "metadata": metadata,
        "image_num": image_num,
        "text_num": sum(e.text_tokens for e in sample if isinstance(e, ClipItem) and e.has_text),
        # each text is a clip's refined transcript or the End-of-Video marker: their counts are known
        "token_num": sum(e.text_tokens if isinstance(e, ClipItem) else count_tokens(end_of_video)
                         for e in sample if not isinstance(e, ClipItem) or e.has_text) + image_num * image_tokens,
    }


def write_shards(writer: DatasetWriter, folder: str, rows: Ordered, shard_size: int) -> list[str]:
    """Rows (encoded lines) in order into ``folder/part-NNNNN.jsonl``, ``shard_size`` each; returns
    the shard names."""
    if shard_size <= 0:
        raise ValueError(f"export.shard_size must be positive, got {shard_size}")
    names = []
    for n, start in enumerate(range(0, len(rows), shard_size)):
        names.append(shard_name(n))
        writer.write_bytes(f"{folder}/{names[-1]}", b"".join(rows.chunk(start, start + shard_size)))
    return names


def write_array(writer: DatasetWriter, rel: str, rows: Ordered) -> None:
    """The rows as one JSON array, one row a line (what the release's trainers read), streamed."""
    def lines() -> Iterator[bytes]:
        yield b"["
        for n, row in enumerate(rows):
            yield (b",\n" if n else b"") + row.rstrip(b"\n")
        yield b"]\n"

    writer.write_lines(rel, lines())


def write_obelics(writer: DatasetWriter, rows: Ordered, shard_size: int, single_json: bool) -> list[str]:
    names = write_shards(writer, FOLDER, rows, shard_size)
    lengths = {name: len(rows.order[n * shard_size:(n + 1) * shard_size]) for n, name in enumerate(names)}
    ranges = {name: [n * shard_size, n * shard_size + lengths[name]] for n, name in enumerate(names)}
    writer.write_json(f"{FOLDER}/length.json", lengths)
    writer.write_json(f"{FOLDER}/shard_id_range.json", ranges)
    if single_json:
        write_array(writer, SINGLE_JSON, rows)
    return names


class ObelicsView(View):
    name = "obelics"
    folders = (FOLDER,)
    files = (SINGLE_JSON,)

    def __init__(self, vc: ViewContext) -> None:
        super().__init__(vc)
        self.spool = Spool(vc.tmp / "obelics")
        self.shards: list[str] = []

    def add_sample(self, sample: Sample, row: dict[str, Any]) -> None:
        self.spool.append((dumps(row) + "\n").encode())

    def write(self, writer: DatasetWriter, order: Sequence[int]) -> None:
        exp = self.vc.export
        self.shards = write_obelics(writer, Ordered(self.spool, order), exp.shard_size, exp.single_json)

    def card(self) -> list[str]:
        return [f"- `obelics/part-NNNNN.jsonl`: {len(self.spool)} interleaved sample(s) in {len(self.shards)} shard(s) "
                f"of at most {self.vc.export.shard_size}, with `length.json` and `shard_id_range.json` ([start, end) "
                "sample indices)."]

    def close(self) -> None:
        self.spool.close()

    @staticmethod
    def check(checker: Checker) -> None:
        checker.obelics_names = checker.check_obelics()
        checker.check_single_json(checker.obelics_names)

"""InSI-SIM at compaction time (textbook/insi_sim.py): ``insi_sim.jsonl`` and the card's Table 1 row.

While the samples stream past, the view keeps only the chosen few (a bounded heap of image paths);
it measures them when the dataset is written, reading the keyframes the compaction has just put
under ``images/``, so memory stays bounded and the same corpus gives the same bytes, whether
compacted night by night or exported in full.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from textbook.config import ExportSettings
from textbook.export.card import table
from textbook.export.packing import Sample
from textbook.export.views import View, ViewContext
from textbook.insi_sim import Chooser, Measurement, Method, measure_chosen, sample_images

if TYPE_CHECKING:
    from textbook.export.files import DatasetWriter
    from textbook.export.validate import Checker

PAIRS_FILE = "insi_sim.jsonl"


def method_of(exp: ExportSettings) -> Method:
    return Method(clip_model=exp.insi_sim_clip_model, arithmetic=exp.insi_sim_arithmetic,
                  ssim_width=exp.insi_sim_ssim_width)


class InSiSimView(View):
    name = "insi_sim"
    files = (PAIRS_FILE,)

    def __init__(self, vc: ViewContext) -> None:
        super().__init__(vc)
        self.method = method_of(vc.export)  # a bad combination fails here, before anything is written
        self.chooser = Chooser(vc.export.insi_sim_samples, vc.export.seed)
        self.packed = 0
        self.measurement: Measurement | None = None

    @classmethod
    def enabled(cls, exp: ExportSettings) -> bool:
        return exp.insi_sim_samples > 0

    def add_sample(self, sample: Sample, row: dict[str, Any]) -> None:
        self.chooser.offer(self.packed, sample_images(row))
        self.packed += 1

    def write(self, writer: DatasetWriter, order: Sequence[int]) -> None:
        wanted = {index for index, _ in self.chooser.chosen()}
        published = {packed: k for k, packed in enumerate(order) if packed in wanted}
        self.measurement = measure_chosen(self.chooser, writer.root, self.method, self.vc.export.insi_sim_device,
                                          index_of=published)
        writer.write_lines(PAIRS_FILE, self.measurement.lines())

    def card(self) -> list[str]:
        return [f"- `{PAIRS_FILE}`: InSI-SIM per measured sample (its index in the OBELICS view, its images, "
                "every pair's SSIM and CLIP cosine, its score), below under Coherence."]

    @classmethod
    def card_when_off(cls, exp: ExportSettings) -> list[str]:
        return ["- InSI-SIM is not measured (export.insi_sim_samples is 0)."]

    def card_section(self) -> list[str]:
        m = self.measurement
        if m is None:
            return []
        return ["## Coherence (InSI-SIM, the paper's Table 1)\n",
                table(Measurement.header(), m.table()) + "\n", *m.notes(), ""]

    @staticmethod
    def check(checker: Checker) -> None:
        if not (checker.root / PAIRS_FILE).is_file():
            return
        for n, line in checker.lines(PAIRS_FILE):
            where = f"{PAIRS_FILE} line {n}"
            if not isinstance(line, dict):
                continue
            images = line.get("images") or []
            for path in images:
                checker.image_file(path, where)
            count = len(images)
            if line.get("image_num") != count or len(line.get("pairs") or []) != count * (count - 1) // 2:
                checker.problem(f"{where}: {count} images need {count * (count - 1) // 2} pairs and image_num {count}")

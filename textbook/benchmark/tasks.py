"""The paper's seven benchmark columns (Table 2), how each is prompted and scored, and the paper's
own numbers, which tables print beside ours, labelled as the paper's."""

from __future__ import annotations

from dataclasses import dataclass

SHORT = "Answer the question using a single word or phrase."
LETTER = "Answer with the option's letter from the given choices directly."


@dataclass(frozen=True)
class TaskSpec:
    name: str
    metric: str  # vqa | mc | math (judge when configured, else rule) | exact
    suffix: str
    pool: str  # the task whose split gives the demonstrations (math sets have no train split)
    pool_split: str
    max_new_tokens: int
    ocr: bool = False  # append the reference OCR tokens to the question (TextVQA-OCR)


TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("scienceqa_img", "mc", LETTER, "scienceqa_img", "train", 128),
    TaskSpec("okvqa", "vqa", SHORT, "okvqa", "train", 128),
    TaskSpec("textvqa", "vqa", SHORT, "textvqa", "train", 128),
    TaskSpec("textvqa_ocr", "vqa", SHORT, "textvqa_ocr", "train", 128, ocr=True),
    TaskSpec("mathvista", "math", "", "mathvision", "test", 512),
    TaskSpec("mathvision", "math", "", "mathvista", "test", 512),
    TaskSpec("mathverse", "math", ". Please answer the question and provide final value or choices.",
             "mathvision", "test", 512),
)}
SEVEN = tuple(TASKS)

# arXiv 2501.00958, LLaVA-1.5-7B continually pretrained on 610 K samples; percent, shots 0/1/2/4.
PAPER_TABLE2: dict[str, dict[str, dict[int, float]]] = {
    "Textbook (paper)": {
        "scienceqa_img": {0: 26.3, 1: 29.4, 2: 25.1, 4: 37.3}, "okvqa": {0: 10.2, 1: 31.2, 2: 36.8, 4: 39.9},
        "textvqa": {0: 11.8, 1: 26.7, 2: 32.1, 4: 33.5}, "textvqa_ocr": {0: 14.1, 1: 33.1, 2: 36.4, 4: 42.8},
        "mathvista": {0: 24.3, 1: 43.4, 2: 33.2, 4: 29.2}, "mathvision": {0: 14.5, 1: 25.6, 2: 18.2, 4: 18.1},
        "mathverse": {0: 7.7, 1: 28.5, 2: 19.8, 4: 14.6},
    },
}
PAPER_TABLE2_AVG: dict[str, dict[int, float]] = {
    "Textbook (paper)": {0: 15.5, 1: 31.1, 2: 28.8, 4: 30.8},
    "OBELICS (paper)": {0: 10.7, 1: 22.8, 2: 24.8, 4: 26.2},
    "MMC4 (paper)": {0: 10.9, 1: 19.4, 2: 19.5, 4: 21.9},
}
# Table 4, the cheat test: the test item itself is in the context.
CHEAT_TASKS = ("okvqa", "textvqa", "mathvista", "mathvision", "mathverse")
PAPER_TABLE4: dict[str, dict[int, dict[str, float]]] = {
    "Textbook (paper)": {1: dict(zip(CHEAT_TASKS, (79.2, 51.9, 94.1, 98.4, 76.8))),
                         2: dict(zip(CHEAT_TASKS, (84.3, 49.4, 77.1, 70.7, 63.1)))},
    "OBELICS (paper)": {1: dict(zip(CHEAT_TASKS, (71.5, 43.8, 67.7, 66.5, 62.8))),
                        2: dict(zip(CHEAT_TASKS, (71.3, 42.8, 56.7, 39.9, 39.5)))},
}

"""Multiple-choice questions from question-pause-answer cycles, as SoS's ``generate_dora_vqa.py``.

An LLM turns the answer the video gives into a short answer plus three distractors for young
learners; the four choices are shuffled with a seed per entry, so ``correct_index`` and the
letter ``correct_choice`` are stable across runs. The tags are rule-based, from the words of the
question and the context. The model is any registered LLM backend (``qa_mcq.llm``).
"""

from __future__ import annotations

import random
import re
from typing import Any

from textbook.llm_json import first_object
from textbook.models import BackendError

LETTERS = "ABCD"
KEYS = ("simplified_answer", "distractor_1", "distractor_2", "distractor_3")
PROMPT = ("You write multiple-choice questions for children aged 3 to 7 from a question a video asks and the "
          "answer the video then gives. Reply with one JSON object only: "
          '{"simplified_answer": "...", "distractor_1": "...", "distractor_2": "...", "distractor_3": "..."}. '
          "The simplified answer says the video's answer in a few words; the distractors are plausible but "
          "wrong, and all four differ.")
PROMPT_VERSION = "1"

CATEGORIES = ((r"\bhow (many|much)\b", "counting"), (r"\bwhere\b", "spatial"), (r"\bcolou?r\b", "attribute"),
              (r"\bwhy\b", "causal"), (r"\bwhen\b", "temporal"), (r"\bwho\b", "identity"),
              (r"\bwhich\b", "comparison"), (r"\b(find|spot|see|look)\b", "visual_search"))
VISUAL = re.compile(r"\b(see|look|find|spot|show|colou?r|where|which|how many|this|that|these|those)\b", re.I)


class QaMcqError(RuntimeError):
    """The model could not be asked (the stage fails, and is retried)."""


class BadAnswer(QaMcqError):
    """The model answered, but not four different choices in the JSON asked for (the entry is left out)."""


def ask(llm: Any, model: str, question: str, answer: str, context: str) -> dict[str, str]:
    """The model's ``simplified_answer`` and ``distractor_1..3`` for one cycle."""
    messages = [{"role": "system", "content": PROMPT},
                {"role": "user", "content": f"Context: {context}\nQuestion: {question}\nAnswer: {answer}"}]
    try:
        [reply] = llm.chat([messages])
    except BackendError as exc:  # names the endpoint and what went wrong
        raise QaMcqError(f"qa_mcq.llm: {exc}") from None
    parsed = first_object(reply)
    if parsed is None or not all(isinstance(parsed.get(k), str) and parsed[k].strip() for k in KEYS):
        raise BadAnswer(f"model {model!r} did not answer with {', '.join(KEYS)}: {reply[:200]!r}")
    return {k: parsed[k].strip() for k in KEYS}


def shuffled(options: dict[str, str], seed: int, entry_id: str) -> tuple[list[str], int]:
    """The four choices in a seeded order per entry, and the index of the simplified answer."""
    choices = [options[k] for k in KEYS]
    if len({c.lower() for c in choices}) != len(choices):
        raise BadAnswer(f"{entry_id}: the choices are not all different: {choices}")
    order = list(range(len(choices)))
    random.Random(f"{seed}:{entry_id}").shuffle(order)
    return [choices[i] for i in order], order.index(0)


def tags(question: str, answer: str, context: str, span_s: float) -> dict[str, Any]:
    """SoS's rule-based tags: what reasoning the question asks for and what it needs to be answered."""
    category = next((name for pattern, name in CATEGORIES if re.search(pattern, question, re.I)), "recognition")
    visual = VISUAL.search(question) is not None
    words = {w for w in re.findall(r"[a-z]{4,}", answer.lower())}
    transcript = bool(words & set(re.findall(r"[a-z]{4,}", context.lower())))
    return {
        "reasoning_category": category,
        "compositional_complexity": "compound" if re.search(r"\b(and|or)\b", question, re.I) else "simple",
        "temporal_span": "short" if span_s <= 10 else "medium" if span_s <= 30 else "long",
        "requires_visual": visual,
        "requires_transcript": transcript,
        "modality": "multimodal" if visual and transcript else "visual" if visual else
                    "transcript" if transcript else "general",
        "question_word_count": len(question.split()),
        "answer_word_count": len(answer.split()),
    }


def mcq_item(llm: Any, model: str, seed: int, label: dict[str, Any], context: str) -> dict[str, Any]:
    """One ``mcq.json`` record for a cycle (without the fields the export adds: transcript, episode)."""
    options = ask(llm, model, label["question_text"], label["answer_text"], context)
    choices, correct = shuffled(options, seed, label["id"])
    span = (label["answer_end_s"] or label["pause_end_s"]) - label["question_start_s"]
    return {"entry_id": label["id"], "question": label["question_text"], "answer": options["simplified_answer"],
            "original_answer": label["answer_text"], "choices": choices, "correct_index": correct,
            "correct_choice": LETTERS[correct], "num_choices": len(choices),
            "generation_method": f"llm:{model}:prompt-v{PROMPT_VERSION}",
            **tags(label["question_text"], options["simplified_answer"], context, span)}

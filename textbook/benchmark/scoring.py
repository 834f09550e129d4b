"""Scorers. Each score names its scorer, so numbers of different scorers never share a cell unmarked.

- ``vqa``: the official VQA accuracy (m4c / EvalAI): answers normalised (punctuation, number words,
  articles, contractions), then the mean over the 10 leave-one-out subsets of min(1, matches / 3).
- ``mc-letter``: ScienceQA as LLaVA's ``eval_science_qa.py`` parses it: a bare letter, "X. ...",
  or "The answer is X."; anything else is FAILED and counts wrong (never a random guess).
- ``exact``: normalised string equality.
- ``rule``: math without a judge: letter -> choice text, or numbers equal within 1e-3 relative.
- ``judge:<model>``: an LLM over an OpenAI-compatible endpoint at temperature 0 (judge.py).
"""

from __future__ import annotations

import re
import string

_CONTRACTIONS = {"dont": "don't", "doesnt": "doesn't", "isnt": "isn't", "arent": "aren't", "cant": "can't",
                 "wont": "won't", "im": "i'm", "ive": "i've", "youre": "you're", "thats": "that's",
                 "whats": "what's", "wasnt": "wasn't", "didnt": "didn't", "couldnt": "couldn't"}
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
            "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_NUM = re.compile(r"(\d)(,)(\d)")


def normalize_answer(text: str) -> str:
    """EvalAI's answer processing, as in the official VQA evaluation."""
    text = text.replace("\n", " ").replace("\t", " ").strip().lower()
    out = text
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or re.search(_COMMA_NUM, text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    out = _PERIOD.sub("", out)
    words = []
    for word in out.split():
        word = _NUMBERS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def vqa_accuracy(prediction: str, answers: list[str] | tuple[str, ...]) -> float:
    pred = normalize_answer(prediction)
    gts = [normalize_answer(a) for a in answers]
    if not gts:
        return 0.0
    accs = []
    for i in range(len(gts)):
        others = gts[:i] + gts[i + 1:] if len(gts) > 1 else gts
        accs.append(min(1.0, sum(1 for g in others if g == pred) / 3.0))
    return sum(accs) / len(accs)


def parse_letter(prediction: str, n_choices: int) -> str | None:
    letters = string.ascii_uppercase[:n_choices]
    text = prediction.strip()
    if len(text) == 1 and text in letters:
        return text
    m = re.match(rf"^([{letters}])\.", text) or re.search(rf"The answer is ([{letters}])\.?", text)
    return m.group(1) if m else None


def mc_score(prediction: str, gold: str, n_choices: int) -> tuple[float, str | None]:
    letter = parse_letter(prediction, n_choices)
    return float(letter is not None and letter == gold.strip()), letter


def exact_score(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _number(text: str) -> float | None:
    m = re.search(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    return float(m.group()) if m else None


def rule_math_score(prediction: str, gold: str, choices: tuple[str, ...] | None) -> float:
    pred = prediction.strip()
    if choices:
        letter = parse_letter(pred, len(choices)) or (pred[:1] if pred[:1] in string.ascii_uppercase[:len(choices)] else None)
        if letter is not None:
            pred = choices[string.ascii_uppercase.index(letter)]
        gold_letter = gold.strip()
        if len(gold_letter) == 1 and gold_letter in string.ascii_uppercase[:len(choices)]:
            gold = choices[string.ascii_uppercase.index(gold_letter)]
    a, b = _number(pred), _number(gold)
    if a is not None and b is not None:
        return float(abs(a - b) <= 1e-3 * max(1.0, abs(b)))
    return exact_score(pred, gold)

"""The drift guard with the packaged MiniLM on crafted refinements: faithful clean-ups keep their
refinement, drifted ones (other facts, chat replies, invented additions) fall back to the original.
The ranges these give are the ones documented in textbook/drift.py."""

from __future__ import annotations

import re

import pytest
from llm_server import llm_server
from test_refine import _refine, _video

from textbook import models
from textbook.config import Settings
from textbook.context import Context
from textbook.drift import Thresholds, added_share, guard, kept_share

FAITHFUL = [
    ("uh so the derivative of sign x is cause x and um that's the slope",
     "So the derivative of sin x is cos x, and that's the slope."),
    ("today we gonna look at photo synthesis how plants make there food from light",
     "Today we're going to look at photosynthesis: how plants make their food from light."),
    ("the area of a triangle is one half base times height you know",
     "The area of a triangle is one half base times height."),
    ("so um newtons second law says force equals mass times acceleration",
     "So Newton's second law says force equals mass times acceleration."),
    ("when we add fractions we need a common denominator first right",
     "When we add fractions, we need a common denominator first."),
    ("the mitochondria is the power house of the cell it makes a t p",
     "The mitochondria is the powerhouse of the cell; it makes ATP."),
    ("like if you multiply both sides by two you get x equals six",
     "If you multiply both sides by two, you get x equals 6."),
    ("water boils at a hundred degrees celsius at sea level", "Water boils at 100 degrees Celsius at sea level."),
    ("uh the pythagorean theorem a squared plus b squared equals c squared",
     "The Pythagorean theorem: a² + b² = c²."),
    ("okay so next we'll talk about the french revolution which started in seventeen eighty nine",
     "Okay, next we'll talk about the French Revolution, which started in 1789."),
    ("um the cell mem brain lets some molecules threw", "The cell membrane lets some molecules through."),
    ("and the the the key idea here is uh conservation of energy", "The key idea here is conservation of energy."),
    ("so that is why the sky look blue because of ray lee scattering",
     "So that is why the sky looks blue: because of Rayleigh scattering."),
    ("a prime number has exactly two factors one and itself",
     "A prime number has exactly two factors: one and itself."),
    ("so the verb goes at the end of the sentence in german sub ordinate clauses",
     "So the verb goes at the end of the sentence in German subordinate clauses."),
    ("uh velocity is displacement divided by time not distance divided by time",
     "Velocity is displacement divided by time, not distance divided by time."),
]
DRIFTED = [
    ("uh so the derivative of sign x is cause x and um that's the slope",
     "Integrals measure the area under a curve between two points."),
    ("today we gonna look at photo synthesis how plants make there food from light",
     "Today we will study how volcanoes erupt and form new islands."),
    ("the area of a triangle is one half base times height you know",
     "The area of a circle is pi times the radius squared."),
    ("so um newtons second law says force equals mass times acceleration",
     "Einstein showed that energy equals mass times the speed of light squared."),
    ("when we add fractions we need a common denominator first right",
     "Thanks for watching, don't forget to like and subscribe to the channel!"),
    ("the mitochondria is the power house of the cell it makes a t p",
     "Sure! Here is the cleaned transcript you asked for."),
    ("like if you multiply both sides by two you get x equals six",
     "Dividing both sides by three gives y equals four, which is the final answer."),
    ("water boils at a hundred degrees celsius at sea level",
     "Ice melts at zero degrees, and salt lowers the freezing point of water on roads in winter."),
    ("uh the pythagorean theorem a squared plus b squared equals c squared",
     "The quadratic formula solves any second degree equation."),
    ("okay so next we'll talk about the french revolution which started in seventeen eighty nine",
     "Next we'll talk about the American civil war, which ended in 1865."),
    ("the area of a triangle is one half base times height",
     "The area of a triangle is one half base times height. This was first proven by Euclid in 300 BC, and "
     "architects use it to design roofs and bridges across Europe."),
    ("water boils at a hundred degrees celsius at sea level",
     "Water boils at 100 degrees Celsius at sea level. At the top of Mount Everest, however, it boils at only "
     "70 degrees, which is why climbers cannot cook pasta properly."),
    ("so we cancel the x on both sides",
     "So we cancel the x on both sides. Remember that this only works when x is not zero, otherwise we divide "
     "by zero."),
    ("a prime number has exactly two factors one and itself",
     "I cannot help with that request, but I can explain prime numbers if you like."),
    ("so the verb goes at the end of the sentence in german sub ordinate clauses",
     "In French, adjectives usually come after the noun they describe."),
    ("uh velocity is displacement divided by time not distance divided by time",
     "Speed is a scalar quantity measured in metres per second by a speedometer."),
]
LIMITS = Thresholds(**{f: getattr(Settings().refine, k) for f, k in (
    ("min_cosine", "drift_min_cosine"), ("min_kept", "drift_min_kept_words"), ("max_added", "drift_max_added_words"))})


@pytest.fixture(scope="module")
def minilm():
    return models.build("text_embedder", Settings().refine.embedder, "refine.embedder")


def _ranges(embedder, pairs):
    vectors = embedder.encode([a for a, _ in pairs] + [b for _, b in pairs])
    cos = [float(vectors[i] @ vectors[len(pairs) + i]) for i in range(len(pairs))]
    kept = [kept_share(a, b) for a, b in pairs]
    added = [added_share(a, b) for a, b in pairs]
    measures = {"cosine": cos, "kept": kept, "added": added}
    return {name: (round(min(v), 2), round(max(v), 2)) for name, v in measures.items()}


def test_faithful_refinements_are_kept_and_drifted_ones_fall_back(minilm):
    originals = [a for a, _ in FAITHFUL + DRIFTED]
    texts, checks = guard(minilm, originals, [b for _, b in FAITHFUL + DRIFTED], LIMITS)
    n = len(FAITHFUL)
    assert [c.rejected for c in checks] == [False] * n + [True] * len(DRIFTED)
    assert texts[:n] == [b for _, b in FAITHFUL] and texts[n:] == originals[n:]


def test_the_measured_ranges_are_the_documented_ones(minilm):
    """textbook/drift.py's table; a change to the crafted pairs or the model shows here."""
    assert _ranges(minilm, FAITHFUL) == {"cosine": (0.68, 0.98), "kept": (0.43, 1.0), "added": (0.0, 0.4)}
    assert _ranges(minilm, DRIFTED) == {"cosine": (-0.04, 0.79), "kept": (0.0, 1.0), "added": (0.58, 1.0)}


def test_an_unchanged_segment_is_not_checked(minilm):
    texts, checks = guard(minilm, ["same text", "b"], ["same text ", "b"], LIMITS)
    assert (texts, checks) == (["same text ", "b"], [])


def test_the_stage_counts_drifted_segments_and_keeps_their_original(ctx):
    """Refinement over the loopback endpoint: line 0 cleaned faithfully, line 1 replaced by a chat reply."""
    def refiner(body):
        lines = re.findall(r"^(\d+): (.*)$", body["messages"][1]["content"], re.M)
        return "\n".join(f"{n}: {'Sure! Here is the cleaned transcript.' if n == '1' else t.capitalize() + '.'}"
                         for n, t in lines)

    with llm_server() as server:
        server.answer = refiner
        ctx = Context(ctx.settings.replace(refine={"llm": {"backend": "openai", "endpoint": server.url, "model": "r"}}),
                      ctx.store, ctx.db)
        said = ("so um the derivative measures change", "the chain rule multiplies derivatives")
        _video(ctx, said=said)
        _, run, doc = _refine(ctx)
    assert [s["text"] for s in doc["segments"]] == ["So um the derivative measures change.", said[1]]
    refinement = doc["refinement"]
    assert (refinement["changed"], refinement["drift_rejected"], refinement["prompt_version"]) == (1, 1, "refine-v1")
    assert [c["rejected"] for c in refinement["drift"]] == [False, True]
    assert run.result["refinement"]["drift_rejected"] == 1 and "drift" not in run.result["refinement"]

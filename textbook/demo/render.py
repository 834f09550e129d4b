"""Render the demo course: short narrated lectures built from text, with exact ground truth.

Each lecture is a sequence of screen states (a slide whose bullets appear one by one, a formula, a
plot or diagram, a speaker shot with no slide). Every state has its own narration, spoken by
espeak-ng sentence by sentence; the sentence boundaries become the caption cues. Stills and
narration are put together by one ffmpeg encode per lecture, so rendering the whole course takes
seconds, and ``manifest.json`` records what is on screen and what is said at every moment.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib import font_manager, mathtext
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Rectangle
from PIL import Image, ImageDraw, ImageFont, ImageOps
from skimage import data as skimage_data

from textbook.atomic import atomic_write
from textbook.media import run_ffmpeg
from textbook.records import check_video_id

WIDTH, HEIGHT, FPS = 1280, 720, 5
SAMPLE_RATE = 22050  # espeak-ng's native rate; checked on every file it writes
SPEECH_RATE = 160  # words per minute, a little slower than espeak-ng's default for clearer ASR
TICK = SAMPLE_RATE // 50  # 20 ms: every cue and state boundary lies on this grid, so times are exact
FRAME = SAMPLE_RATE // FPS  # a state lasts a whole number of video frames
SENTENCE_GAP = 15 * TICK  # 0.3 s of silence after each sentence
CHANNEL = "Demo Open Course"
MANIFEST = "manifest.json"
_FORMAT = "2"  # bump when the rendering code changes its output; content changes are hashed

TRANSITION_SECONDS = 2.0  # cross-fade length (cross_fade lectures), at the start of each state
BACKGROUND = (250, 250, 246)
TITLE_BOX = (28, 86, 150)
INK = (30, 30, 30)
TITLE_INK = (18, 42, 96)
ACCENT = (214, 96, 24)
MARGIN = 80


class RenderError(RuntimeError):
    """The demo course cannot be rendered (a tool is missing or wrote something unexpected)."""


@dataclass(frozen=True)
class State:
    """One stretch of a lecture with a fixed picture and its narration (one or more sentences)."""

    kind: str  # slide | formula | plot | speaker
    narration: str
    title: str = ""
    bullets: tuple[str, ...] = ()  # slide: the bullets visible so far
    formula: str = ""  # formula: matplotlib mathtext
    caption: str = ""  # formula: plain words under the formula
    plot: str = ""  # plot: key into _PLOTS
    pause_after: float = 0.0  # seconds of silence after the narration (a question waiting for its answer)


@dataclass(frozen=True)
class Lecture:
    video_id: str
    title: str
    description: str
    language: str  # ISO 639-1 code of the narration
    voice: str  # espeak-ng voice
    captions: bool  # publish a WebVTT file in the narration's language
    states: tuple[State, ...]
    expected_filter: str | None = None  # what the pipeline's filters must say about it
    cross_fade: bool = False  # each state fades in from the previous one over TRANSITION_SECONDS
    title_box: bool = False  # slide headings in white on a coloured band (a common template)
    footer: str = ""  # a line at the bottom of every slide, as templates repeat it


def _title_card(title: str, narration: str) -> State:
    return State("slide", narration, title=title)


def _reveal(title: str, steps: list[tuple[str, str]]) -> list[State]:
    """One slide state per bullet: each reveal shows the bullets so far and narrates the new one."""
    bullets = [bullet for bullet, _ in steps]
    return [State("slide", narration, title=title, bullets=tuple(bullets[: i + 1]))
            for i, (_, narration) in enumerate(steps)]


def _formula(title: str, formula: str, caption: str, narration: str) -> State:
    return State("formula", narration, title=title, formula=formula, caption=caption)


def _plot(title: str, plot: str, narration: str, pause_after: float = 0.0) -> State:
    return State("plot", narration, title=title, plot=plot, pause_after=pause_after)


def _speaker(narration: str) -> State:
    return State("speaker", narration)


LECTURES: tuple[Lecture, ...] = (
    Lecture(
        "calc-deriv01", "Derivatives: The Slope of a Curve",
        "An introduction to derivatives: rates of change, tangent lines, the limit definition "
        "and the power rule.",
        "en", "en-us", True, (
            _title_card("Derivatives: The Slope of a Curve",
                        "Welcome to this short lesson on derivatives. A derivative tells us how quickly a "
                        "quantity changes when its input changes a little. By the end you will know the "
                        "definition, a picture of what it means, and one rule that makes computing "
                        "derivatives fast."),
            *_reveal("What Is a Derivative?", [
                ("Rate of change of a function", (
                    "Think of a function as a machine that turns an input into an output. The derivative "
                    "measures the rate at which the output changes as we nudge the input. If the output "
                    "grows quickly, the derivative is large.")),
                ("Slope of the tangent line", (
                    "Geometrically, the derivative is the slope of the tangent line. The tangent line "
                    "touches the curve at one point and points in the same direction as the curve there. "
                    "A steep tangent means a large derivative, and a flat tangent means a derivative of zero.")),
                ("Velocity is the derivative of position", (
                    "Derivatives appear everywhere in science. If the position of a car depends on time, "
                    "then its velocity is the derivative of position with respect to time. In the same way, "
                    "acceleration is the derivative of velocity.")),
            ]),
            _formula("The Limit Definition", r"$f\,'(x) = \lim_{h \to 0}\ \frac{f(x+h) - f(x)}{h}$",
                     "the slope of a secant line as h shrinks to zero",
                     "Here is the formal definition. We take the difference between the function values at "
                     "x plus h and at x, and divide by h. This is the slope of a secant line. As h shrinks "
                     "toward zero, the secant line turns into the tangent line, and the limit is the "
                     "derivative."),
            _plot("Tangent to y = x squared at x = 1", "tangent",
                  "This plot shows the parabola y equals x squared in blue. The orange line is the tangent "
                  "at the point where x equals one. Its slope is two, which matches the derivative two x "
                  "evaluated at one."),
            _formula("The Power Rule", r"$\frac{d}{dx}\,x^n = n\,x^{n-1}$",
                     "bring the exponent down, then lower it by one",
                     "Computing limits every time would be slow, so we use rules. The power rule says that "
                     "the derivative of x to the n is n times x to the n minus one. For example, the "
                     "derivative of x cubed is three x squared."),
            _speaker("Let me summarize what we learned today. A derivative is a rate of change, and you "
                     "can picture it as the slope of a tangent line. We defined it with a limit, and we "
                     "used the power rule as a shortcut. Next time we will use derivatives to find the "
                     "highest and lowest points of a curve."),
        )),
    Lecture(
        "-newton_laws", "Newton's Three Laws of Motion",
        "Inertia, force and acceleration, action and reaction: Newton's laws with everyday examples "
        "and a free-body diagram.",
        "en", "en-us", True, (
            _title_card("Newton's Three Laws of Motion",
                        "Welcome to our lesson on the laws of motion discovered by Isaac Newton. These three "
                        "laws explain how forces change the way objects move. They are the foundation of "
                        "classical mechanics, from falling apples to orbiting planets."),
            *_reveal("The Three Laws", [
                ("First law: inertia", (
                    "The first law is the law of inertia. An object at rest stays at rest, and an object in "
                    "motion keeps moving in a straight line at constant speed, unless a net force acts on it. "
                    "This is why passengers lurch forward when a bus stops suddenly.")),
                ("Second law: force equals mass times acceleration", (
                    "The second law tells us how much an object accelerates. The acceleration is "
                    "proportional to the net force and inversely proportional to the mass. Pushing an empty "
                    "cart is easy, but the same push on a full cart gives a smaller acceleration.")),
                ("Third law: action and reaction", (
                    "The third law says that forces come in pairs. When you push on a wall, the wall pushes "
                    "back on you with a force of equal size in the opposite direction. Rockets fly because "
                    "they push gas backward, and the gas pushes the rocket forward.")),
            ]),
            _formula("The Second Law", r"$\vec{F}_{\mathrm{net}} = m\,\vec{a}$",
                     "Example: 10 N on a 2 kg cart gives 5 m/s\u00b2",
                     "Written as an equation, the net force equals mass times acceleration. Force is "
                     "measured in newtons, mass in kilograms, and acceleration in meters per second squared. "
                     "For example, a force of ten newtons on a two kilogram cart gives an acceleration of "
                     "five meters per second squared."),
            _plot("Free-Body Diagram of a Book on a Table", "free_body",
                  "A free body diagram shows every force acting on one object. Here a book rests on a "
                  "table. Gravity pulls it down, and the table pushes it up with the normal force. The two "
                  "arrows have equal length, so the net force is zero and the book stays at rest, just as "
                  "the first law predicts."),
            _speaker("To recap, the first law describes inertia, the second law links force, mass and "
                     "acceleration, and the third law says that forces come in equal and opposite pairs. "
                     "Try to spot all three laws the next time you ride a bicycle or throw a ball."),
        ), footer="Demo Open Course | Physics 101"),
    Lecture(
        "energy_cons3", "Conservation of Energy",
        "Kinetic and potential energy, and why their sum stays constant: a dropped ball, step by step.",
        "en", "en-us", False, (
            _title_card("Conservation of Energy",
                        "Hello, and welcome to a lesson on the conservation of energy. Energy is never "
                        "created or destroyed. It only changes from one form into another, and this simple "
                        "idea lets us solve many problems without tracking every force."),
            *_reveal("Forms of Mechanical Energy", [
                ("Kinetic energy: energy of motion", (
                    "The first form is kinetic energy, the energy an object has because it moves. A heavier "
                    "object or a faster object carries more kinetic energy. Doubling the speed makes the "
                    "kinetic energy four times larger.")),
                ("Potential energy: energy of height", (
                    "The second form is gravitational potential energy. It depends on the height of an "
                    "object above the ground. When you lift a book onto a high shelf, you store energy that "
                    "is released if the book falls.")),
                ("Without friction, their sum stays constant", (
                    "When friction is small, the sum of kinetic and potential energy stays constant. Energy "
                    "simply moves back and forth between the two forms. A swinging pendulum is a beautiful "
                    "example of this exchange.")),
            ]),
            _formula("Mechanical Energy", r"$E = \frac{1}{2}\,m\,v^2 + m\,g\,h$",
                     "kinetic energy plus potential energy",
                     "Here are the formulas. Kinetic energy is one half times mass times speed squared. "
                     "Potential energy is mass times the gravitational acceleration g times the height h. "
                     "Their sum, the total mechanical energy, is conserved."),
            _plot("A Ball Dropped from 10 Meters", "energy",
                  "This plot follows a ball dropped from a height of ten meters. The blue curve is "
                  "potential energy, which falls as the ball drops. The orange curve is kinetic energy, "
                  "which rises by exactly the same amount. The green line is the total, and it stays flat."),
            _speaker("Let us review. Energy changes form, but its total stays the same. Kinetic energy "
                     "depends on speed, potential energy depends on height, and without friction their sum "
                     "never changes. With this idea you can predict the speed of a falling object from its "
                     "height alone."),
        )),
    Lecture(
        "prob_dice04", "Probability with Two Dice",
        "Sample spaces, events and counting equally likely outcomes, with the sum of two dice as the "
        "running example.",
        "en", "en-us", True, (
            _title_card("Probability with Two Dice",
                        "Welcome to an introduction to probability. Probability measures how likely an event "
                        "is, on a scale from zero to one. Today we will use dice to build intuition for "
                        "counting outcomes."),
            *_reveal("Basic Ideas", [
                ("An experiment has possible outcomes", (
                    "Every random experiment has a set of possible outcomes, called the sample space. When "
                    "we roll one fair die, the sample space contains the six numbers from one to six. Each "
                    "of these outcomes is equally likely.")),
                ("An event is a set of outcomes", (
                    "An event is any collection of outcomes that we care about. For example, rolling an even "
                    "number is an event that contains two, four and six. The event happens if the roll lands "
                    "on any of its outcomes.")),
                ("Probabilities lie between zero and one", (
                    "A probability of zero means the event can never happen, and a probability of one means "
                    "it always happens. Everything else lies in between. The probabilities of all outcomes in "
                    "the sample space add up to one.")),
            ]),
            _formula("Counting Equally Likely Outcomes",
                     r"$P(A) = \frac{\mathrm{favorable\ outcomes}}{\mathrm{all\ outcomes}}$",
                     "an even number on one die: 3 out of 6, or one half",
                     "When all outcomes are equally likely, the probability of an event is the number of "
                     "favorable outcomes divided by the total number of outcomes. Rolling an even number has "
                     "three favorable outcomes out of six, so its probability is one half."),
            _plot("Sum of Two Dice", "dice",
                  "Now roll two dice and add them. There are thirty six equally likely pairs, but the sums "
                  "are not equally likely. This bar chart shows that seven is the most common sum, with six "
                  "ways to make it, while two and twelve each have only one way."),
            _speaker("In summary, probability counts favorable outcomes out of all possible outcomes. A "
                     "careful count of the sample space is the key step. Next time, we will see what happens "
                     "when we combine events with the words and and or."),
        ), cross_fade=True, title_box=True),
    Lecture(
        "kids_red_star05", "Find the Red Star",
        "A looking game for young learners: the teacher asks a question, waits for the children to "
        "answer, then gives the answer (a question-pause-answer cycle).",
        "en", "en-us", True, (
            _title_card("Find the Red Star",
                        "Welcome to picture time. Today we play a looking game with shapes and colours. Watch "
                        "the screen closely, and say your answers out loud. Looking games train our eyes to notice "
                        "small details. Are you ready? Let us begin."),
            _plot("Three Boxes", "boxes",
                  "Here are three boxes, one on top of another. There is a bottom box, a middle box and a top "
                  "box. Somewhere on these boxes there is a small red star. Look at the boxes. "
                  "Can you find the red star?", pause_after=2.5),
            _plot("The Red Star Is on Top", "boxes_found",
                  "Yes, the red star is on the top box. Well done if you found it. The star is small, but its "
                  "bright colour makes it easy to spot."),
            _speaker("That is all for today. We looked carefully at three boxes and found a red star on the "
                     "top one. Keep practising with the pictures around you at home, in books and on the street. "
                     "Next time we will count circles and squares together. Goodbye for now."),
        )),
    Lecture(
        "fr_derivees", "Les d\u00e9riv\u00e9es : la pente d'une courbe",
        "Une introduction aux d\u00e9riv\u00e9es : pente de la tangente et taux d'accroissement.",
        "fr", "fr", True, (
            _title_card("Les d\u00e9riv\u00e9es",
                        "Bienvenue dans cette le\u00e7on sur les d\u00e9riv\u00e9es. Une d\u00e9riv\u00e9e "
                        "mesure la vitesse \u00e0 laquelle une fonction change. C'est une id\u00e9e centrale "
                        "du calcul diff\u00e9rentiel."),
            *_reveal("Qu'est-ce qu'une d\u00e9riv\u00e9e ?", [
                ("La pente de la tangente", (
                    "G\u00e9om\u00e9triquement, la d\u00e9riv\u00e9e est la pente de la droite tangente \u00e0 "
                    "la courbe. Une tangente tr\u00e8s inclin\u00e9e correspond \u00e0 une grande "
                    "d\u00e9riv\u00e9e. Une tangente horizontale correspond \u00e0 une d\u00e9riv\u00e9e nulle.")),
            ]),
            _formula("D\u00e9finition", r"$f\,'(x) = \lim_{h \to 0}\ \frac{f(x+h) - f(x)}{h}$",
                     "la limite du taux d'accroissement",
                     "On d\u00e9finit la d\u00e9riv\u00e9e comme la limite du taux d'accroissement quand h "
                     "tend vers z\u00e9ro. Par exemple, la d\u00e9riv\u00e9e de x au carr\u00e9 est deux x. "
                     "En r\u00e9sum\u00e9, la d\u00e9riv\u00e9e d\u00e9crit le changement instantan\u00e9."),
        ),
        expected_filter="not_english"),
    Lecture(
        "short_intro", "Course Trailer",
        "A few seconds of welcome to the demo course.",
        "en", "en-us", True, (
            _title_card("Welcome to the Demo Open Course",
                        "Welcome to the demo open course. New lectures every week."),
        ),
        expected_filter="too_short"),
)


# --- drawing -------------------------------------------------------------------------------------

@functools.cache
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans from matplotlib's own bundle, so every machine draws the same glyphs."""
    path = font_manager.findfont(FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal"),
                                 fallback_to_default=False)
    return ImageFont.truetype(path, size)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _blank() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    return image, ImageDraw.Draw(image)


def _draw_heading(draw: ImageDraw.ImageDraw, title: str) -> None:
    size = 60
    while _font(size, bold=True).getlength(title) > WIDTH - 2 * MARGIN:
        size -= 2
    draw.text((MARGIN, 114), title, font=_font(size, bold=True), fill=TITLE_INK, anchor="ls")
    draw.rectangle((MARGIN, 136, WIDTH - MARGIN, 141), fill=ACCENT)


def _draw_title_card(title: str) -> Image.Image:
    image, draw = _blank()
    font = _font(72, bold=True)
    lines = _wrap(title, font, WIDTH - 2 * MARGIN)
    y = HEIGHT // 2 - 50 - 45 * len(lines)
    for line in lines:
        draw.text((WIDTH // 2, y), line, font=font, fill=TITLE_INK, anchor="mt")
        y += 92
    draw.rectangle((WIDTH // 2 - 200, y + 16, WIDTH // 2 + 200, y + 21), fill=ACCENT)
    draw.text((WIDTH // 2, y + 50), CHANNEL, font=_font(40), fill=(90, 90, 90), anchor="mt")
    return image


def _draw_slide(title: str, bullets: tuple[str, ...]) -> Image.Image:
    image, draw = _blank()
    _draw_heading(draw, title)
    font = _font(46)
    y = 200
    for bullet in bullets:
        draw.ellipse((MARGIN + 12, y + 18, MARGIN + 28, y + 34), fill=ACCENT)
        for line in _wrap(bullet, font, WIDTH - 2 * MARGIN - 70):
            draw.text((MARGIN + 60, y), line, font=font, fill=INK)
            y += 62
        y += 34
    return image


def _draw_formula(title: str, formula: str, caption: str) -> Image.Image:
    image, draw = _blank()
    _draw_heading(draw, title)
    buffer = io.BytesIO()
    mathtext.math_to_image(formula, buffer, prop=FontProperties(size=60), dpi=100, format="png")
    buffer.seek(0)
    rendered = Image.open(buffer).convert("RGBA")
    if rendered.width > WIDTH - 2 * MARGIN:
        raise RenderError(f"formula {formula!r} is too wide for the slide")
    on_white = Image.new("RGB", rendered.size, "white")
    on_white.paste(rendered, mask=rendered)
    ink = ImageOps.invert(on_white.convert("L"))  # glyph coverage, whatever background mathtext chose
    image.paste(INK, ((WIDTH - rendered.width) // 2, 360 - rendered.height // 2), ink)
    draw.text((WIDTH // 2, 580), caption, font=_font(42), fill=INK, anchor="mt")
    return image


def _plot_tangent(fig: Figure) -> list[str]:
    ax = fig.add_axes((0.1, 0.14, 0.84, 0.68))
    x = np.linspace(-2.0, 3.0, 201)
    ax.plot(x, x ** 2, linewidth=4, color="tab:blue", label="y = x\u00b2")
    ax.plot(x, 2 * x - 1, linewidth=4, color="tab:orange", label="tangent, slope 2")
    ax.plot([1.0], [1.0], "o", markersize=14, color="black")
    ax.set_ylim(-3, 9)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="upper left")
    return ["y = x\u00b2", "tangent, slope 2", "x", "y"]


def _plot_free_body(fig: Figure) -> list[str]:
    ax = fig.add_axes((0.05, 0.05, 0.9, 0.78))
    ax.set_xlim(0, 16)
    ax.set_ylim(0, 9)
    ax.set_axis_off()
    ax.add_patch(Rectangle((2, 2.2), 12, 0.5, color="#8b5a2b"))
    ax.add_patch(Rectangle((6.5, 2.7), 3, 1.2, color="#3b6ea8"))
    ax.text(8, 3.3, "book", ha="center", va="center", fontsize=24, color="white", fontweight="bold")
    arrow = {"arrowstyle": "-|>", "linewidth": 5, "mutation_scale": 40}
    ax.annotate("", xy=(8, 7.3), xytext=(8, 3.9), arrowprops={**arrow, "color": "tab:green"})
    ax.annotate("", xy=(8, 0.2), xytext=(8, 2.7), arrowprops={**arrow, "color": "tab:red"})
    ax.text(8.5, 6.4, "normal force", fontsize=26, color="tab:green")
    ax.text(8.5, 0.9, "gravity", fontsize=26, color="tab:red")
    return ["book", "normal force", "gravity"]


def _plot_energy(fig: Figure) -> list[str]:
    ax = fig.add_axes((0.1, 0.14, 0.84, 0.68))
    g, height = 9.8, 10.0
    t = np.linspace(0.0, np.sqrt(2 * height / g), 101)
    h = height - g * t ** 2 / 2
    ax.plot(t, g * h, linewidth=4, color="tab:blue", label="potential")
    ax.plot(t, g * (height - h), linewidth=4, color="tab:orange", label="kinetic")
    ax.plot(t, np.full_like(t, g * height), linewidth=4, color="tab:green", label="total")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("energy per kilogram (J)")
    ax.legend(loc="center right")
    return ["potential", "kinetic", "total", "time (s)", "energy per kilogram (J)"]


def _plot_dice(fig: Figure) -> list[str]:
    ax = fig.add_axes((0.1, 0.14, 0.84, 0.68))
    sums = np.arange(2, 13)
    ways = 6 - np.abs(sums - 7)
    ax.bar(sums, ways, color="tab:blue", edgecolor="black")
    ax.set_xticks(sums)
    ax.set_xlabel("sum of two dice")
    ax.set_ylabel("number of ways")
    return ["sum of two dice", "number of ways"]


def _boxes(fig: Figure, found: bool) -> list[str]:
    """Three stacked boxes with a red star on the top one; ``found`` rings the star."""
    ax = fig.add_axes((0.05, 0.03, 0.9, 0.8))
    ax.set_xlim(0, 16)
    ax.set_ylim(0, 9)
    ax.set_axis_off()
    for n, colour in enumerate(("#3b6ea8", "#2e8b57", "#d2a03c")):
        ax.add_patch(Rectangle((5.5, 0.5 + 2.7 * n), 5, 2.4, color=colour))
    ax.plot([9.4], [7.2], marker="*", markersize=48, color="#d62020", markeredgecolor="#7a0000")
    if found:
        ax.plot([9.4], [7.2], marker="o", markersize=90, markerfacecolor="none", markeredgecolor=_hex(ACCENT),
                markeredgewidth=6)
    return []


_PLOTS: dict[str, Callable[[Figure], list[str]]] = {
    "boxes": lambda fig: _boxes(fig, found=False),
    "boxes_found": lambda fig: _boxes(fig, found=True),
    "tangent": _plot_tangent,
    "free_body": _plot_free_body,
    "energy": _plot_energy,
    "dice": _plot_dice,
}


def _draw_plot(title: str, plot: str) -> tuple[Image.Image, list[str]]:
    """Draw with matplotlib's Agg canvas directly: no pyplot, no global backend switch."""
    fig = Figure(figsize=(WIDTH / 100, HEIGHT / 100), dpi=100, facecolor=_hex(BACKGROUND))
    with _plot_style():
        fig.suptitle(title, fontsize=36, fontweight="bold", color=_hex(TITLE_INK), y=0.955)
        labels = _PLOTS[plot](fig)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB"), labels


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _plot_style() -> Any:
    return matplotlib.rc_context({"font.family": "DejaVu Sans", "font.size": 22, "axes.labelsize": 26,
                                  "xtick.labelsize": 20, "ytick.labelsize": 20, "legend.fontsize": 24,
                                  "axes.facecolor": "white", "axes.linewidth": 2})


@functools.lru_cache(maxsize=1)
def _speaker_frame() -> Image.Image:
    """The astronaut photo (a real face) filling the frame, face in the upper middle."""
    photo = Image.fromarray(skimage_data.astronaut()).resize((WIDTH, WIDTH), Image.Resampling.LANCZOS)
    return photo.crop((0, 40, WIDTH, 40 + HEIGHT))


def _boxed_heading(image: Image.Image, title: str) -> Image.Image:
    """The heading redrawn in white on a coloured band."""
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 44, WIDTH, 146), fill=TITLE_BOX)
    size = 60
    while _font(size, bold=True).getlength(title) > WIDTH - 2 * MARGIN:
        size -= 2
    draw.text((MARGIN, 114), title, font=_font(size, bold=True), fill="white", anchor="ls")
    return image


def _with_footer(image: Image.Image, footer: str) -> Image.Image:
    ImageDraw.Draw(image).text((MARGIN, HEIGHT - 36), footer, font=_font(28), fill=(110, 110, 110), anchor="ls")
    return image


def _styled(state: State, lecture: Lecture) -> tuple[Image.Image, str]:
    """The state's picture in the lecture's template (title band, footer); the text on screen
    leaves out the footer, which is template, not content."""
    image, on_screen = _draw_state(state)
    if state.kind == "speaker":
        return image, on_screen
    if lecture.title_box and state.title and (state.kind != "slide" or state.bullets):
        image = _boxed_heading(image, state.title)
    if lecture.footer:
        image = _with_footer(image, lecture.footer)
    return image, on_screen


def _draw_state(state: State) -> tuple[Image.Image, str]:
    """The picture for a state and the text a reader would see on it (one item per line)."""
    if state.kind == "slide" and not state.bullets:
        return _draw_title_card(state.title), f"{state.title}\n{CHANNEL}"
    if state.kind == "slide":
        return _draw_slide(state.title, state.bullets), "\n".join([state.title, *state.bullets])
    if state.kind == "formula":
        return _draw_formula(state.title, state.formula, state.caption), f"{state.title}\n{state.caption}"
    if state.kind == "plot":
        image, labels = _draw_plot(state.title, state.plot)
        return image, "\n".join([state.title, *labels])
    if state.kind == "speaker":
        return _speaker_frame(), ""
    raise RenderError(f"unknown state kind {state.kind!r}")


# --- narration -----------------------------------------------------------------------------------

def _sentences(paragraph: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+", " ".join(paragraph.split()))


def _speak(text: str, voice: str, path: Path) -> bytes:
    """Synthesize one sentence; return its 16-bit mono PCM at SAMPLE_RATE."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RenderError("espeak-ng is not installed (apt-get install espeak-ng)")
    proc = subprocess.run([espeak, "-b", "1", "-v", voice, "-s", str(SPEECH_RATE), "-w", str(path)],
                          input=text.encode("utf-8"), capture_output=True, check=False)
    if proc.returncode != 0:
        raise RenderError(f"espeak-ng failed on {text[:40]!r}: {proc.stderr.decode(errors='replace').strip()}")
    with wave.open(str(path), "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise RenderError(f"espeak-ng wrote {wav.getframerate()} Hz, {wav.getnchannels()} channels, "
                              f"{8 * wav.getsampwidth()} bit; expected {SAMPLE_RATE} Hz mono 16 bit")
        return wav.readframes(wav.getnframes())


def _silence(samples: int) -> bytes:
    return b"\x00\x00" * samples


def _round_up(samples: int, grid: int) -> int:
    return -(-samples // grid) * grid


def _seconds(samples: int) -> float:
    return round(samples / SAMPLE_RATE, 3)


def _vtt_time(samples: int) -> str:
    ms = samples * 1000 // SAMPLE_RATE  # exact: boundaries lie on the 20 ms grid
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


# --- one lecture ---------------------------------------------------------------------------------

def render_lecture(lecture: Lecture, out_dir: Path, work: Path) -> dict[str, Any]:
    """Render ``<id>.mp4`` (and ``<id>.<lang>.vtt``) into out_dir; return the lecture's manifest entry."""
    video_id = check_video_id(lecture.video_id)
    work.mkdir(parents=True, exist_ok=True)
    pcm = bytearray()
    states: list[dict[str, Any]] = []
    cues: list[tuple[int, int, str]] = []
    playlist = ["ffconcat version 1.0"]
    previous: Image.Image | None = None
    for i, state in enumerate(lecture.states):
        state_start = len(pcm) // 2
        sentences = _sentences(state.narration)
        for j, sentence in enumerate(sentences):
            speech = _speak(sentence, lecture.voice, work / f"{i:02d}-{j:02d}.wav")
            spoken = _round_up(len(speech) // 2, TICK)
            start = len(pcm) // 2
            cues.append((start, start + spoken, sentence))
            pcm += speech + _silence(spoken - len(speech) // 2 + SENTENCE_GAP)
        spoken_end = cues[-1][1]
        pcm += _silence(round(state.pause_after * SAMPLE_RATE))
        pcm += _silence(_round_up(len(pcm) // 2 - state_start, FRAME) - (len(pcm) // 2 - state_start))
        state_end = len(pcm) // 2
        image, on_screen = _styled(state, lecture)
        fading = lecture.cross_fade and previous is not None
        steps = round(TRANSITION_SECONDS * FPS) if fading else 0
        for n in range(steps):  # each blend shown for one frame
            blend = work / f"{i:02d}-fade{n:02d}.png"
            Image.blend(previous, image, (n + 1) / (steps + 1)).save(blend, format="PNG")
            playlist += [f"file '{blend.name}'", f"duration {1 / FPS:.3f}"]
        still = work / f"{i:02d}.png"
        image.save(still, format="PNG")
        playlist += [f"file '{still.name}'", f"duration {_seconds(state_end - state_start) - steps / FPS:.3f}"]
        previous = image
        states.append({"start": _seconds(state_start), "end": _seconds(state_end), "kind": state.kind,
                       "title": state.title, "text_on_screen": on_screen, "narration": " ".join(sentences),
                       "settled": round(_seconds(state_start) + steps / FPS, 3),
                       **({"formula": state.formula} if state.formula else {}),
                       # the silence between the last cue and the next state's first, as rendered
                       **({"pause": [_seconds(spoken_end), _seconds(state_end)]} if state.pause_after else {})})
    playlist.append(playlist[-2])  # the concat demuxer honours the last duration only when the file repeats
    total = len(pcm) // 2

    narration = work / "narration.wav"
    with wave.open(str(narration), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(bytes(pcm))
    (work / "stills.ffconcat").write_text("\n".join(playlist) + "\n")
    _encode(work / "stills.ffconcat", narration, _seconds(total), out_dir / f"{video_id}.mp4")

    captions: dict[str, str] = {}
    if lecture.captions:
        name = f"{video_id}.{lecture.language}.vtt"
        body = "".join(f"{_vtt_time(s)} --> {_vtt_time(e)}\n{text}\n\n" for s, e, text in cues)
        _write(out_dir / name, ("WEBVTT\n\n" + body).encode("utf-8"))
        captions[lecture.language] = name
    return {
        "id": video_id, "title": lecture.title, "description": lecture.description, "channel": CHANNEL,
        "duration": _seconds(total), "language": lecture.language, "has_captions": lecture.captions,
        "captions": captions, "media": f"{video_id}.mp4", "expected_filter": lecture.expected_filter,
        "cross_fade": lecture.cross_fade, "title_box": lecture.title_box, "footer": lecture.footer,
        "states": states,
        "cues": [{"start": _seconds(s), "end": _seconds(e), "text": text} for s, e, text in cues],
    }


def _encode(stills: Path, narration: Path, duration: float, dst: Path) -> None:
    """One libx264/AAC encode; bitexact flags and one encoder thread make the bytes reproducible."""
    partial = dst.with_name(f".{dst.name}.partial")
    run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(stills.resolve()), "-i", str(narration.resolve()),
                "-map", "0:v", "-map", "1:a", "-vf", f"format=yuv420p,fps={FPS}",
                "-c:v", "libx264", "-preset", "veryfast", "-tune", "stillimage", "-crf", "24",
                "-g", str(10 * FPS), "-threads", "1",
                "-c:a", "aac", "-aac_coder", "fast", "-b:a", "48k", "-ac", "1", "-t", f"{duration:.3f}",
                "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
                "-flags:a", "+bitexact", "-movflags", "+faststart", "-f", "mp4", str(partial.resolve())],
               f"encode {dst.name}")
    os.replace(partial, dst)


def _write(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


# --- the course ----------------------------------------------------------------------------------

def render_version() -> str:
    """Changes whenever the course content or the rendering parameters change."""
    spec = {"format": _FORMAT, "size": [WIDTH, HEIGHT, FPS], "speech": [SAMPLE_RATE, SPEECH_RATE],
            "lectures": [dataclasses.asdict(lecture) for lecture in LECTURES]}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _files(manifest: dict[str, Any]) -> list[str]:
    return [name for video in manifest.get("videos", [])
            for name in [video["media"], *video["captions"].values()]]


def load_manifest(course_dir: Path) -> dict[str, Any]:
    path = Path(course_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no demo course here (render it with render_course)")
    return json.loads(path.read_text())


def render_course(out_dir: Path, on_lecture: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Render every lecture into out_dir and write ``manifest.json``; a no-op when already current.
    ``on_lecture(number, of, video_id)`` hears of each lecture before it is rendered."""
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    version = render_version()
    try:
        previous = load_manifest(out_dir)
    except (FileNotFoundError, json.JSONDecodeError):
        previous = {}
    if previous.get("render_version") == version and all((out_dir / f).is_file() for f in _files(previous)):
        return previous
    for name in _files(previous):
        (out_dir / name).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="demo-render-") as tmp:
        videos = []
        for n, lecture in enumerate(LECTURES, start=1):
            if on_lecture is not None:
                on_lecture(n, len(LECTURES), lecture.video_id)
            videos.append(render_lecture(lecture, out_dir, Path(tmp) / lecture.video_id))
    manifest = {"render_version": version, "channel": CHANNEL, "width": WIDTH, "height": HEIGHT, "fps": FPS,
                "videos": videos}
    _write(out_dir / MANIFEST, (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode())
    return manifest

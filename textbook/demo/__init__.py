"""A small, deterministic demo course and a local web server that publishes it.

The course stands in for YouTube in tests and in ``make demo``: every lecture is rendered from
text (slides, formulas, plots, a speaker shot, espeak-ng narration), so ``manifest.json`` knows
exactly what is on screen and what is said at every moment.
"""

from textbook.demo.render import render_course
from textbook.demo.serve import DemoServer

__all__ = ["DemoServer", "render_course"]

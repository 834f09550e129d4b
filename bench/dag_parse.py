"""DAG parse time for a generated 4,000-knowledge-point taxonomy (the paper's has 3,915).

The DAG folder is copied and given one DAG file per subject file (``textbook.dag_files``), as
``python -m textbook.dag_files`` does for a deployment. Prints the wall time of parsing the whole
folder (one DagBag, after warming the interpreter's imports), each file's parse the way Airflow's
dag processor does it (a process forked from a warm parent per file: the time that must stay
under ``dagbag_import_timeout``), the per-DAG serialized size, and the time a task runner spends
parsing when it needs one DAG only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def write_taxonomy(folder: Path, subjects: int, courses: int, sub_courses: int, kps: int) -> int:
    """subjects x courses x sub_courses x kps knowledge points, one YAML file per subject."""
    for s in range(subjects):
        doc = {"subject": {"id": f"subject{s:02d}", "name": f"Subject {s}", "level": 1 + s % 5}, "courses": [
            {"id": f"course{c:02d}", "name": f"Course {c}", "sub_courses": [
                {"id": f"sub{u:02d}", "name": f"Sub-course {u}", "knowledge_points": [
                    {"id": f"kp{k:02d}", "name": f"Knowledge point {s}-{c}-{u}-{k}"} for k in range(kps)]}
                for u in range(sub_courses)]}
            for c in range(courses)]}
        (folder / f"subject{s:02d}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return subjects * courses * sub_courses * kps


PROBE = textwrap.dedent("""
    import glob, json, os, sys, time
    t0 = time.perf_counter()
    import airflow.sdk  # noqa: F401 - the interpreter's own start-up, paid once per dag processor
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization
    t1 = time.perf_counter()
    files = {}
    if len(sys.argv) > 2:  # each file on its own, in a child forked from this warm process
        for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.py"))):
            read, write = os.pipe()
            if os.fork() == 0:
                os.close(read)
                try:
                    t, c = time.perf_counter(), time.process_time()
                    one = DagBag(dag_folder=path, safe_mode=False)
                    out = [time.perf_counter() - t, time.process_time() - c, len(one.dags), len(one.import_errors)]
                except BaseException as exc:
                    out = [0, 0, 0, repr(exc)]
                os.write(write, json.dumps(out).encode())
                os._exit(0)
            os.close(write)
            with os.fdopen(read) as pipe:
                files[os.path.basename(path)] = json.loads(pipe.read())
            os.wait()
    t1, c1 = time.perf_counter(), time.process_time()
    bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
    t2, c2 = time.perf_counter(), time.process_time()
    sizes = sorted(len(json.dumps(DagSerialization.to_dict(d), default=str)) for d in bag.dags.values())
    print(json.dumps({"imports": t1 - t0, "parse": t2 - t1, "cpu": c2 - c1, "dags": len(bag.dags), "files": files,
                      "errors": {k: str(v)[:300] for k, v in bag.import_errors.items()},
                      "size_median": sizes[len(sizes) // 2] if sizes else 0, "size_max": sizes[-1] if sizes else 0}))
""")


def dag_folder(taxonomy: Path, into: Path) -> Path:
    """A copy of dags/ with one DAG file per subject file of ``taxonomy`` (the shipped ones removed)."""
    from textbook.dag_files import sync_dag_files

    shutil.copytree(REPO / "dags", into, ignore=shutil.ignore_patterns("__pycache__"))
    sync_dag_files(into, taxonomy)
    return into


def file_of(dags: Path, kp_id: str) -> Path:
    """The DAG file that builds the knowledge point's DAG: a worker running its task parses that one."""
    from textbook.dag_files import part_of

    subject_file = kp_id.split(".")[0] + ".yaml"
    for path in sorted(dags.glob("textbook_subject_*.py")):
        m = re.search(r'register_subject\(globals\(\), "([^"]+)", part=(\d+), parts=(\d+)\)', path.read_text())
        if m and m.group(1) == subject_file and part_of(kp_id, int(m.group(3))) == int(m.group(2)):
            return path
    raise SystemExit(f"no DAG file in {dags} builds {kp_id}")


def measure(dags: Path, taxonomy: Path, extra_env: dict[str, str] | None = None, per_file: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-airflow-") as home:
        # Bytecode written and reused, as in a deployment (the image's pip install compiles the
        # package): with PYTHONDONTWRITEBYTECODE every forked file would compile our modules anew.
        env = {**os.environ, "TEXTBOOK_TAXONOMY_DIR": str(taxonomy), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), "PYTHONDONTWRITEBYTECODE": "",
               "AIRFLOW_HOME": home, **(extra_env or {})}
        argv = [sys.executable, "-c", PROBE, str(dags)] + (["per-file"] if per_file else [])
        out = subprocess.run(argv, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"DAG parse probe failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--courses", type=int, default=5)
    ap.add_argument("--sub-courses", type=int, default=10)
    ap.add_argument("--kps", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-taxonomy-") as tmp:
        taxonomy = Path(tmp) / "taxonomy"
        taxonomy.mkdir()
        n = write_taxonomy(taxonomy, args.subjects, args.courses, args.sub_courses, args.kps)
        dags = dag_folder(taxonomy, Path(tmp) / "dags")
        full = measure(dags, taxonomy, per_file=True)
        one_kp = "subject00.course00.sub00.kp00"
        single = measure(file_of(dags, one_kp), taxonomy, {
            "_AIRFLOW_PARSING_CONTEXT_DAG_ID": "textbook__" + one_kp.replace(".", "__"),
            "_AIRFLOW_PARSING_CONTEXT_TASK_ID": "search"})
    files = full["files"]
    slowest = max(files, key=lambda name: files[name][0])
    print(f"DAG parse, {n} knowledge points ({args.subjects} subject files, {len(files)} DAG files); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  parse of the DAG folder:         {full['parse']:.2f} s wall, {full['cpu']:.2f} s CPU for {full['dags']} "
          f"DAGs ({1000 * full['cpu'] / max(1, full['dags']):.2f} ms CPU per DAG); interpreter imports "
          f"{full['imports']:.2f} s")
    print("  each DAG file, forked (as the dag-processor parses it; wall / CPU):")
    for name, (wall, cpu, dags, errors) in sorted(files.items()):
        print(f"    {name:<44}{wall:6.2f} s {cpu:6.2f} s  {dags:4d} DAGs" + (f"  {errors} errors" if errors else ""))
    print(f"  slowest file:                    {files[slowest][0]:.2f} s wall ({slowest}); sum over files "
          f"{sum(f[0] for f in files.values()):.2f} s wall, {sum(f[1] for f in files.values()):.2f} s CPU")
    print(f"  serialized DAG size:             median {full['size_median'] / 1024:.1f} KiB, "
          f"max {full['size_max'] / 1024:.1f} KiB")
    print(f"  parse when a task runs (1 DAG):  {single['parse']:.2f} s for its DAG file ({single['dags']} DAG built)")
    if full["errors"] or single["errors"]:
        print(f"  IMPORT ERRORS: {full['errors'] or single['errors']}")


if __name__ == "__main__":
    main()

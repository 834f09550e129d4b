"""Airflow DAGs of the taxonomy subject files that have no DAG file of their own yet.

Each subject file gets its own DAG file (``textbook_subject_*.py``, written by ``python -m
textbook.dag_files``), so a slow or broken subject never takes the others' DAGs with it. A subject
file added since is built here, so its DAGs appear at the next parse without a manual step.
"""

from pathlib import Path

from textbook_dag_factory import register_unclaimed

register_unclaimed(globals(), Path(__file__).parent)

"""Pipeline state in a relational database (SQLite by default, Postgres in a cluster)."""

from textbook.state.db import StateDB
from textbook.state.models import Base, KnowledgePointRow, StageRun, VideoKnowledgePoint, VideoRow
from textbook.state.train_models import BenchmarkRunRow, BenchmarkScoreRow, TrainRunRow

__all__ = ["Base", "BenchmarkRunRow", "BenchmarkScoreRow", "KnowledgePointRow", "StageRun", "StateDB", "TrainRunRow",
           "VideoKnowledgePoint", "VideoRow"]

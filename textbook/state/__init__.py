"""Pipeline state in a relational database (SQLite by default, Postgres in a cluster)."""

from textbook.state.db import StateDB
from textbook.state.models import Base, KnowledgePointRow, StageRun, VideoKnowledgePoint, VideoRow

__all__ = ["Base", "KnowledgePointRow", "StageRun", "StateDB", "VideoKnowledgePoint", "VideoRow"]

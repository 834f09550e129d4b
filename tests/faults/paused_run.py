"""The ``textbook`` CLI with one stage held open, so a test can hit the worker mid-stage.

``python paused_run.py ARGS...`` runs ``textbook ARGS...``. When the stage named by ``FAULT_STAGE``
starts on the first video this process runs it on (the stage row is claimed, ``running``), it
writes ``FAULT_MARKER`` (JSON: stage, video, pid) and sleeps ``FAULT_SLEEP`` seconds before doing
the stage's real work. The test waits for the marker, then kills the process, stops a service
under it, or lets it go on.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from textbook.cli import main
from textbook.stages.base import Stage

_real_call = Stage.__call__
_paused: list[str] = []


def _call(self: Stage, video, ctx):  # noqa: ANN001, ANN202 - the Stage.__call__ signature
    if self.name == os.environ["FAULT_STAGE"] and not _paused:
        _paused.append(video.video_id)
        marker = Path(os.environ["FAULT_MARKER"])
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps({"stage": self.name, "video": video.video_id, "pid": os.getpid()}))
        tmp.rename(marker)  # the test never reads half a marker
        time.sleep(float(os.environ.get("FAULT_SLEEP", "3600")))
    return _real_call(self, video, ctx)


if __name__ == "__main__":
    Stage.__call__ = _call
    sys.exit(main(sys.argv[1:]))

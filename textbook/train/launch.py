"""``accelerate launch`` as a child process: an argv (never a shell), its own process group, its
output streamed line by line to the caller's log, SIGTERM forwarded to the whole group.

The accelerate config files ship in ``textbook/train/configs/accelerate``; a name picks one, a path
is used as is. Flags beat file values: the process count, a free rendezvous port per launch (CI runs
in parallel; never the default 29500) and the mixed precision. Relative DeepSpeed config paths are
resolved next to the config file, written into the run folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import yaml

from textbook.train.config import LaunchSpec

CONFIG_DIR = Path(__file__).with_name("configs") / "accelerate"


class LaunchError(RuntimeError):
    """The training processes failed; the message carries the exit status and the output's tail."""


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def config_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path.resolve()
    shipped = CONFIG_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise LaunchError(f"accelerate config {name_or_path!r}: neither a file nor a shipped config "
                      f"({', '.join(shipped_configs())})")


def resolved_config(spec: LaunchSpec, run_dir: Path) -> Path:
    """The config with a relative ``deepspeed_config_file`` made absolute, saved into the run folder."""
    src = config_path(spec.accelerate_config)
    data = yaml.safe_load(src.read_text()) or {}
    ds = data.get("deepspeed_config") or {}
    if ds.get("deepspeed_config_file") and not Path(ds["deepspeed_config_file"]).is_absolute():
        ds["deepspeed_config_file"] = str((src.parent / ds["deepspeed_config_file"]).resolve())
    out = run_dir / "accelerate.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=True))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_exe() -> list[str]:
    """The ``accelerate`` beside this interpreter (the venv's), else on PATH."""
    exe = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if exe is None:
        raise LaunchError("the accelerate command is not installed (pip install accelerate)")
    return [exe]


def launch_argv(spec: LaunchSpec, run_dir: Path, *, stop_after: int = 0) -> list[str]:
    argv = [*accelerate_exe(), "launch", "--config_file", str(resolved_config(spec, run_dir))]
    if spec.num_processes:
        argv += ["--num_processes", str(spec.num_processes)]
    if spec.mixed_precision:
        argv += ["--mixed_precision", spec.mixed_precision]
    if spec.machine_rank:
        argv += ["--machine_rank", str(spec.machine_rank)]
    argv += ["--main_process_port", str(spec.main_process_port or free_port())]
    argv += ["-m", "textbook.train.pretrain", "--run-dir", str(run_dir)]
    return argv + (["--stop-after", str(stop_after)] if stop_after else [])


class Launch:
    """One running ``accelerate launch``; ``terminate`` is safe to call from a signal handler."""

    def __init__(self, argv: list[str], echo: Callable[[str], None], cwd: Path | None = None,
                 env: dict[str, str] | None = None, grace: float = 30.0) -> None:
        self.argv, self.echo, self.grace = argv, echo, grace
        self.tail: list[str] = []
        self.proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)

    def wait(self) -> int:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.tail = (self.tail + [line])[-40:]
            self.echo(line)
        return self.proc.wait()

    def terminate(self) -> None:
        """SIGTERM to the process group, SIGKILL after the grace period."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return

        def _kill() -> None:
            try:
                self.proc.wait(self.grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        threading.Thread(target=_kill, daemon=True).start()


def run_launch(argv: list[str], echo: Callable[[str], None], *, grace: float = 30.0,
               on_start: Callable[[Launch], None] | None = None) -> None:
    """Run to completion; SIGTERM to this process goes to the training group; raise on failure."""
    launch = Launch(argv, echo, grace=grace)
    if on_start:
        on_start(launch)
    previous = None
    if threading.current_thread() is threading.main_thread():
        def _forward(signum: int, frame: object) -> None:
            launch.terminate()
            if callable(previous):
                previous(signum, frame)

        previous = signal.signal(signal.SIGTERM, _forward)
    try:
        rc = launch.wait()
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    if rc != 0:
        raise LaunchError(f"accelerate launch exited with {rc}: " + " | ".join(launch.tail[-8:]))

"""Notebook set-up: one call that makes a chapter reproducible and sized for the machine it runs on.

    env = minift.course.setup(seed=0)                 # seeds, device, mode, CPU threads; prints one line
    steps = env.pick(fast=20, full=400, gpu=2000)     # tests, CPU laptop, CUDA card
    with minift.course.timer("training"):
        ...
    minift.course.save_results("04_lora_rank_sweep", {"rank": ranks, "accuracy": scores}, figure=fig)

Modes: ``fast`` is for the test suite (tiny configs, a few steps: the numbers are not the ones the text
discusses), ``full`` is the real course run. The mode comes from ``setup(mode=...)`` or the environment
variable MINIFT_MODE, so ``make test`` can switch every notebook to fast mode without editing them.

CPU threads: setup() is the one place that decides how many threads PyTorch uses (see choose_threads):
1 on CPU, because the course's models are tiny and one thread avoids the synchronisation that several
threads pay on every small matrix product (several times faster on a busy 2-core machine).
``setup(threads=4)`` or the environment variable MINIFT_THREADS=4 overrides it.
"""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from minift._version import __version__
from minift.files import atomic_path
from minift.train import default_device
from minift.validate import int_in_range, positive_int

MODES = ("fast", "full")
DEFAULT_MODE = "full"
MODE_VARIABLE = "MINIFT_MODE"
THREADS_VARIABLE = "MINIFT_THREADS"
CPU_THREADS = 1          # on CPU: tiny models, one thread beats several that must synchronise (see above)
MAX_THREADS = 8          # on an accelerator the CPU only feeds it: more threads mostly add synchronisation

_current_env: "CourseEnv | None" = None    # the last setup(), so save_results() can record the mode


@dataclass
class CourseEnv:
    """What setup() decided. Notebooks read it to size their experiments."""

    seed: int
    device: torch.device
    mode: str
    threads: int | None = None     # CPU threads PyTorch uses (None: not set by setup())

    @property
    def is_fast(self) -> bool:
        return self.mode == "fast"

    @property
    def has_gpu(self) -> bool:
        """True on a CUDA card: the only accelerator the larger "gpu" configs are sized for."""
        return self.device.type == "cuda"

    def pick(self, fast, full, gpu=None):
        """The value for the current mode: ``fast`` in fast mode, else ``gpu`` on a CUDA card (when
        given), else ``full``. One call per knob keeps every notebook's sizes in one visible place."""
        if self.is_fast:
            return fast
        if gpu is not None and self.has_gpu:
            return gpu
        return full


def parse_mode(mode: str | None = None) -> str:
    """``mode`` if given, else $MINIFT_MODE, else "full". Unknown values fail instead of silently
    running the (slow) full course in a test, or the (meaningless) fast one in a lecture."""
    source = "mode"
    if mode is None:
        mode, source = os.environ.get(MODE_VARIABLE, "").strip(), MODE_VARIABLE
        if not mode:
            return DEFAULT_MODE
    if not isinstance(mode, str) or mode.strip().lower() not in MODES:
        raise ValueError(f"{source}={mode!r} is not a valid mode; allowed: {MODES}")
    return mode.strip().lower()


def available_cpus() -> int:
    """CPUs this process may use (a container or a course server often grants fewer than the host has)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _threads_from_environment() -> int | None:
    """$MINIFT_THREADS as a positive integer, or None when it is unset or empty."""
    text = os.environ.get(THREADS_VARIABLE, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise ValueError(f"{THREADS_VARIABLE}={text!r} is not a valid thread count; allowed: a positive "
                         "integer such as 1 or 4 (or unset it for the course default)")
    return value


def _omp_limit() -> int | None:
    """The limit in $OMP_NUM_THREADS, if the user set a usable one."""
    try:
        value = int(os.environ.get("OMP_NUM_THREADS", "").strip())
    except ValueError:
        return None
    return value if value >= 1 else None


def choose_threads(device="cpu", threads=None) -> int:
    """How many CPU threads PyTorch should use: the course's one rule, used by setup() and the tests.

    ``threads`` if given, else $MINIFT_THREADS, else 1 on CPU (CPU_THREADS: the course's models are
    tiny, one thread is fastest), else, when an accelerator does the work, min(available CPUs, 8),
    capped by $OMP_NUM_THREADS when the user set that limit on purpose.
    """
    threads = positive_int("threads", threads, allow_none=True)
    if threads is not None:
        return threads
    threads = _threads_from_environment()
    if threads is not None:
        return threads
    if torch.device(device).type == "cpu":
        return CPU_THREADS
    return min(available_cpus(), MAX_THREADS, _omp_limit() or MAX_THREADS)


def set_threads(device="cpu", threads=None) -> int:
    """Apply choose_threads(device, threads) to PyTorch and return the number."""
    threads = choose_threads(device, threads)
    torch.set_num_threads(threads)
    return threads


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and CUDA) random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)          # also seeds every CUDA device


def setup(seed: int = 0, mode: str | None = None, *, device=None, threads: int | None = None) -> CourseEnv:
    """Prepare a notebook: seed everything, pick the device (cuda > mps > cpu) and the mode, set the
    number of CPU threads (choose_threads: 1 on CPU unless ``threads`` or $MINIFT_THREADS says
    otherwise), and print one summary line. ``device`` forces a device (e.g. "cpu")."""
    global _current_env
    seed = int_in_range("seed", seed, 0, 2**32 - 1)
    mode = parse_mode(mode)
    device = torch.device(device) if device is not None else default_device()
    threads = set_threads(device, threads)        # checks its arguments before anything changes
    seed_everything(seed)

    print(f"minift {__version__} | torch {torch.__version__} | device {describe_device(device)} "
          f"| {threads} CPU thread{'' if threads == 1 else 's'} | mode {mode} | seed {seed}")
    _current_env = CourseEnv(seed=seed, device=device, mode=mode, threads=threads)
    return _current_env


def describe_device(device) -> str:
    """"cpu", "mps", or "cuda (NVIDIA ...)": what a reader needs to compare timings."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux), for results files."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            for line in stream:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def synchronize() -> None:
    """Wait for queued GPU work: accelerators run asynchronously, so a timer stopped without this
    measures only how long it took to *queue* the work."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.synchronize()


class timer:
    """Measure wall time of a block: ``with timer("training") as t: ...`` then ``t.seconds``.

    Prints "training: 1.23 s" at the end when a name is given (verbose=False to stay quiet).
    """

    def __init__(self, name: str | None = None, verbose: bool = True):
        self.name = name
        self.verbose = verbose
        self.seconds = float("nan")
        self._start = None

    def __enter__(self):
        synchronize()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info):
        synchronize()
        self.seconds = time.perf_counter() - self._start
        if self.name is not None and self.verbose and exc_info[0] is None:
            print(f"{self.name}: {self.seconds:.2f} s")
        return False

    def __repr__(self):
        return f"timer({self.name!r}, seconds={self.seconds:.3f})"


# --- results: what a run measured, with enough metadata to say where and when ---------------------

def _check_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a results name must be a non-empty string, got {name!r}")
    if any(c in name for c in ("/", "\\", "\0")) or name in (".", ".."):
        raise ValueError(f"results name {name!r} must be a plain file name without path separators "
                         "(e.g. '04_lora_rank_sweep'); use root= to choose the folder")
    return name


def _project_root() -> Path | None:
    """The course checkout that contains the current directory (it holds pyproject.toml and minift/)."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "minift").is_dir():
            return folder
    return None


def results_dir(root="results") -> Path:
    """Where results live. A relative root is taken from the course checkout's top folder when the
    current directory is inside one (notebooks run from notebooks/ but results/ is at the top)."""
    root = Path(root)
    if root.is_absolute():
        return root
    project = _project_root()
    return (project / root) if project is not None else root.resolve()


def git_commit() -> str:
    """The commit the code came from, or "unknown" outside a git checkout (or without git)."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else "unknown"


def run_metadata() -> dict:
    """Device, date, versions, commit, mode and CPU threads: what you need to trust (or question) a
    number later (a timing depends on the thread count as much as on the processor)."""
    env = _current_env
    device = env.device if env is not None else default_device()
    return {
        "device": torch.device(device).type,
        "device_name": cpu_name() if torch.device(device).type == "cpu" else describe_device(device),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "minift_version": __version__,
        "torch_version": torch.__version__,
        "git_commit": git_commit(),
        "mode": env.mode if env is not None else parse_mode(None),
        "seed": env.seed if env is not None else None,
        "threads": torch.get_num_threads(),
    }


def _to_json(value):
    """json.dumps fallback: NumPy and PyTorch numbers/arrays become plain Python numbers/lists."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot save a value of type {type(value).__name__} in a results file "
                    "(use numbers, strings, lists, dicts, NumPy arrays or tensors)")


def _atomic_write(path: Path, write) -> None:
    """Call write(stream) on a temporary file, then rename it to ``path`` (see minift.files)."""
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        write(stream)


def save_results(name: str, data: dict, figure=None, root="results") -> Path:
    """Save ``data`` as <root>/<name>.json with run metadata, and ``figure`` (matplotlib) as <name>.png.

    The file holds {"data": data, "metadata": {...}}. Returns the JSON path.
    """
    name = _check_name(name)
    if not isinstance(data, dict):
        raise ValueError(f"data must be a dict, got {type(data).__name__}")
    # serialise first: if data holds something JSON cannot store, nothing is written at all
    text = json.dumps({"data": data, "metadata": run_metadata()}, indent=2, default=_to_json)
    folder = results_dir(root)
    if figure is not None:
        if not hasattr(figure, "savefig"):
            raise ValueError(f"figure must be a matplotlib Figure, got {type(figure).__name__}")
        _atomic_write(folder / f"{name}.png",
                      lambda stream: figure.savefig(stream, format="png", dpi=120, bbox_inches="tight"))
    path = folder / f"{name}.json"
    _atomic_write(path, lambda stream: stream.write((text + "\n").encode("utf-8")))
    return path


def load_results(name: str, root="results") -> dict | None:
    """The dict save_results() wrote ({"data": ..., "metadata": ...}), or None if there is none yet."""
    path = results_dir(root) / f"{_check_name(name)}.json"
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


__all__ = ["CourseEnv", "setup", "parse_mode", "choose_threads", "set_threads", "seed_everything", "timer",
           "synchronize", "describe_device", "cpu_name", "available_cpus", "save_results", "load_results",
           "results_dir", "run_metadata", "git_commit", "MODES", "THREADS_VARIABLE"]

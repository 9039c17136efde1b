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

Time to learn: setup() notes when the chapter started (wall clock and this process's CPU time), and each
notebook's last cell, ``minift.course.report_time("04")``, prints how long the chapter took. With the
environment variable MINIFT_RECORD_TIMES=1 (set by ``make course``) it also merges that record into
results/course_times.json, from which ``python benchmarks/course_times.py --readme`` writes the README's
table; without it nothing is written (the test suite runs every notebook and must not touch results/).
"""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
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
RECORD_TIMES_VARIABLE = "MINIFT_RECORD_TIMES"   # "1": report_time() also writes results/course_times.json
COURSE_TIMES_FILE = "course_times.json"

_current_env: "CourseEnv | None" = None    # the last setup(), so save_results() can record the mode


@dataclass
class CourseEnv:
    """What setup() decided. Notebooks read it to size their experiments."""

    seed: int
    device: torch.device
    mode: str
    threads: int | None = None     # CPU threads PyTorch uses (None: not set by setup())
    # when setup() ran: time.perf_counter() and time.process_time() (None: not made by setup())
    started_wall: float | None = field(default=None, repr=False, compare=False)
    started_cpu: float | None = field(default=None, repr=False, compare=False)

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
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    seed = int_in_range("seed", seed, 0, 2**32 - 1)
    mode = parse_mode(mode)
    device = torch.device(device) if device is not None else default_device()
    threads = set_threads(device, threads)        # checks its arguments before anything changes
    seed_everything(seed)

    print(f"minift {__version__} | torch {torch.__version__} | device {describe_device(device)} "
          f"| {threads} CPU thread{'' if threads == 1 else 's'} | mode {mode} | seed {seed}")
    _current_env = CourseEnv(seed=seed, device=device, mode=mode, threads=threads,
                             started_wall=started_wall, started_cpu=started_cpu)
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


# --- time to learn: how long a chapter took, recorded by its last cell --------------------------------

def _chapter_key(chapter) -> str:
    """"04" from "04", "4" or 4: the chapter numbers the notebooks' file names start with."""
    text = str(chapter).strip() if isinstance(chapter, (str, int)) and not isinstance(chapter, bool) else ""
    if not (text.isdigit() and len(text) <= 2):
        raise ValueError(f"chapter={chapter!r} is not a chapter number; use the two digits the notebook's "
                         "file name starts with, e.g. report_time(\"04\") in notebooks/04_lora.ipynb")
    return f"{int(text):02d}"


def _recording_times() -> bool:
    """True when $MINIFT_RECORD_TIMES asks report_time() to write results/course_times.json."""
    text = os.environ.get(RECORD_TIMES_VARIABLE, "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{RECORD_TIMES_VARIABLE}={text!r} is not understood; use 1 to record times "
                     "(as `make course` does) or unset it")


@contextmanager
def _folder_lock(folder: Path):
    """Hold an exclusive lock on ``folder`` (flock on the directory itself: no lock file is left behind)
    so that two writers' read-modify-write cycles cannot interleave. A no-op where flock is missing."""
    try:
        import fcntl
    except ImportError:                     # Windows: the atomic rename alone still prevents torn files
        yield
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)                    # closing releases the lock


def update_json_file(path, update) -> dict:
    """Read the JSON object at ``path`` (an empty dict when the file does not exist), call
    ``update(data)`` to change it in place, and write it back atomically (minift.files.atomic_path) while
    holding a lock on the folder: a failed write leaves the old file as it was, and two processes that
    update it at once both keep their changes. A file that is not a JSON object is refused, not replaced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(path.parent):
        data = {}
        if path.is_file():
            try:
                with open(path, encoding="utf-8") as stream:
                    data = json.load(stream)
            except (ValueError, UnicodeDecodeError) as error:
                raise ValueError(f"{path} is not valid JSON ({error}); fix or remove it, nothing was "
                                 "written") from error
            if not isinstance(data, dict):
                raise ValueError(f"{path} holds a JSON {type(data).__name__}, not an object; fix or "
                                 "remove it, nothing was written")
        update(data)
        text = json.dumps(data, indent=2, sort_keys=True, default=_to_json) + "\n"
        _atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))
    return data


def report_time(chapter, root="results") -> dict:
    """How long this chapter took since ``setup()``: print one line and return the record (wall_s,
    cpu_s, mode, device, threads, date, commit, versions). Each notebook calls it in its last cell.

    CPU time is this process's (time.process_time(): all its threads, not other processes), which a busy
    machine disturbs less than wall time. With $MINIFT_RECORD_TIMES=1 (``make course``) the record is
    also merged into <root>/course_times.json under [chapter][mode], where mode is "fast" or "full", with
    "_gpu" appended on a CUDA card; otherwise nothing is written.
    """
    chapter = _chapter_key(chapter)
    env = _current_env
    if env is None or env.started_wall is None or env.started_cpu is None:
        raise RuntimeError("report_time() measures from minift.course.setup(), which has not run in this "
                           "kernel: run the notebook from the top (setup() is in its first code cell)")
    wall_s = time.perf_counter() - env.started_wall
    cpu_s = time.process_time() - env.started_cpu
    metadata = run_metadata()
    mode_key = env.mode + ("_gpu" if env.has_gpu else "")
    record = {"chapter": chapter, "mode": mode_key, "wall_s": round(wall_s, 2), "cpu_s": round(cpu_s, 2),
              # the whole kernel process's CPU time, imports before setup() included
              "process_cpu_s": round(time.process_time(), 2),
              **{key: metadata[key] for key in ("date", "device", "device_name", "threads", "git_commit",
                                                  "minift_version", "torch_version")}}
    threads = record["threads"]
    where = f"cpu: {record['device_name']}" if record["device"] == "cpu" else record["device_name"]
    print(f"Chapter {chapter} ran in {wall_s:.0f} s wall, {cpu_s:.0f} s CPU since setup() (mode {mode_key}, "
          f"{where}, {threads} thread{'' if threads == 1 else 's'})")
    if _recording_times():
        def add(data):
            modes = data.get(chapter)
            data[chapter] = {**(modes if isinstance(modes, dict) else {}), mode_key: record}
        update_json_file(results_dir(root) / COURSE_TIMES_FILE, add)
    return record


__all__ = ["CourseEnv", "setup", "parse_mode", "choose_threads", "set_threads", "seed_everything", "timer",
           "synchronize", "describe_device", "cpu_name", "available_cpus", "save_results", "load_results",
           "results_dir", "run_metadata", "git_commit", "MODES", "THREADS_VARIABLE", "report_time",
           "update_json_file", "RECORD_TIMES_VARIABLE"]

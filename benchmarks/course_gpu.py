"""Run every course notebook in its GPU configuration, headless, and keep what the notebooks save.

    make course-gpu                                   # = python benchmarks/course_gpu.py, on a CUDA machine
    python benchmarks/course_gpu.py --dry-run         # the same machinery on CPU, fast mode, notebook 00
    bash benchmarks/gpu_session.sh                    # bench on CUDA, then this, in one ~9-minute call

With MINIFT_MODE unset the notebooks run in full mode, and on a CUDA card ``env.pick(fast, full, gpu)``
(minift.course) then picks the gpu value. The committed notebooks are never touched: copies run in a
temporary course checkout (pyproject.toml, links to minift/, benchmarks/ and the other top-level entries,
notebooks/, and a copy of results/ so that a chapter can read an earlier one's results). What a notebook saves there (save_results writes
<name>.json and <name>.png) is copied to --results (default results/); on CUDA a name without "_gpu"
gets it, so GPU results never overwrite the CPU ones. A JSON record of the run, results/
course_gpu_run.json (device name, date, commit, per-notebook wall time and status), is written after
every notebook, so a run cut short still says how far it got.

Each notebook runs in its own process with a hard time limit: --per-notebook, at most 1.5 times its fair
share of the time left (but at least 60 s), and never past the --budget of the whole run; a notebook that
fails or runs out of time is recorded and the next one runs.

Two executors. "nbclient" runs a real Jupyter kernel (what `make course` does). "plain" needs no Jupyter
at all, for a bare GPU machine: it executes the code cells in order in one Python namespace (the value of
a cell's last expression is printed, matplotlib figures are kept as PNG outputs) and writes the executed
notebook. A cell that fails only because an interactive UI package is missing (ipywidgets, IPython: the
quizzes' and explorers' front ends, which save nothing) is recorded as skipped and the notebook goes on.
"auto" (default) uses nbclient when it and ipykernel are installed, else plain.

The commit comes from git, or from $MINIFT_COMMIT where the copy has no .git (a device machine receives
the files only); results whose metadata says git_commit "unknown" then get it filled in.
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "minift-course-gpu-v1"
RUN_RECORD = "course_gpu_run.json"
DRY_RUN_NOTEBOOKS = ("00_welcome.ipynb",)
UI_MODULES = ("ipywidgets", "IPython")         # interactive front ends only: never what a chapter saves
LOG_TAIL = 3000


# ----------------------------------------------------------------------------------------------------
# The plain executor (runs inside the child process)

class _Tee(io.TextIOBase):
    """Write to a buffer (the cell's output) and to the real stream (the run's log)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


def _display(*objects, raw=False, **_):
    """Stand-in for IPython's display(): prints the plain-text form."""
    for obj in objects:
        if raw and isinstance(obj, dict):
            print(obj.get("text/plain", ""))
        else:
            print(repr(obj))


def _figures() -> list[dict]:
    """Open matplotlib figures as PNG display outputs (what the inline backend shows), then closed."""
    if "matplotlib.pyplot" not in sys.modules:
        return []
    import matplotlib.pyplot as plt
    outputs = []
    for number in plt.get_fignums():
        buffer = io.BytesIO()
        plt.figure(number).savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        outputs.append({"output_type": "display_data", "metadata": {},
                        "data": {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
                                 "text/plain": [f"<Figure {number}>"]}})
    plt.close("all")
    return outputs


def _missing_ui_module(error: BaseException) -> str | None:
    if isinstance(error, ModuleNotFoundError) and error.name:
        top = error.name.split(".")[0]
        return top if top in UI_MODULES else None
    return None


def execute_plain(source: Path, target: Path, status_path: Path) -> int:
    """Run ``source``'s code cells in order in one namespace; write the executed notebook to ``target``
    and {"failed_cell", "error", "skipped_cells", "cells"} to ``status_path``. Returns 0 or 1."""
    notebook = json.loads(source.read_text(encoding="utf-8"))
    os.chdir(source.parent)
    sys.path.insert(0, str(source.parent))
    os.environ.setdefault("MPLBACKEND", "Agg")
    namespace = {"__name__": "__main__", "display": _display}
    status = {"failed_cell": None, "error": None, "skipped_cells": [], "cells": 0}
    count = 0
    for index, cell in enumerate(notebook["cells"]):
        if cell.get("cell_type") != "code":
            continue
        code = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        count += 1
        out, err = io.StringIO(), io.StringIO()
        error = None
        print(f"--- cell {index}", flush=True)
        with redirect_stdout(_Tee(out, sys.__stdout__)), redirect_stderr(_Tee(err, sys.__stderr__)):
            try:
                tree = ast.parse(code, filename=f"<cell {index}>")
                last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
                exec(compile(tree, f"<cell {index}>", "exec"), namespace)
                if last is not None:
                    value = eval(compile(ast.Expression(last.value), f"<cell {index}>", "eval"), namespace)
                    if value is not None:
                        print(repr(value))
            except BaseException as caught:       # noqa: BLE001 - a notebook error, recorded below
                error = caught
        outputs = [{"output_type": "stream", "name": name, "text": stream.getvalue()}
                   for name, stream in (("stdout", out), ("stderr", err)) if stream.getvalue()]
        outputs += _figures()
        if error is not None:
            lines = traceback.format_exception(type(error), error, error.__traceback__)
            outputs.append({"output_type": "error", "ename": type(error).__name__, "evalue": str(error),
                            "traceback": lines})
            sys.__stderr__.write("".join(lines))
        cell["outputs"], cell["execution_count"] = outputs, count
        if error is not None:
            module = _missing_ui_module(error)
            if module is not None:
                status["skipped_cells"].append({"cell": index, "reason": f"{module} is not installed"})
                continue
            status.update(failed_cell=index, error=f"{type(error).__name__}: {error}")
            break
    status["cells"] = count
    target.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    status_path.write_text(json.dumps(status))
    return 0 if status["failed_cell"] is None else 1


def execute_nbclient(source: Path, target: Path, status_path: Path, cell_timeout: int) -> int:
    """Run ``source`` in a Jupyter kernel (as `make course` does); same outputs as execute_plain."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    notebook = nbformat.read(source, as_version=4)
    client = NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(source.parent)}})
    status = {"failed_cell": None, "error": None, "skipped_cells": [],
              "cells": sum(1 for c in notebook.cells if c.cell_type == "code")}
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as error:
        failed = next((i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and
                       any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        status.update(failed_cell=failed, error=str(error).strip().splitlines()[-1][:500])
    finally:
        nbformat.write(notebook, target)
        status_path.write_text(json.dumps(status))
    return 0 if status["failed_cell"] is None and status["error"] is None else 1


# ----------------------------------------------------------------------------------------------------
# The parent: workspace, one child process per notebook, results, the run record

def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if head.returncode == 0 and head.stdout.strip():
            return head.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("MINIFT_COMMIT", "").strip() or "unknown"


def nbclient_available() -> bool:
    try:
        import ipykernel  # noqa: F401
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError:
        return False
    return True


def describe_device() -> dict:
    import torch
    if torch.cuda.is_available():
        return {"device": "cuda", "device_name": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
                "torch": torch.__version__}
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            name = next((line.split(":", 1)[1].strip() for line in stream
                         if line.lower().startswith("model name")), name)
    except OSError:
        pass
    return {"device": "cpu", "device_name": name, "cuda": None, "torch": torch.__version__}


def make_workspace(notebooks: list[Path]) -> Path:
    """A throw-away course checkout: minift.course finds its top folder by pyproject.toml + minift/, so
    results land in workspace/results, not in the real one. The checkout's other top-level entries
    (minift/, benchmarks/, ...: what a chapter may read) are linked, notebooks/ and results/ copied."""
    workspace = Path(tempfile.mkdtemp(prefix="minift-course-gpu-"))
    shutil.copy2(ROOT / "pyproject.toml", workspace / "pyproject.toml")
    for entry in sorted(ROOT.iterdir()):
        if entry.name.startswith(".") or entry.name in ("notebooks", "results", "pyproject.toml"):
            continue
        (workspace / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    (workspace / "notebooks").mkdir()
    for notebook in notebooks:
        shutil.copy2(notebook, workspace / "notebooks" / notebook.name)
    if (ROOT / "results").is_dir():
        shutil.copytree(ROOT / "results", workspace / "results",
                        ignore=shutil.ignore_patterns("bench_*", RUN_RECORD, "*.tmp"))
    else:
        (workspace / "results").mkdir()
    return workspace


def fingerprints(folder: Path) -> dict:
    return {path.name: hashlib.sha1(path.read_bytes()).hexdigest()
            for path in sorted(folder.glob("*")) if path.is_file()}


def gpu_name(name: str) -> str:
    """'04_lora_sweeps.json' -> '04_lora_sweeps_gpu.json'; names that already say _gpu stay."""
    path = Path(name)
    return name if "_gpu" in path.stem else f"{path.stem}_gpu{path.suffix}"


def collect(workspace_results: Path, before: dict, destination: Path, on_gpu: bool, commit: str) -> list[str]:
    """Copy files the notebook created or changed into ``destination``; returns their new names."""
    collected = []
    destination.mkdir(parents=True, exist_ok=True)
    for name, digest in fingerprints(workspace_results).items():
        if before.get(name) == digest:
            continue
        new_name = gpu_name(name) if on_gpu else name
        source, target = workspace_results / name, destination / new_name
        if name.endswith(".json") and commit != "unknown":
            try:
                record = json.loads(source.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                record = None
            meta = record.get("metadata") if isinstance(record, dict) else None
            if isinstance(meta, dict) and meta.get("git_commit") == "unknown":
                meta["git_commit"], meta["git_commit_from"] = commit, "MINIFT_COMMIT (no .git in this copy)"
                source.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        shutil.copy2(source, target)
        collected.append(new_name)
    return collected


def kill_tree(process: subprocess.Popen) -> None:
    """Stop a notebook's process and everything it started (a Jupyter kernel runs in its own session)."""
    children = []
    try:
        import psutil
        children = psutil.Process(process.pid).children(recursive=True)
    except Exception:      # noqa: BLE001 - psutil missing or the process already gone
        pass
    for pid in [process.pid] + [child.pid for child in children]:
        for kill in (lambda p: os.killpg(p, signal.SIGKILL), lambda p: os.kill(p, signal.SIGKILL)):
            try:
                kill(pid)
            except (ProcessLookupError, PermissionError, OSError):
                pass
    process.wait()


def run_notebook(notebook: Path, workspace: Path, executed: Path, executor: str, limit: float, env: dict) -> dict:
    name = notebook.name
    source = workspace / "notebooks" / name
    target, status_path = executed / name, executed / (name + ".status.json")
    log_path = executed / (name + ".log")
    command = [sys.executable, str(Path(__file__).resolve()), "--_execute", executor, str(source), str(target),
               str(status_path), str(max(1, int(limit)))]
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=source.parent, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            returncode = process.wait(timeout=limit)
            timed_out = False
        except subprocess.TimeoutExpired:
            kill_tree(process)
            returncode, timed_out = None, True
    wall = time.perf_counter() - start
    status = json.loads(status_path.read_text()) if status_path.is_file() else {}
    tail = log_path.read_bytes()[-LOG_TAIL:].decode("utf-8", errors="replace")
    record = {"notebook": name, "wall_s": round(wall, 1), "returncode": returncode,
              "cells": status.get("cells"), "failed_cell": status.get("failed_cell"),
              "skipped_cells": status.get("skipped_cells", [])}
    if timed_out:
        record.update(status="timeout", error=f"stopped after the time limit of {limit:.0f} s")
    elif returncode == 0:
        record.update(status="ok", error=None)
    else:
        record.update(status="error", error=status.get("error") or f"exit code {returncode}")
    if record["status"] != "ok":
        record["log_tail"] = tail
    return record


def write_record(record: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    temporary.replace(path)


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--_execute":     # the child process
        executor, source, target, status_path, cell_timeout = sys.argv[2:7]
        if executor == "nbclient":
            return execute_nbclient(Path(source), Path(target), Path(status_path), int(cell_timeout))
        return execute_plain(Path(source), Path(target), Path(status_path))

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notebooks", nargs="+", type=Path, help="default: every notebooks/*.ipynb "
                        f"(--dry-run: {', '.join(DRY_RUN_NOTEBOOKS)})")
    parser.add_argument("--results", type=Path, help="where saved results go (default results/; --dry-run: a "
                        "new temporary folder)")
    parser.add_argument("--json", type=Path, help=f"the run record (default <results>/{RUN_RECORD})")
    parser.add_argument("--executed", type=Path, help="keep the executed notebooks and their logs here")
    parser.add_argument("--per-notebook", type=float, default=None, help="seconds per notebook (default 300; "
                        "--dry-run 120)")
    parser.add_argument("--budget", type=float, default=None, help="seconds for all notebooks (default 570; "
                        "--dry-run 150)")
    parser.add_argument("--executor", choices=("auto", "nbclient", "plain"), default="auto")
    parser.add_argument("--dry-run", action="store_true", help="CPU, MINIFT_MODE=fast, notebook 00 only, "
                        "results in a temporary folder: checks this script without a GPU")
    parser.add_argument("--allow-cpu", action="store_true", help="run the full configuration without CUDA "
                        "(slow: that is `make course`'s job)")
    args = parser.parse_args(argv)
    dry = args.dry_run
    per_notebook = args.per_notebook or (120.0 if dry else 300.0)
    budget = args.budget or (150.0 if dry else 570.0)
    if per_notebook <= 0 or budget <= 0:
        parser.error("--per-notebook and --budget must be > 0 seconds")
    notebooks = args.notebooks or ([ROOT / "notebooks" / n for n in DRY_RUN_NOTEBOOKS] if dry
                                   else sorted((ROOT / "notebooks").glob("*.ipynb")))
    for notebook in notebooks:
        if not notebook.is_file() or notebook.suffix != ".ipynb":
            parser.error(f"{notebook} is not a notebook file")
    executor = args.executor
    if executor == "auto":
        executor = "nbclient" if nbclient_available() else "plain"
    elif executor == "nbclient" and not nbclient_available():
        parser.error("--executor nbclient needs nbclient, nbformat and ipykernel installed")

    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if dry:
        env.update(MINIFT_MODE="fast", CUDA_VISIBLE_DEVICES="")
        os.environ["CUDA_VISIBLE_DEVICES"] = ""          # so this process describes the CPU too
    else:
        env.pop("MINIFT_MODE", None)                      # full mode: the gpu values on a CUDA card
    device = describe_device()
    if not dry and device["device"] != "cuda" and not args.allow_cpu:
        print("course_gpu: no CUDA device here. Run it on a GPU machine (bash benchmarks/gpu_session.sh), "
              "try the machinery with --dry-run, or force the full CPU run with --allow-cpu.", file=sys.stderr)
        return 2
    commit = git_commit()
    env["MINIFT_COMMIT"] = commit
    results = args.results or (Path(tempfile.mkdtemp(prefix="minift-course-gpu-results-")) if dry
                               else ROOT / "results")
    record_path = args.json or results / RUN_RECORD
    workspace = make_workspace(notebooks)
    executed = args.executed or workspace / "executed"
    executed.mkdir(parents=True, exist_ok=True)

    record = {"schema": SCHEMA, "dry_run": dry, "mode": "fast" if dry else "full (gpu values on CUDA)",
              "executor": executor, **device, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "commit": commit, "python": platform.python_version(), "budget_s": budget,
              "per_notebook_s": per_notebook, "results_folder": str(results), "notebooks": []}
    print(f"course_gpu: {len(notebooks)} notebook(s) on {device['device_name']} ({device['device']}), "
          f"executor {executor}, {'dry run, ' if dry else ''}budget {budget:.0f} s, "
          f"{per_notebook:.0f} s per notebook; results -> {results}", flush=True)
    start = time.perf_counter()
    try:
        for index, notebook in enumerate(notebooks):
            left = budget - (time.perf_counter() - start)
            # at most 1.5 fair shares of what is left (but 60 s), so one slow chapter cannot eat the run
            fair = 1.5 * left / (len(notebooks) - index)
            limit = min(per_notebook, left, max(fair, 60.0))
            if left < 5:
                entry = {"notebook": notebook.name, "status": "skipped", "wall_s": 0.0,
                         "error": f"no time left in the budget of {budget:.0f} s", "results": []}
            else:
                before = fingerprints(workspace / "results")
                entry = run_notebook(notebook, workspace, executed, executor, limit, env)
                entry["results"] = collect(workspace / "results", before, results,
                                           device["device"] == "cuda", commit)
            record["notebooks"].append(entry)
            record["total_s"] = round(time.perf_counter() - start, 1)
            write_record(record, record_path)
            print(f"  {entry['notebook']}: {entry['status']} in {entry['wall_s']:.0f} s"
                  + (f" ({entry['error']})" if entry.get("error") else "")
                  + (f"; skipped cells {[c['cell'] for c in entry['skipped_cells']]}" if entry.get("skipped_cells") else "")
                  + (f"; saved {', '.join(entry['results'])}" if entry["results"] else ""), flush=True)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    record["ok"] = sum(1 for entry in record["notebooks"] if entry["status"] == "ok")
    write_record(record, record_path)
    print(f"course_gpu: {record['ok']}/{len(notebooks)} ok in {record['total_s']:.0f} s; record -> {record_path}")
    return 0 if record["ok"] == len(notebooks) else 1


if __name__ == "__main__":
    sys.exit(main())

"""benchmarks/course_gpu.py: the GPU run of every notebook, kept from rotting by its CPU dry run.

The dry run executes notebook 00 in fast mode on the CPU through the same machinery as the GPU run
(temporary course checkout, one child process per notebook with a hard time limit, results collected,
run record written); the other tests check the pieces whose failure would go unnoticed on a GPU
machine: timeouts, failing cells, cells that only need the missing UI packages, result renaming.
"""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "course_gpu.py"


def load_script():
    spec = importlib.util.spec_from_file_location("course_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1", MINIFT_THREADS="1")
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def notebook(path: Path, *cells: str) -> Path:
    path.write_text(json.dumps({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": c}
                  for c in cells]}))
    return path


def test_dry_run_executes_notebook_00_and_records_it(tmp_path):
    committed = ROOT / "notebooks" / "00_welcome.ipynb"
    before = hashlib.sha1(committed.read_bytes()).hexdigest()
    record_path = tmp_path / "run.json"
    done = run("--dry-run", "--executor", "plain", "--results", tmp_path / "results", "--json", record_path,
               "--executed", tmp_path / "executed")
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads(record_path.read_text())
    assert record["schema"] == "minift-course-gpu-v1"
    assert record["dry_run"] is True and record["mode"] == "fast" and record["executor"] == "plain"
    assert record["device"] == "cpu" and record["device_name"]
    assert record["date"] and record["commit"] and record["torch"]
    [entry] = record["notebooks"]
    assert entry["notebook"] == "00_welcome.ipynb"
    assert entry["status"] == "ok" and entry["error"] is None and entry["failed_cell"] is None
    assert entry["cells"] >= 5 and 0 < entry["wall_s"] <= record["total_s"]
    assert record["ok"] == 1
    executed = json.loads((tmp_path / "executed" / "00_welcome.ipynb").read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert any("mode fast" in o.get("text", "") for o in outputs)          # setup() ran in fast mode
    assert hashlib.sha1(committed.read_bytes()).hexdigest() == before      # the committed copy is untouched


def test_timeout_and_failure_are_recorded_and_the_run_goes_on(tmp_path):
    slow = notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(60)")
    broken = notebook(tmp_path / "broken.ipynb", "x = 1", "raise ValueError('on purpose')", "print('never')")
    fine = notebook(tmp_path / "fine.ipynb", "print('hello')")
    record_path = tmp_path / "run.json"
    done = run("--dry-run", "--executor", "plain", "--per-notebook", 3, "--notebooks", slow, broken, fine,
               "--results", tmp_path / "results", "--json", record_path)
    assert done.returncode == 1
    entries = {e["notebook"]: e for e in json.loads(record_path.read_text())["notebooks"]}
    assert entries["slow.ipynb"]["status"] == "timeout" and entries["slow.ipynb"]["wall_s"] < 20
    assert entries["broken.ipynb"]["status"] == "error"
    assert entries["broken.ipynb"]["failed_cell"] == 1 and "on purpose" in entries["broken.ipynb"]["error"]
    assert entries["fine.ipynb"]["status"] == "ok"


def test_plain_executor_skips_only_cells_that_need_missing_ui_packages(tmp_path):
    source = notebook(tmp_path / "ui.ipynb",
                      "x = 2\nx * 21",
                      "raise ModuleNotFoundError(\"No module named 'ipywidgets'\", name='ipywidgets')",
                      "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nprint('after', x)",
                      "raise ModuleNotFoundError(\"No module named 'scipy'\", name='scipy')")
    target, status_path = tmp_path / "out.ipynb", tmp_path / "status.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--_execute", "plain", str(source), str(target),
                           str(status_path), "60"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, MPLBACKEND="Agg"))
    assert done.returncode == 1
    status = json.loads(status_path.read_text())
    assert status["skipped_cells"] == [{"cell": 1, "reason": "ipywidgets is not installed"}]
    assert status["failed_cell"] == 3 and "scipy" in status["error"]         # a real dependency still fails
    cells = json.loads(target.read_text())["cells"]
    assert cells[0]["outputs"][0]["text"] == "42\n"                            # the last expression is shown
    assert cells[2]["outputs"][0]["text"] == "after 2\n"
    assert any(o["output_type"] == "display_data" and "image/png" in o["data"] for o in cells[2]["outputs"])


def test_collected_results_get_the_gpu_suffix_and_the_commit(tmp_path):
    course_gpu = load_script()
    workspace, destination = tmp_path / "ws", tmp_path / "results"
    workspace.mkdir()
    (workspace / "old.json").write_text("{}")
    before = course_gpu.fingerprints(workspace)
    (workspace / "02_training_memory.json").write_text(json.dumps({"data": {}, "metadata": {"git_commit": "unknown"}}))
    (workspace / "02_training_memory.png").write_bytes(b"png")
    (workspace / "04_lora_latency_gpu.json").write_text(json.dumps({"data": {}, "metadata": {"git_commit": "abc"}}))
    names = course_gpu.collect(workspace, before, destination, on_gpu=True, commit="1234")
    assert sorted(names) == ["02_training_memory_gpu.json", "02_training_memory_gpu.png", "04_lora_latency_gpu.json"]
    assert not (destination / "old.json").exists()                            # unchanged files stay behind
    saved = json.loads((destination / "02_training_memory_gpu.json").read_text())
    assert saved["metadata"]["git_commit"] == "1234"
    assert json.loads((destination / "04_lora_latency_gpu.json").read_text())["metadata"]["git_commit"] == "abc"
    assert course_gpu.collect(workspace, course_gpu.fingerprints(workspace), destination, True, "1") == []


def test_refuses_the_full_run_without_cuda(tmp_path):
    course_gpu = load_script()
    pytest.importorskip("torch")
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = run("--results", tmp_path, "--notebooks", notebook(tmp_path / "a.ipynb", "print(1)"))
    assert done.returncode == 2 and "no CUDA device" in done.stderr
    assert course_gpu.gpu_name("03_update_spectra_causal-large.json") == "03_update_spectra_causal-large_gpu.json"

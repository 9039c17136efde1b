"""minift.course.setup: seeding, mode, CPU threads, pick(), timer, and the results files."""

import importlib
import random

import numpy as np
import pytest
import torch

import minift
import minift.course

# the module: ``minift.course.setup`` itself is the function (the package re-exports it under that name)
course = importlib.import_module("minift.course.setup")


@pytest.fixture(autouse=True)
def restore_state(monkeypatch):
    """setup() changes global state (seeds, threads, the current env); undo it after each test."""
    threads = torch.get_num_threads()
    previous = course._current_env
    monkeypatch.delenv("MINIFT_MODE", raising=False)
    monkeypatch.delenv("MINIFT_THREADS", raising=False)
    yield
    torch.set_num_threads(threads)
    course._current_env = previous


def test_same_seed_gives_same_random_numbers(capsys):
    course.setup(seed=3)
    first = (torch.rand(5), np.random.rand(3), random.random())
    course.setup(seed=3)
    second = (torch.rand(5), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1]) and first[2] == second[2]
    course.setup(seed=4)
    assert not torch.equal(torch.rand(5), first[0])


def test_setup_prints_one_summary_line(capsys):
    env = course.setup(seed=7, mode="fast")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    for part in (f"minift {minift.__version__}", f"torch {torch.__version__}", "mode fast", "seed 7",
                 f"device {env.device.type}"):
        assert part in lines[0]


def test_setup_picks_the_default_device():
    env = course.setup()
    assert env.device == minift.default_device()
    assert env.has_gpu == (env.device.type == "cuda")


@pytest.mark.parametrize("bad_seed", [-1, 1.5, "0", True, 2**32])
def test_setup_rejects_bad_seeds(bad_seed):
    with pytest.raises(ValueError, match="seed"):
        course.setup(seed=bad_seed)


def test_mode_from_argument_environment_and_default(monkeypatch):
    assert course.parse_mode(None) == "full"
    monkeypatch.setenv("MINIFT_MODE", "fast")
    assert course.parse_mode(None) == "fast"
    assert course.parse_mode("full") == "full"          # the argument wins over the environment
    assert course.parse_mode(" FAST ") == "fast"
    monkeypatch.setenv("MINIFT_MODE", "")
    assert course.parse_mode(None) == "full"


def test_bad_mode_names_the_value_and_the_allowed_ones(monkeypatch):
    with pytest.raises(ValueError, match=r"'quick'.*fast.*full"):
        course.setup(mode="quick")
    monkeypatch.setenv("MINIFT_MODE", "turbo")
    with pytest.raises(ValueError, match=r"MINIFT_MODE='turbo'.*fast.*full"):
        course.setup()


def test_pick():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert course.CourseEnv(0, cpu, "fast").pick(fast=1, full=2, gpu=3) == 1
    assert course.CourseEnv(0, cuda, "fast").pick(fast=1, full=2, gpu=3) == 1
    assert course.CourseEnv(0, cpu, "full").pick(fast=1, full=2, gpu=3) == 2
    assert course.CourseEnv(0, cuda, "full").pick(fast=1, full=2, gpu=3) == 3
    assert course.CourseEnv(0, cuda, "full").pick(fast=1, full=2) == 2
    env = course.CourseEnv(0, cpu, "fast")
    assert env.is_fast and not env.has_gpu


def test_timer_measures_and_prints(capsys):
    with course.timer("sleep") as t:
        sum(range(10000))
    assert 0 <= t.seconds < 5
    out = capsys.readouterr().out
    assert out.startswith("sleep: ") and out.strip().endswith(" s")
    with course.timer() as quiet:
        pass
    assert capsys.readouterr().out == "" and quiet.seconds >= 0


def test_save_and_load_results_round_trip(tmp_path, capsys):
    course.setup(seed=5, mode="fast")
    data = {"accuracy": np.float32(0.5), "losses": torch.tensor([1.0, 0.5]), "ranks": np.arange(3),
            "name": "lora"}
    path = course.save_results("04_rank_sweep", data, root=tmp_path)
    assert path == tmp_path / "04_rank_sweep.json"
    loaded = course.load_results("04_rank_sweep", root=tmp_path)
    assert loaded["data"] == {"accuracy": 0.5, "losses": [1.0, 0.5], "ranks": [0, 1, 2], "name": "lora"}
    meta = loaded["metadata"]
    for key in ("device", "device_name", "date", "minift_version", "git_commit", "torch_version", "mode"):
        assert meta[key], key
    assert meta["mode"] == "fast" and meta["seed"] == 5
    assert meta["minift_version"] == minift.__version__ and meta["torch_version"] == torch.__version__
    assert meta["date"].endswith("+00:00")              # UTC, ISO 8601
    assert course.load_results("never_saved", root=tmp_path) is None
    assert [p.name for p in tmp_path.iterdir()] == ["04_rank_sweep.json"]      # no temp files left


def test_save_results_with_a_figure(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    course.save_results("curve", {"x": [0, 1]}, figure=figure, root=tmp_path)
    plt.close(figure)
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_git_commit_is_a_hash_or_unknown():
    commit = course.git_commit()
    assert commit == "unknown" or (len(commit) == 40 and int(commit, 16) >= 0)


def test_failed_save_leaves_no_partial_file(tmp_path):
    course.save_results("run", {"ok": 1}, root=tmp_path)
    before = (tmp_path / "run.json").read_text()
    with pytest.raises(TypeError, match="object"):
        course.save_results("run", {"bad": object()}, root=tmp_path)
    assert (tmp_path / "run.json").read_text() == before          # the old file is intact
    with pytest.raises(TypeError):
        course.save_results("new", {"bad": object()}, root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_atomic_write_cleans_up_when_writing_fails(tmp_path):
    def explode(stream):
        stream.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        course._atomic_write(tmp_path / "x.json", explode)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["", "  ", "a/b", "..", "a\\b", None, "../escape"])
def test_invalid_results_names(tmp_path, name):
    with pytest.raises(ValueError, match="name"):
        course.save_results(name, {"x": 1}, root=tmp_path)
    with pytest.raises(ValueError, match="name"):
        course.load_results(name, root=tmp_path)


def test_relative_root_is_the_course_checkout(tmp_path, monkeypatch):
    checkout = tmp_path / "course"
    (checkout / "minift").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    (checkout / "notebooks").mkdir()
    monkeypatch.chdir(checkout / "notebooks")          # notebooks run from notebooks/ ...
    assert course.results_dir("results") == checkout.resolve() / "results"   # ... results/ is at the top
    assert course.results_dir(tmp_path / "mine") == tmp_path / "mine"         # absolute roots are kept
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)                       # outside a checkout: relative to the current folder
    assert course.results_dir("results") == elsewhere.resolve() / "results"


# --- CPU threads: the one rule lives in setup ---------------------------------------------------------

def test_setup_uses_one_thread_on_cpu_and_says_so(capsys):
    torch.set_num_threads(2)
    env = course.setup(seed=0, device="cpu")
    assert torch.get_num_threads() == 1 and env.threads == 1
    assert "| 1 CPU thread |" in capsys.readouterr().out


def test_threads_from_the_argument_or_minift_threads(monkeypatch, capsys):
    env = course.setup(device="cpu", threads=2)
    assert torch.get_num_threads() == 2 and env.threads == 2
    assert "| 2 CPU threads |" in capsys.readouterr().out
    monkeypatch.setenv("MINIFT_THREADS", "3")
    assert course.setup(device="cpu").threads == 3 and torch.get_num_threads() == 3
    assert course.setup(device="cpu", threads=1).threads == 1         # the argument wins
    monkeypatch.setenv("MINIFT_THREADS", " ")                           # empty: the default again
    assert course.setup(device="cpu").threads == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_thread_argument_is_refused_before_anything_changes(bad):
    torch.set_num_threads(2)
    previous = course._current_env
    with pytest.raises(ValueError, match=rf"threads must be a positive integer.*{bad!r}"):
        course.setup(device="cpu", threads=bad)
    assert torch.get_num_threads() == 2 and course._current_env is previous


@pytest.mark.parametrize("bad", ["four", "0", "-2", "1.5"])
def test_bad_minift_threads_names_the_variable(monkeypatch, bad):
    monkeypatch.setenv("MINIFT_THREADS", bad)
    with pytest.raises(ValueError, match=rf"MINIFT_THREADS='{bad}'.*positive integer"):
        course.setup(device="cpu")


def test_accelerators_keep_several_threads_within_omp_limit(monkeypatch):
    """With a GPU doing the work the CPU only feeds it: a few threads, capped by OMP_NUM_THREADS."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cuda = torch.device("cuda")
    assert course.choose_threads(cuda) == min(course.available_cpus(), course.MAX_THREADS)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert course.choose_threads(cuda) == 1
    assert course.choose_threads("cpu") == 1
    assert course.choose_threads(cuda, threads=5) == 5


def test_run_metadata_records_the_thread_count(tmp_path):
    course.setup(seed=1, mode="fast", device="cpu", threads=2)
    assert course.run_metadata()["threads"] == 2


def test_the_package_exports_what_notebooks_call():
    for name in ("setup", "timer", "save_results", "load_results", "synchronize", "describe_device",
                 "cpu_name", "available_cpus", "choose_threads", "CourseEnv"):
        assert getattr(minift.course, name) is getattr(course, name), name
    assert callable(minift.course.setup) and minift.course.setup is course.setup

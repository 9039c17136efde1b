"""Time to learn: report_time() in every notebook's last cell, results/course_times.json, the README table.

Every test writes under tmp_path (a root argument or a chdir into a scratch checkout): the real results/
and README.md are only read (the notebooks' last cells), never written.
"""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

import minift.course

course = sys.modules["minift.course.setup"]      # the module (minift.course.setup is the function)
ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("course_times", ROOT / "benchmarks" / "course_times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fresh_env(monkeypatch):
    """No setup() has run: report_time() must refuse (and the module's state is restored afterwards)."""
    monkeypatch.setattr(course, "_current_env", None)


@pytest.fixture
def started(monkeypatch, capsys):
    """A fast-mode setup() on CPU, as a notebook's first cell makes it."""
    monkeypatch.setattr(course, "_current_env", None)
    env = course.setup(seed=0, mode="fast", device="cpu")
    capsys.readouterr()
    return env


def read(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def test_report_time_is_exported():
    assert minift.course.report_time is course.report_time
    assert "report_time" in minift.course.__all__


def test_setup_records_when_it_started(started):
    assert started.started_wall is not None and started.started_cpu is not None
    assert "started" not in repr(started)       # the summary a notebook may display is unchanged


def test_report_time_without_setup_says_what_to_do(fresh_env, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIFT_RECORD_TIMES", "1")
    with pytest.raises(RuntimeError, match=r"setup\(\).*has not run.*from the top"):
        course.report_time("04", root=tmp_path)
    assert not any(tmp_path.iterdir())


def test_report_time_prints_one_line_and_writes_nothing_without_the_variable(started, tmp_path, monkeypatch,
                                                                             capsys):
    monkeypatch.delenv("MINIFT_RECORD_TIMES", raising=False)
    monkeypatch.chdir(tmp_path)                 # a relative root would land here, not in the real results/
    record = course.report_time("04")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"Chapter 04 ran in \d+ s wall, \d+ s CPU since setup\(\) \(mode fast, cpu: .+, "
                        r"1 thread\)", lines[0]), lines[0]
    assert record["chapter"] == "04" and record["mode"] == "fast" and record["threads"] == 1
    assert record["wall_s"] >= 0 and record["cpu_s"] >= 0
    for key in ("date", "device_name", "git_commit", "minift_version"):
        assert record[key], key
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["0", "", "false"])
def test_variable_off_values_write_nothing(started, tmp_path, monkeypatch, value, capsys):
    monkeypatch.setenv("MINIFT_RECORD_TIMES", value)
    course.report_time("04", root=tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_strange_variable_value_is_refused(started, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIFT_RECORD_TIMES", "please")
    with pytest.raises(ValueError, match="MINIFT_RECORD_TIMES='please'"):
        course.report_time("04", root=tmp_path)


def test_with_the_variable_the_record_is_written_under_chapter_and_mode(started, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIFT_RECORD_TIMES", "1")
    record = course.report_time(4, root=tmp_path)           # 4 and "04" name the same chapter
    data = read(tmp_path / "course_times.json")
    assert list(data) == ["04"] and list(data["04"]) == ["fast"]
    assert data["04"]["fast"] == record
    assert [p.name for p in tmp_path.iterdir()] == ["course_times.json"]     # no temporary file left


def test_relative_root_is_the_checkout_not_the_notebook_folder(started, tmp_path, monkeypatch, capsys):
    checkout = tmp_path / "course"
    (checkout / "minift").mkdir(parents=True)
    (checkout / "notebooks").mkdir()
    (checkout / "pyproject.toml").write_text("")
    monkeypatch.chdir(checkout / "notebooks")             # where nbconvert runs a notebook
    monkeypatch.setenv("MINIFT_RECORD_TIMES", "1")
    course.report_time("00")
    assert (checkout / "results" / "course_times.json").is_file()


def test_merge_keeps_other_chapters_and_modes(started, tmp_path, monkeypatch, capsys):
    path = tmp_path / "course_times.json"
    before = {"03": {"full": {"wall_s": 200.0, "cpu_s": 190.0}},
              "04": {"full": {"wall_s": 250.0, "cpu_s": 240.0}, "fast": {"wall_s": 99.0, "cpu_s": 98.0}},
              "test_suite": {"wall_s": 500.0}}
    path.write_text(json.dumps(before))
    monkeypatch.setenv("MINIFT_RECORD_TIMES", "1")
    record = course.report_time("04", root=tmp_path)
    data = read(path)
    assert data["03"] == before["03"] and data["test_suite"] == before["test_suite"]
    assert data["04"]["full"] == before["04"]["full"]       # the other mode of the same chapter stays
    assert data["04"]["fast"] == record                      # the same mode is replaced


def test_gpu_runs_get_their_own_key(started, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(type(started), "has_gpu", property(lambda self: True))
    monkeypatch.setenv("MINIFT_RECORD_TIMES", "1")
    course.report_time("05", root=tmp_path)
    assert list(read(tmp_path / "course_times.json")["05"]) == ["fast_gpu"]
    assert "mode fast_gpu" in capsys.readouterr().out


def test_a_failing_write_leaves_the_old_file(started, tmp_path, monkeypatch, capsys):
    path = tmp_path / "course_times.json"
    old = '{"03": {"full": {"wall_s": 1.0, "cpu_s": 1.0}}}\n'
    path.write_text(old)
    monkeypatch.setenv("MINIFT_RECORD_TIMES", "1")

    def broken(_path, write):
        with course.atomic_path(_path) as temporary, open(temporary, "wb") as stream:
            stream.write(b'{"half": ')                      # a torn write ...
            raise OSError("disk full")                        # ... then the disk fails

    monkeypatch.setattr(course, "_atomic_write", broken)
    with pytest.raises(OSError, match="disk full"):
        course.report_time("04", root=tmp_path)
    assert path.read_text() == old
    assert [p.name for p in tmp_path.iterdir()] == ["course_times.json"]


def test_a_corrupt_file_is_refused_not_replaced(started, tmp_path, monkeypatch, capsys):
    path = tmp_path / "course_times.json"
    path.write_text("[1, 2")
    monkeypatch.setenv("MINIFT_RECORD_TIMES", "1")
    with pytest.raises(ValueError, match="not valid JSON"):
        course.report_time("04", root=tmp_path)
    assert path.read_text() == "[1, 2"


@pytest.mark.parametrize("bad", ["4a", "123", "", None, 1.5, True, "../04"])
def test_bad_chapter_names_the_expected_form(started, bad, tmp_path):
    with pytest.raises(ValueError, match=r"report_time\(\"04\"\)"):
        course.report_time(bad, root=tmp_path)


def test_concurrent_updates_all_survive(tmp_path):
    """Two writers at once: the folder lock serialises the read-modify-write cycles."""
    import threading

    path = tmp_path / "course_times.json"
    keys = [f"{i:02d}" for i in range(12)]
    threads = [threading.Thread(target=course.update_json_file,
                                args=(path, lambda data, k=k: data.__setitem__(k, {"fast": {"wall_s": 1}})))
               for k in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(read(path)) == keys


# --- the script and the README ---------------------------------------------------------------------

def notebooks_folder(tmp_path, names=("00_welcome", "01_sft", "04_lora")):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in names:
        (folder / f"{name}.ipynb").write_text("{}")
    return folder


def record(wall, cpu, date="2026-11-30T12:00:00+00:00", commit="0123456789abcdef", threads=1):
    return {"wall_s": wall, "cpu_s": cpu, "date": date, "git_commit": commit, "device_name": "Test CPU",
            "threads": threads}


def test_chapters_without_records_say_not_measured_yet(tmp_path):
    script = load_script()
    folder = notebooks_folder(tmp_path)
    section = script.readme_section({"04": {"fast": record(31.4, 29.0)}}, folder)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in section.splitlines() if line.startswith("| 0")}
    assert set(rows) == {"00 welcome", "01 sft", "04 lora"}
    assert rows["00 welcome"].count("not measured yet") == 2
    assert "| 31 s / 29 s | not measured yet |" in rows["04 lora"]
    assert "2026-11-30, 0123456" in rows["04 lora"] and "Test CPU, 1 thread" in rows["04 lora"]
    assert "Test suite (`make test`): not measured yet" in section
    assert "<= 5 min per chapter on 2 CPU cores" in section and "<= 10 min" in section
    assert "GPU" not in section.split("\n\n")[1]           # no GPU columns without GPU records


def test_budgets_and_the_test_suite_record_are_shown(tmp_path):
    script = load_script()
    folder = notebooks_folder(tmp_path)
    times = {"01": {"fast": record(95.0, 90.0), "full": record(312.0, 300.0, date="2026-12-01T00:00:00+00:00")},
             "test_suite": {**record(532.0, 900.0), "passed": True, "returncode": 0, "cpus": 2}}
    section = script.readme_section(times, folder)
    row = next(line for line in section.splitlines() if line.startswith("| 01 sft"))
    assert "95 s / 90 s (over 90 s)" in row and "312 s / 300 s (over 300 s)" in row
    assert "fast: 2026-11-30, 0123456; full: 2026-12-01, 0123456" in row
    assert "Test suite (`make test`): 532 s wall (8.9 min), 900 s CPU" in section and "passed" in section


def test_gpu_records_get_their_own_column(tmp_path):
    script = load_script()
    section = script.readme_section({"04": {"full_gpu": record(40.0, 38.0)}}, notebooks_folder(tmp_path))
    assert "full on GPU: wall / CPU" in section and "| 40 s / 38 s |" in section


def test_readme_rewrite_touches_only_the_marked_section_and_is_idempotent(tmp_path):
    script = load_script()
    readme = tmp_path / "README.md"
    before = "# minift\n\n## Speed\n\ntext\n\n### Time to learn, per chapter\n\n"
    after = "\n\n## The bridge\n\nmore text <!-- not a marker -->\n"
    readme.write_text(before + script.START + "\nold table\n" + script.END + after)
    section = script.readme_section({"00": {"fast": record(5.0, 4.0)}}, notebooks_folder(tmp_path))
    assert script.rewrite_readme(readme, section) is True
    text = readme.read_text()
    assert text.startswith(before) and text.endswith(script.END + after)
    assert "old table" not in text and section in text
    assert script.rewrite_readme(readme, section) is False
    assert readme.read_text() == text


@pytest.mark.parametrize("markers", ["", "<!-- course-times:start -->\n", "<!-- course-times:end -->\n"
                                     "<!-- course-times:start -->\n"])
def test_readme_without_one_pair_of_markers_is_refused(tmp_path, markers):
    script = load_script()
    readme = tmp_path / "README.md"
    readme.write_text("# minift\n" + markers)
    with pytest.raises(ValueError, match="course-times:start"):
        script.rewrite_readme(readme, "table")
    assert readme.read_text() == "# minift\n" + markers


def test_the_real_readme_has_the_section_under_speed():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    script = load_script()
    assert text.count(script.START) == 1 and text.count(script.END) == 1
    speed = text.index("\n## Speed\n")
    heading = text.index("### Time to learn, per chapter")
    next_section = text.index("\n## ", speed + 1)
    assert speed < heading < text.index(script.START) < text.index(script.END) < next_section


def test_script_main_prints_and_rewrites(tmp_path, capsys):
    script = load_script()
    times = tmp_path / "course_times.json"
    times.write_text(json.dumps({"00": {"fast": record(5.0, 4.0)}}))
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{script.START}\n{script.END}\ny\n")
    assert script.main(["--times", str(times), "--readme", str(readme),
                        "--notebooks", str(notebooks_folder(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "00 welcome" in out and "5.0 s / 4.0 s" in out and "section rewritten" in out
    assert "| 00 welcome | 5.0 s / 4.0 s | not measured yet |" in readme.read_text()


# --- the notebooks ---------------------------------------------------------------------------------

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_ends_by_reporting_its_own_time(notebook):
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    last, note = cells[-1], cells[-2]
    chapter = notebook.name[:2]
    assert last["cell_type"] == "code"
    source = "".join(last["source"]).strip()
    assert re.fullmatch(rf'minift\.course\.report_time\("{chapter}"\);?', source), source
    assert note["cell_type"] == "markdown" and "make course" in "".join(note["source"])
    assert sum("report_time(" in "".join(cell["source"]) for cell in cells) == 1
    ids = [cell.get("id") for cell in cells]
    assert None not in ids and len(set(ids)) == len(ids)


def test_the_course_target_records_times_in_both_modes():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ncourse: ", 1)[1].split("\n\n", 1)[0]
    assert "MINIFT_MODE=full MINIFT_RECORD_TIMES=1" in recipe
    assert "MINIFT_MODE=fast MINIFT_RECORD_TIMES=1" in recipe and "--output-dir" in recipe
    assert recipe.count("$(NOTEBOOKS)") == 2                  # NOTEBOOKS=... narrows both passes
    assert "benchmarks/course_times.py --readme" in recipe
    test_recipe = makefile.split("\ntest: ", 1)[1].split("\n\n", 1)[0]
    assert "MINIFT_RECORD_TIMES" not in test_recipe           # the test suite never writes results/

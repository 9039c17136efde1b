"""The two wings: ``import minift`` loads the library core only, the core never imports the course wing,
and the course wing's checkers sit in one file per chapter."""

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "minift"

# old names kept as aliases for this release (each is a tiny module that points at the course wing)
ALIASES = {
    "minift.quiz": "minift.course.quiz",
    "minift.checks": "minift.course.checks",
    "minift.checks_lora": "minift.course.checks.ch04_lora",
    "minift.checks_lowrank": "minift.course.checks.ch03_lowrank",
    "minift.viz": "minift.course.viz",
    "minift.exercises": "minift.course.exercises",
    "minift.widgets.params_explorer": "minift.course.widgets.params_explorer",
    "minift.widgets.rank_explorer": "minift.course.widgets.rank_explorer",
}
COURSE_MODULES = ("minift.course", "minift.widgets", *ALIASES)
HEAVY_OPTIONAL = ("ipywidgets", "matplotlib", "transformers", "nbformat")


def run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and return the JSON it prints last."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def is_course_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in COURSE_MODULES)


def test_import_minift_loads_the_core_only():
    result = run_python(
        "import json, sys\n"
        "import minift\n"
        "print(json.dumps(sorted(sys.modules)))\n")
    course = [name for name in result if is_course_module(name)]
    assert course == [], f"import minift loaded the course wing: {course}"
    heavy = [name for name in result if name.split(".")[0] in HEAVY_OPTIONAL]
    assert heavy == [], f"import minift loaded {sorted({n.split('.')[0] for n in heavy})}"
    assert "minift.interop" not in result                 # the bridge to transformers loads on first use


def test_lazy_attributes_interop_course_and_quiz():
    result = run_python(
        "import json, sys\n"
        "import minift\n"
        "before = 'minift.interop' in sys.modules\n"
        "ok = callable(minift.interop.from_hf_gpt2) and callable(minift.course.setup) "
        "and callable(minift.quiz.check)\n"
        "print(json.dumps({'before': before, 'ok': ok, 'after': 'minift.interop' in sys.modules,\n"
        "                  'transformers': 'transformers' in sys.modules}))\n")
    assert result == {"before": False, "ok": True, "after": True, "transformers": False}


def test_import_minift_course_loads_setup_only_and_the_rest_on_use():
    result = run_python(
        "import json, sys\n"
        "import minift.course\n"
        "before = sorted(m for m in sys.modules if m.startswith('minift.course.') or m in\n"
        "                ('matplotlib', 'ipywidgets', 'nbformat'))\n"
        "ok = callable(minift.course.quiz.check) and callable(minift.course.checks.check_accuracy)\n"
        "print(json.dumps({'before': before, 'ok': ok}))\n")
    assert result == {"before": ["minift.course.setup"], "ok": True}


def core_files():
    """Every .py file of the library core: not the course wing and not the old names' aliases."""
    aliases = {PACKAGE.parent / (name.replace(".", "/") + ".py") for name in ALIASES}
    for path in sorted(PACKAGE.rglob("*.py")):
        if PACKAGE / "course" in path.parents or PACKAGE / "widgets" in path.parents or path in aliases:
            continue
        yield path


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, at any depth (also inside functions)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)   # from minift import quiz
    return names


def test_core_files_exist_and_the_check_sees_relative_imports():
    files = list(core_files())
    assert PACKAGE / "model.py" in files and PACKAGE / "__init__.py" in files
    assert not any("course" in path.parts for path in files)
    assert "minift.config" in imported_modules(PACKAGE / "model.py") | imported_modules(PACKAGE / "heads.py")


@pytest.mark.parametrize("path", list(core_files()), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_never_imports_the_course_wing(path):
    """Also imports inside functions, which importing the package alone would not reveal."""
    course = sorted(name for name in imported_modules(path) if is_course_module(name))
    assert course == [], f"{path.relative_to(ROOT)} imports the course wing: {course}"


# --- the course wing: one checker file per chapter ---------------------------------------------------

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", SOLUTIONS, ids=lambda p: p.name)
def test_each_chapter_checker_lives_in_its_chapter_file(notebook):
    """solutions/NN_name.ipynb calls checkers of minift/course/checks/chNN_name.py."""
    module = importlib.import_module(f"minift.course.checks.ch{notebook.stem}")
    called = set(re.findall(r"checks\.(check_\w+)", notebook.read_text(encoding="utf-8")))
    assert called, f"{notebook.name} calls no checker"
    for name in sorted(called):
        checker = getattr(module, name, None)
        assert checker is not None and checker.__module__ == module.__name__, \
            f"{name} (called in {notebook.name}) is not defined in {module.__name__}"


def test_every_chapter_file_is_gathered_by_the_checks_package():
    from minift.course import checks

    files = sorted(path.stem for path in (PACKAGE / "course" / "checks").glob("ch*.py"))
    assert files == [module.__name__.rsplit(".", 1)[1] for module in checks.CHAPTERS.values()]
    assert list(checks.CHAPTERS) == sorted(checks.CHAPTERS) and "01" in checks.CHAPTERS
    for module in checks.CHAPTERS.values():
        for name in module.__all__:
            assert getattr(checks, name) is getattr(module, name), name


def test_two_chapters_exporting_one_name_is_an_error(monkeypatch):
    """Otherwise ``from minift import checks`` would silently give one chapter's checker for both."""
    from types import SimpleNamespace

    from minift.course import checks

    one = SimpleNamespace(__name__="ch90_one", __all__=["check_same"], check_same=lambda: 1)
    two = SimpleNamespace(__name__="ch91_two", __all__=["check_same"], check_same=lambda: 2)
    monkeypatch.setattr(checks, "CHAPTERS", {"90": one, "91": two})
    monkeypatch.setitem(vars(checks), "check_same", None)      # _gather writes here; undone afterwards
    with pytest.raises(ImportError, match="'check_same' is exported by both ch90_one and ch91_two"):
        checks._gather()

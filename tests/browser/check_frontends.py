"""Check the course's widgets in a real browser: JupyterLab and classic Notebook 7, 1024x768 and 1440x900.

    .venv/bin/python tests/browser/check_frontends.py --out /tmp/shots
    .venv/bin/python tests/browser/check_frontends.py --out /tmp/shots --frontends notebook --notebooks 02 03

Not a pytest file (no test_ prefix): it needs a browser and takes about 15-25 minutes on 2 CPU cores.
It needs Chromium and Playwright's Python package, without Playwright's own browser download:

    apt-get install -y chromium fonts-noto-color-emoji fonts-noto-cjk   # emoji feedback, chapter 09 in Chinese
    .venv/bin/pip install playwright            # do not run `playwright install`; --chromium PATH if elsewhere

Each front end runs on its own local server (random port and token) on copies of notebooks/*.ipynb in
OUT/work/<front end>/notebooks (next to copies of results/, benchmarks/ and docs/, which chapters 08-10
read), with MINIFT_MODE=fast, and is driven by headless Chromium:

  lab            JupyterLab
  notebook       classic Notebook 7
  lab-keys       JupyterLab and Notebook 7 with minift.course.widgets.keyboard's shortcut override
  notebook-keys  (the documented workaround for arrow keys on widgets), chapters 02-03, keys only

For each course notebook 00-09 it restarts the kernel and runs every cell (the Kernel menu's "Restart
Kernel and Run All Cells") at 1024x768, saves, and fails on any error output or widget that did not
render; then, at 1024x768 and again at 1440x900:

  quizzes   every question drawn; radio buttons and checkboxes BEFORE their text and on its first line;
            long labels wrap inside the quiz (no overflow, no overlap); a radio, a checkbox and a numeric
            question answered and submitted, feedback shown
  02        the explorer for every preset: the tables fit the notebook (no clipped column, no scroll
            bar needed), a figure is drawn; values typed into a slider's read-out: impossible (heads=7
            for d=768: the figure must give way to a message, never stay stale), negative, zero, text
  03        the rank slider reaches 64 with at least MIN_PX_PER_RANK pixels per rank, and the mouse can
            drag it to every value 0..64; summary and figure at ranks 1, 32, 64
  07        the probe explorer redraws when the feature changes
  keys      (02, 03) a clicked slider handle: each arrow key moves it by one step, the focus stays on
            it, the notebook's active cell does not change; a focused dropdown and a quiz's radio
            buttons: ArrowDown chooses the next option; arrow keys still move between cells when a
            cell has the focus

Screenshots go to OUT/<front end>/, every result to OUT/results.json, and a pass/fail table is printed;
the exit status is 1 if a check failed. Look at the screenshots (the pie labels, the tables' legibility,
the figures): the DOM measurements only guard what they show.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
VIEWPORTS = {"1024x768": {"width": 1024, "height": 768}, "1440x900": {"width": 1440, "height": 900}}
FRONTENDS = ("lab", "notebook", "lab-keys", "notebook-keys")
SLIDER_CHAPTERS = ("02", "03")
MIN_PX_PER_RANK = 6          # the rank slider's track must give each rank this many pixels
RUN_TIMEOUT_S = 900          # one notebook's Restart Kernel and Run All Cells (fast mode)
# headless Chromium that calls no Google host (no network here, and none wanted)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PANEL = ".jp-NotebookPanel:visible"          # the open notebook (same DOM in Lab and Notebook 7)


# --------------------------------------------------------------------------------------------------
# Results

@dataclass
class Results:
    rows: list = field(default_factory=list)

    def add(self, frontend, viewport, notebook, check, ok, detail="") -> bool:
        ok = bool(ok)
        self.rows.append({"frontend": frontend, "viewport": viewport, "notebook": notebook, "check": check,
                          "ok": ok, "detail": str(detail)})
        print(f"  {'PASS' if ok else 'FAIL'}  {frontend:<13} {viewport:<9} {notebook:<3} {check}: {detail}",
              flush=True)
        return ok

    def table(self) -> str:
        lines = [f"{'result':<6} {'front end':<13} {'viewport':<9} {'nb':<3} {'check':<40} detail"]
        for r in self.rows:
            lines.append(f"{'PASS' if r['ok'] else 'FAIL':<6} {r['frontend']:<13} {r['viewport']:<9} "
                         f"{r['notebook']:<3} {r['check'][:40]:<40} {r['detail'][:100]}")
        failed = sum(not r["ok"] for r in self.rows)
        lines.append(f"{len(self.rows) - failed} passed, {failed} failed")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``jupyter lab`` or ``jupyter notebook`` (Notebook 7) on localhost, on copies of the notebooks,
    with its own settings folder (no news toast; the shortcut override for notebook-keys)."""

    def __init__(self, frontend: str, work: Path):
        self.frontend, self.work = frontend, work
        self.app = "jupyterlab" if frontend.startswith("lab") else "notebook"
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.checkout = work / frontend
        self.root = self.checkout / "notebooks"
        self.process = None

    def make_checkout(self) -> None:
        """A copy of the checkout's parts the notebooks read: the notebooks find results/ and
        benchmarks/ through the folder above them that holds pyproject.toml and minift/ (the package
        itself is imported from the virtual environment's editable install; minift/ is a link)."""
        shutil.rmtree(self.checkout, ignore_errors=True)
        self.root.mkdir(parents=True)
        for notebook in NOTEBOOKS:
            shutil.copy(notebook, self.root / notebook.name)
        shutil.copy(ROOT / "pyproject.toml", self.checkout / "pyproject.toml")
        for folder in ("benchmarks", "results", "docs"):
            if (ROOT / folder).is_dir():
                shutil.copytree(ROOT / folder, self.checkout / folder)
        (self.checkout / "minift").symlink_to(ROOT / "minift", target_is_directory=True)

    def __enter__(self):
        self.make_checkout()
        settings = self.work / f"{self.frontend}-settings"
        shutil.rmtree(settings, ignore_errors=True)
        files = {Path("@jupyterlab/apputils-extension/notification.jupyterlab-settings"):
                 {"fetchNews": "false", "checkForUpdates": False}}
        if self.frontend.endswith("-keys"):
            from minift.course.widgets import keyboard
            files[keyboard.SETTINGS_FILE] = keyboard.shortcut_overrides()
        for name, content in files.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(content, indent=1))
        env = dict(os.environ, MINIFT_MODE="fast", JUPYTERLAB_SETTINGS_DIR=str(settings),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.work / f"{self.frontend}-workspaces"))
        env.pop("MPLBACKEND", None)
        command = [sys.executable, "-m", self.app, "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
                   f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")
        self.log = open(self.work / f"{self.frontend}-server.log", "w")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                self.api("status")
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.app} exited; see {self.log.name}")
                time.sleep(1)
        raise RuntimeError(f"{self.app} did not start in 90 s; see {self.log.name}")

    def __exit__(self, *_):
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.base}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def url(self, notebook: str) -> str:
        if self.app == "jupyterlab":        # ?reset: a fresh workspace, only this notebook open
            return f"{self.base}/lab/tree/{notebook}?reset&token={self.token}"
        return f"{self.base}/notebooks/{notebook}?token={self.token}"

    def kernel_state(self, notebook: str) -> str | None:
        for session in self.api("sessions"):
            if session["path"] == notebook:
                return session["kernel"]["execution_state"]
        return None

    def shut_down_kernels(self) -> None:
        for session in self.api("sessions"):
            self.api(f"sessions/{session['id']}", method="DELETE")

    def version(self) -> str:
        return subprocess.run([sys.executable, "-c", f"import {self.app}; print({self.app}.__version__)"],
                              capture_output=True, text=True).stdout.strip()


# --------------------------------------------------------------------------------------------------
# Page helpers

def wait_for(predicate, timeout: float, interval: float = 0.25, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def open_notebook(page, server: Server, notebook: str) -> None:
    page.goto(server.url(notebook))
    page.wait_for_selector(f"{PANEL} .jp-Notebook", timeout=120_000)
    wait_for(lambda: server.kernel_state(notebook) == "idle", 120, 0.5, "the kernel to start")


def restart_and_run_all(page, server: Server, notebook: str) -> float:
    """The Kernel menu's Restart Kernel and Run All Cells; returns the seconds it took."""
    start = time.time()
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel and Run All Cells").first.click()
    page.locator(".jp-Dialog-button.jp-mod-accept").click()
    prompts = page.locator(f"{PANEL} .jp-CodeCell .jp-InputPrompt")

    def finished():
        texts = prompts.all_text_contents()     # textContent: cells hidden by windowing count too
        return texts and not any("*" in t for t in texts) and server.kernel_state(notebook) == "idle"

    time.sleep(2)
    wait_for(lambda: finished() and (time.sleep(1.5) or finished()), RUN_TIMEOUT_S, 1, "Run All to finish")
    return time.time() - start


def save_and_read(page, server: Server, notebook: str) -> dict:
    path = server.root / notebook
    before = path.stat().st_mtime
    page.keyboard.press("Control+s")
    wait_for(lambda: path.stat().st_mtime > before, 30, 0.25, "the notebook to be saved")
    time.sleep(0.5)
    return json.loads(path.read_text())


def output_problems(nb: dict) -> tuple[list, list]:
    """(errors, stderr) of a saved notebook: error outputs, and stderr that mentions an error."""
    errors, stderr = [], []
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(f"cell {index}: {output.get('ename')}: {output.get('evalue', '')[:120]}")
            elif output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = "".join(output.get("text", ""))
                if re.search(r"Traceback|Error|Exception", text):
                    stderr.append(f"cell {index}: {text.strip()[:160]}")
    return errors, stderr


def widget_problems(page) -> list:
    text = page.locator(PANEL).first.inner_text()
    return [p for p in ("Error displaying widget", "Error rendering", "Model not found", "Loading widget...")
            if p in text]


def ensure_visible(locator) -> dict:
    """Scroll ``locator`` into the window and return its box; retried, because the notebook may still
    scroll itself (to the active cell) just after Run All finishes."""
    viewport = locator.page.viewport_size
    for _ in range(20):
        # the top of a widget taller than the window at the window's top, others in the middle
        locator.evaluate("(e, h) => e.scrollIntoView({block: e.getBoundingClientRect().height > h - 100 ? "
                         "'start' : 'center'})", viewport["height"])
        time.sleep(0.2)
        box = locator.bounding_box()
        if box and box["y"] >= -1 and box["y"] + min(box["height"], 50) <= viewport["height"]:
            return box
    raise TimeoutError("could not scroll the widget into the window")


def shot(locator, path: Path) -> str:
    """A screenshot of one widget. One taller than the window is taken in a window made taller for the
    moment (same width, so the same layout): the notebook scrolls inside the page, so a plain element
    screenshot would show the page around the window instead of the widget's lower part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page = locator.page
    viewport = page.viewport_size
    height = locator.bounding_box()["height"]
    if height > viewport["height"] - 150:
        page.set_viewport_size({"width": viewport["width"], "height": int(height) + 300})
        time.sleep(0.5)
    ensure_visible(locator)
    time.sleep(0.3)
    locator.screenshot(path=str(path))
    if page.viewport_size != viewport:
        page.set_viewport_size(viewport)
        time.sleep(0.5)
    return str(path)


def active_cell_index(page) -> int:
    return page.evaluate("""() => {
        const cells = Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell'));
        return cells.findIndex(c => c.classList.contains('jp-mod-active'));
    }""")


def focused_class(page) -> str:
    return page.evaluate("() => document.activeElement ? String(document.activeElement.className) : ''")


# --------------------------------------------------------------------------------------------------
# Quizzes

LABEL_GEOMETRY_JS = """(quiz) => {
    const box = quiz.getBoundingClientRect();
    const rows = [];
    for (const label of quiz.querySelectorAll('.widget-radio-box label, .widget-checkbox label')) {
        const input = label.querySelector('input');
        if (!input) continue;                   // a checkbox's (hidden) description label
        const walker = document.createTreeWalker(label, NodeFilter.SHOW_TEXT);
        let first = null, last = null;
        while (walker.nextNode()) {
            if (walker.currentNode.textContent.trim()) { first = first || walker.currentNode; last = walker.currentNode; }
        }
        const range = document.createRange();
        range.setStart(first, 0); range.setEnd(last, last.textContent.length);
        const lines = Array.from(range.getClientRects());
        const text = range.getBoundingClientRect(), i = input.getBoundingClientRect(), l = label.getBoundingClientRect();
        rows.push({text: label.textContent.trim().slice(0, 50), kind: input.type, inputRight: i.right,
                   inputMiddle: (i.top + i.bottom) / 2, firstLineMiddle: (lines[0].top + lines[0].bottom) / 2,
                   textLeft: text.left, textRight: text.right, labelTop: l.top, labelBottom: l.bottom,
                   labelRight: l.right, lines: new Set(lines.map(r => Math.round(r.top))).size,
                   quizRight: box.right});
    }
    return rows;
}"""


def check_labels(rows: list) -> tuple[list, float]:
    """Problems: a box after its text or off its first line, text running out of its label or the quiz,
    labels overlapping. Also returns the largest box-to-first-line offset (px)."""
    problems, offset = [], 0.0
    for r in rows:
        off = r["inputMiddle"] - r["firstLineMiddle"]
        offset = max(offset, abs(off))
        if r["inputRight"] > r["textLeft"] + 1:
            problems.append(f"box after text: {r['text']!r}")
        if abs(off) > 4:
            problems.append(f"box {off:+.0f} px off the first line: {r['text']!r}")
        if r["textRight"] > min(r["quizRight"], r["labelRight"]) + 1:
            problems.append(f"text runs out (clipped or overflowing): {r['text']!r}")
    for a, b in zip(rows, rows[1:]):
        if a["labelTop"] < b["labelTop"] < a["labelBottom"] - 1:
            problems.append(f"labels overlap: {a['text']!r} / {b['text']!r}")
    return problems, offset


def check_quizzes(page, results: Results, fe: str, vp: str, nb: str, out: Path) -> None:
    from minift.course import quiz as quiz_module

    quizzes = page.locator(f"{PANEL} .minift-quiz")
    expected = len(quiz_module.load_bank(nb)) * (2 if nb == "09" else 1)      # 09: English, then Chinese
    results.add(fe, vp, nb, "quiz: every question drawn", quizzes.count() == expected,
                f"{quizzes.count()} of {expected}")
    rows, problems, offset, most_lines = [], [], 0.0, (0, None)
    for i in range(quizzes.count()):
        quiz = quizzes.nth(i)
        ensure_visible(quiz)                          # measured on screen, one question at a time
        these = quiz.evaluate(LABEL_GEOMETRY_JS)
        rows += these
        these_problems, these_offset = check_labels(these)
        problems += [f"Q{i + 1} {p}" for p in these_problems]
        offset = max(offset, these_offset)
        if these_problems:
            shot(quiz, out / f"{nb}_quiz_Q{i + 1}_problem_{vp}.png")
        lines = max((r["lines"] for r in these), default=0)
        if lines > most_lines[0]:
            most_lines = (lines, i)
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("radio", "checkbox")}
    wrapped = sum(r["lines"] > 1 for r in rows)
    results.add(fe, vp, nb, "quiz: boxes before text, labels wrap", not problems,
                "; ".join(problems[:3]) or f"{kinds['radio']} radio + {kinds['checkbox']} checkbox labels; "
                f"{wrapped} wrapped (up to {most_lines[0]} lines); box centred on line 1 within {offset:.1f} px")

    def first_with(selector, start=0):
        for i in range(start, quizzes.count()):
            if quizzes.nth(i).locator(selector).count():
                return i
        return None

    radio, box, numeric = (first_with(".widget-radio-box"), first_with(".widget-checkbox"),
                           first_with("input[type=number]"))
    for name, index in (("radio", radio), ("checkbox", box), ("longest", most_lines[1]),
                        ("zh", expected // 2 if nb == "09" else None)):
        if index is not None:
            shot(quizzes.nth(index), out / f"{nb}_quiz_{name}_{vp}.png")
    for kind, index in (("radio", radio), ("checkbox", box), ("numeric", numeric)):
        if index is None:
            continue
        q = quizzes.nth(index)
        ensure_visible(q)
        if kind == "radio":
            q.locator(".widget-radio-box input").nth(1).check()
        elif kind == "checkbox":
            q.locator(".widget-checkbox input").nth(0).set_checked(True)
            q.locator(".widget-checkbox input").nth(1).set_checked(True)
        else:
            q.locator("input[type=number]").fill("1")
            q.locator("input[type=number]").press("Tab")
        q.locator("button", has_text="Submit").click()
        feedback = q.locator(".widget-html-content").last
        try:
            text = wait_for(lambda: feedback.inner_text().strip(), 20, 0.25, "quiz feedback")
            results.add(fe, vp, nb, f"quiz: {kind} answer -> feedback", "✅" in text or "❌" in text,
                        text.splitlines()[0][:90])
        except TimeoutError as error:
            results.add(fe, vp, nb, f"quiz: {kind} answer -> feedback", False, error)
        shot(q, out / f"{nb}_quiz_{kind}_feedback_{vp}.png")


# --------------------------------------------------------------------------------------------------
# Sliders and keys

def slider_value(slider) -> float:
    return float(slider.locator(".noUi-handle").get_attribute("aria-valuenow"))


def drag_to(slider, value: float, low: float, high: float) -> None:
    """Drag the handle with the mouse to where ``value`` sits on the track, as a student would."""
    base, handle = slider.locator(".noUi-base"), slider.locator(".noUi-handle")
    track, grip = ensure_visible(base), handle.bounding_box()
    mouse = base.page.mouse
    mouse.move(grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2)
    mouse.down()
    mouse.move(track["x"] + (value - low) / (high - low) * track["width"], grip["y"] + grip["height"] / 2,
               steps=4)
    mouse.up()


def recover(page) -> None:
    """After arrow keys went to the notebook (Notebook 7): back to command mode, every heading expanded."""
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+ArrowRight")          # notebook:expand-all-headings
    time.sleep(0.5)


def check_slider_keys(page, slider, results, fe, vp, nb, name) -> None:
    """Click the handle; ArrowRight/Up must add one step and ArrowLeft/Down take one off, the focus must
    stay on the handle and the active cell must not change (both front ends bind the arrows to cells)."""
    handle = slider.locator(".noUi-handle")
    ensure_visible(slider)
    handle.click()
    cell = active_cell_index(page)
    keys = [("ArrowRight", 1), ("ArrowLeft", -1), ("ArrowUp", 1), ("ArrowDown", -1)]
    if slider_value(slider) >= float(handle.get_attribute("aria-valuemax")):
        keys = [keys[1], keys[0], keys[3], keys[2]]           # at the top: down first, then back up
    moves, problems = [], []
    for key, sign in keys:
        before = slider_value(slider)
        page.keyboard.press(key)
        time.sleep(0.3)
        after, focus, now = slider_value(slider), focused_class(page), active_cell_index(page)
        moves.append(f"{key} {before:g}->{after:g}")
        if (after - before) * sign <= 0:
            problems.append(f"{key}: slider stayed at {before:g}")
        if "noUi-handle" not in focus:
            problems.append(f"{key}: focus went to {focus.split()[-1] if focus else 'nothing'}")
        if now != cell:
            problems.append(f"{key}: active cell {cell}->{now}")
        if problems:
            break                       # the notebook has the keys now; the next ones would only add noise
    results.add(fe, vp, nb, f"keys: slider '{name}'", not problems, "; ".join(problems) or ", ".join(moves))
    if problems:
        recover(page)


def check_dropdown_keys(page, select, results, fe, vp, nb, name) -> None:
    ensure_visible(select)
    select.focus()
    cell, before = active_cell_index(page), select.evaluate("e => e.selectedIndex")
    page.keyboard.press("ArrowDown")
    time.sleep(0.5)
    after, focus, now = select.evaluate("e => e.selectedIndex"), focused_class(page), active_cell_index(page)
    ok = after == before + 1 and now == cell and page.evaluate("() => document.activeElement.tagName") == "SELECT"
    results.add(fe, vp, nb, f"keys: dropdown '{name}'", ok,
                f"ArrowDown: option {before}->{after}, active cell {cell}->{now}, focus on "
                f"{page.evaluate('() => document.activeElement.tagName').lower()} {focus.split()[-1] if focus else ''}")
    if ok:
        page.keyboard.press("ArrowUp")
        time.sleep(2)
    else:
        recover(page)


def check_radio_keys(page, results, fe, vp, nb) -> None:
    """A quiz's radio buttons: after a click on the first option, ArrowDown must choose the second."""
    quiz = page.locator(f"{PANEL} .minift-quiz", has=page.locator(".widget-radio-box")).first
    radios = quiz.locator(".widget-radio-box input")
    ensure_visible(quiz)
    radios.nth(0).check()
    cell = active_cell_index(page)
    page.keyboard.press("ArrowDown")
    time.sleep(0.3)
    chosen = [radios.nth(i).is_checked() for i in range(radios.count())]
    now, focus = active_cell_index(page), page.evaluate("() => document.activeElement.type || ''")
    ok = chosen.index(True) == 1 if True in chosen else False
    results.add(fe, vp, nb, "keys: quiz radio buttons", ok and now == cell and focus == "radio",
                f"ArrowDown: option 0->{chosen.index(True) if True in chosen else None}, active cell "
                f"{cell}->{now}, focus on {focus or 'a cell'}")
    if not (ok and now == cell):
        recover(page)


def check_cell_keys(page, results, fe, vp, nb) -> None:
    """Arrow keys must still move between cells when a cell (not a widget) has the focus."""
    cell = page.locator(f"{PANEL} .jp-MarkdownCell").nth(1)
    ensure_visible(cell)
    cell.click()
    page.keyboard.press("Escape")
    start = active_cell_index(page)
    page.keyboard.press("ArrowDown")
    time.sleep(0.3)
    down = active_cell_index(page)
    page.keyboard.press("ArrowUp")
    time.sleep(0.3)
    up = active_cell_index(page)
    results.add(fe, vp, nb, "keys: arrows still move between cells", down == start + 1 and up == start,
                f"ArrowDown {start}->{down}, ArrowUp {down}->{up}")


def check_keys(page, results, fe, vp, nb) -> None:
    if nb == "02":
        box = page.locator(f"{PANEL} .minift-params-explorer").first
        for label in ("layers", "d (width)"):
            slider = box.locator(".widget-slider", has=page.locator("label", has_text=label)).first
            check_slider_keys(page, slider, results, fe, vp, nb, f"explorer {label}")
        check_dropdown_keys(page, box.locator("select").first, results, fe, vp, nb, "explorer preset")
    if nb == "03":
        slider = page.locator(f"{PANEL} .minift-rank-explorer .widget-slider").first
        check_slider_keys(page, slider, results, fe, vp, nb, "rank r")
    check_radio_keys(page, results, fe, vp, nb)
    check_cell_keys(page, results, fe, vp, nb)


# --------------------------------------------------------------------------------------------------
# Chapter 02: the parameters and memory explorer

TABLE_JS = """(box) => {
    const html = box.querySelector('.widget-html-content');
    const cell = box.closest('.jp-Cell').getBoundingClientRect();
    const out = {cellRight: cell.right, tables: [], clippedCells: 0};
    const scroller = html.querySelector('div[style*="overflow-x"]');
    out.scrollNeeded = !!scroller && scroller.scrollWidth > scroller.clientWidth + 1;
    for (const t of html.querySelectorAll('table')) {
        const r = t.getBoundingClientRect();
        out.tables.push({right: r.right, columns: t.rows[0].cells.length});
    }
    for (const c of html.querySelectorAll('td, th')) { if (c.scrollWidth > c.clientWidth + 1) out.clippedCells++; }
    out.text = html.innerText.slice(0, 300);
    return out;
}"""


def plot_src(box) -> str | None:
    image = box.locator(".widget-output img")
    return image.first.get_attribute("src") if image.count() else None


def set_readout(slider, text: str) -> None:
    """Type ``text`` into a slider's read-out (the number at its right) and press Enter."""
    readout = slider.locator(".widget-readout")
    ensure_visible(readout)
    readout.click()
    readout.press("Control+a")
    readout.type(text)
    readout.press("Enter")


def check_params_explorer(page, results, fe, vp, nb, out: Path) -> None:
    from minift.course.widgets import params_explorer as pe

    box = page.locator(f"{PANEL} .minift-params-explorer").first
    if not results.add(fe, vp, nb, "explorer: drawn", box.count() == 1, f"{box.count()} explorer(s)"):
        return
    preset = box.locator("select").first
    for name in pe.PRESETS:
        before = plot_src(box)
        if preset.evaluate("e => e.options[e.selectedIndex].text").replace("\xa0", " ") != name:
            preset.select_option(label=name)
            try:
                wait_for(lambda: plot_src(box) and plot_src(box) != before, 60, 0.25, "the new figure")
            except TimeoutError as error:
                results.add(fe, vp, nb, f"explorer: preset {name}", False, error)
                continue
        time.sleep(0.5)
        t = box.evaluate(TABLE_JS)
        widest = max(table["right"] for table in t["tables"])
        results.add(fe, vp, nb, f"explorer: tables fit, {name}",
                    not t["scrollNeeded"] and widest <= t["cellRight"] + 1 and t["clippedCells"] == 0,
                    f"widest table ends at {widest:.0f} px, the cell at {t['cellRight']:.0f} px; scroll bar "
                    f"{'needed' if t['scrollNeeded'] else 'not needed'}; {t['clippedCells']} clipped cells")
        slug = re.sub(r"[^A-Za-z0-9.-]+", "_", name)
        shot(box, out / f"02_explorer_{slug}_{vp}.png")
        shot(box.locator(".widget-output").first, out / f"02_explorer_figure_{slug}_{vp}.png")
    # typed values: the slider refuses them, or Python does and the figure gives way to a message
    preset.select_option(label="GPT-2 small")
    wait_for(lambda: "d=768" in box.evaluate(TABLE_JS)["text"] and plot_src(box), 60, 0.25, "GPT-2 small")
    heads = box.locator(".widget-slider", has=page.locator("label", has_text=re.compile(r"^heads$")))
    for typed in ("7", "-5", "0", "abc"):
        set_readout(heads, typed)
        time.sleep(2.0)
        value, state, figure = slider_value(heads), box.evaluate(TABLE_JS), plot_src(box) is not None
        if "Cannot compute" in state["text"]:
            ok, what = not figure, f"message shown, figure {'STILL SHOWN' if figure else 'removed'}: " \
                                   f"{state['text'].strip()[:80]}"
        else:
            ok = figure and value >= 1 and 768 % value == 0
            what = f"slider refused it (now {value:g}); table and figure for heads={value:g}"
        results.add(fe, vp, nb, f"explorer: heads typed {typed!r}", ok, what)
        shot(box, out / f"02_explorer_typed_{typed.replace('-', 'minus')}_{vp}.png")
        set_readout(heads, "12")
        wait_for(lambda: plot_src(box), 60, 0.25, "the figure to come back")


# --------------------------------------------------------------------------------------------------
# Chapter 03: the rank slider; chapter 07: the probe explorer

def check_rank_explorer(page, results, fe, vp, nb, out: Path) -> None:
    box = page.locator(f"{PANEL} .minift-rank-explorer").first
    if not results.add(fe, vp, nb, "rank explorer: drawn", box.count() == 1, f"{box.count()} explorer(s)"):
        return
    slider = box.locator(".widget-slider").first
    handle = slider.locator(".noUi-handle")
    low, high = float(handle.get_attribute("aria-valuemin")), float(handle.get_attribute("aria-valuemax"))
    track = ensure_visible(slider.locator(".noUi-base"))["width"]
    results.add(fe, vp, nb, "rank slider: reaches 64, wide enough",
                high == 64 and track / (high - low) >= MIN_PX_PER_RANK,
                f"range {low:g}..{high:g}, track {track:.0f} px = {track / (high - low):.1f} px per rank")
    summary = box.locator(".widget-html-content").first
    missed = []
    for rank in list(range(int(low), int(high) + 1)) + list(range(int(high) - 1, int(low) - 1, -7)):
        drag_to(slider, rank, low, high)               # every value going up, then some coming down
        time.sleep(0.05)
        if slider_value(slider) != rank:
            missed.append(f"{rank}->{slider_value(slider):g}")
    results.add(fe, vp, nb, "rank slider: mouse reaches every value", not missed,
                f"missed {missed[:6]}" if missed else f"dragged to each of {low:g}..{high:g}")
    for rank in (1, 32, 64):
        drag_to(slider, rank, low, high)
        try:
            wait_for(lambda: f"rank {rank}:" in summary.inner_text(), 60, 0.25, f"rank {rank}")
            time.sleep(1.0)
            ok = slider_value(slider) == rank
        except TimeoutError:
            ok = False
        shot(box, out / f"03_rank_{rank}_{vp}.png")
        results.add(fe, vp, nb, f"rank slider: summary + figure at {rank}", ok, summary.inner_text()[:80])


def check_probe_explorer(page, results, fe, vp, nb, out: Path) -> None:
    box = page.locator(f"{PANEL} .minift-probe-explorer").first
    if not results.add(fe, vp, nb, "probe explorer: drawn", box.count() == 1, f"{box.count()} explorer(s)"):
        return
    summary = box.locator(".widget-html-content").first
    shot(box, out / f"07_probes_{vp}.png")
    feature = box.locator("select").nth(1)
    options = [o.replace("\xa0", " ") for o in feature.locator("option").all_inner_texts()]   # ipywidgets: nbsp
    before, src = summary.inner_text(), plot_src(box)
    choice = options[-1] if options[-1] not in before else options[0]
    feature.select_option(index=options.index(choice))
    try:
        wait_for(lambda: choice in summary.inner_text() and plot_src(box) != src, 60, 0.25, "the new plot")
        ok = True
    except TimeoutError:
        ok = False
    results.add(fe, vp, nb, "probe explorer: feature switch redraws", ok, summary.inner_text()[:90])
    shot(box, out / f"07_probes_{re.sub(r'[^A-Za-z0-9]+', '_', choice)}_{vp}.png")


# --------------------------------------------------------------------------------------------------

def check_notebook(page, server: Server, notebook: Path, results: Results, out: Path) -> None:
    fe, nb = server.frontend, notebook.name[:2]
    keys_only = fe.endswith("-keys")
    page.set_viewport_size(VIEWPORTS["1024x768"])
    open_notebook(page, server, notebook.name)
    try:
        seconds = restart_and_run_all(page, server, notebook.name)
    except TimeoutError as error:
        page.screenshot(path=str(out / f"{nb}_run_all_timeout.png"))
        results.add(fe, "1024x768", nb, "restart + run all", False, error)
        return
    errors, stderr = output_problems(save_and_read(page, server, notebook.name))
    results.add(fe, "1024x768", nb, "restart + run all: no error", not errors,
                "; ".join(errors) or f"{seconds:.0f} s" + (f"; stderr: {stderr[0]}" if stderr else ""))
    time.sleep(1.0)
    broken = widget_problems(page)
    results.add(fe, "1024x768", nb, "widgets rendered", not broken, ", ".join(broken) or "no widget error")
    for vp, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        time.sleep(1.5)
        if not keys_only:
            if page.locator(f"{PANEL} .minift-quiz").count():
                check_quizzes(page, results, fe, vp, nb, out)
            {"02": check_params_explorer, "03": check_rank_explorer, "07": check_probe_explorer}.get(
                nb, lambda *args: None)(page, results, fe, vp, nb, out)
        if nb in SLIDER_CHAPTERS:
            check_keys(page, results, fe, vp, nb)          # last: in Notebook 7 they may fold sections
    server.shut_down_kernels()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "minift-frontends")
    parser.add_argument("--frontends", nargs="+", choices=FRONTENDS, default=list(FRONTENDS))
    parser.add_argument("--notebooks", nargs="+", default=None, help="chapter numbers, e.g. 02 03")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args(argv)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("needs Playwright: .venv/bin/pip install playwright (no `playwright install`: it uses Chromium)")
        return 2
    import ipywidgets

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    results = Results()
    versions = {"chromium": subprocess.run([args.chromium, "--version"], capture_output=True,
                                           text=True).stdout.strip(), "ipywidgets": ipywidgets.__version__}
    with sync_playwright() as playwright:
        for frontend in args.frontends:
            notebooks = [n for n in NOTEBOOKS if (args.notebooks is None or n.name[:2] in args.notebooks)
                         and (not frontend.endswith("-keys") or n.name[:2] in SLIDER_CHAPTERS)]
            if not notebooks:
                continue
            with Server(frontend, out / "work") as server, tempfile.TemporaryDirectory() as profile:
                versions[server.app] = server.version()
                print(f"{frontend}: {server.app} {versions[server.app]} on {server.base}", flush=True)
                browser = playwright.chromium.launch_persistent_context(
                    profile, executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS,
                    viewport=VIEWPORTS["1024x768"])
                page = browser.new_page()
                for notebook in notebooks:
                    print(f"{frontend}: {notebook.name}", flush=True)
                    try:
                        check_notebook(page, server, notebook, results, out / frontend)
                    except Exception as error:      # one broken notebook must not hide the others
                        (out / frontend).mkdir(parents=True, exist_ok=True)
                        page.screenshot(path=str(out / frontend / f"{notebook.name[:2]}_exception.png"))
                        results.add(frontend, "-", notebook.name[:2], "the check itself ran", False,
                                    f"{type(error).__name__}: {error}".splitlines()[0][:200])
                        server.shut_down_kernels()
                browser.close()
    print()
    print("versions:", ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(results.table())
    (out / "results.json").write_text(json.dumps({"versions": versions, "results": results.rows}, indent=1))
    print(f"screenshots: {out}/<front end>/; results: {out / 'results.json'}")
    return 0 if all(r["ok"] for r in results.rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

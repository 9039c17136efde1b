"""Arrow keys on a slider in classic Notebook 7: a keyboard-shortcut override.

The problem (Notebook 7.6.5, not JupyterLab 4.6; found with tests/browser/check_frontends.py): in
command mode the four arrow keys are notebook shortcuts (cell below / above, heading above or collapse
it, heading below or expand it), with the selector ``.jp-Notebook.jp-mod-commandMode:not(.jp-mod-readWrite)
:focus``, which also matches a slider handle that has the focus. JupyterLab runs its shortcuts after the
focused element has seen the key (Lumino's ``bubblingKeydown``), so the slider takes the key first;
Notebook 7 runs them before (Lumino's capture phase). So in Notebook 7, clicking a slider's handle and
pressing ArrowRight moves to another cell, or folds a section, instead of moving the slider.

Without changing anything: drag the handle, or click the number at the slider's right, type the value
and press Enter (typing there never triggers a shortcut).

With the override (once per user; harmless in JupyterLab): the same four shortcuts, except when the
focus is inside a widget (``:not(.jupyter-widgets *)``: a slider's handle, a dropdown, a radio button).
Arrow keys still move between cells everywhere else.

    python -m minift.course.widgets.keyboard            # print the settings and where they go
    python -m minift.course.widgets.keyboard --write    # write them there (if no such file exists yet)

or paste the printed JSON into Settings > Settings Editor > JSON Settings Editor > Keyboard Shortcuts
(merge its "shortcuts" list into yours if you already have one), then reload the page.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

# JupyterLab 4.6's defaults (@jupyterlab/notebook-extension, schema tracker.json), shared by Notebook 7
DEFAULT_SELECTOR = ".jp-Notebook.jp-mod-commandMode:not(.jp-mod-readWrite) :focus"
ARROW_COMMANDS = {
    "ArrowDown": "notebook:move-cursor-down",
    "ArrowUp": "notebook:move-cursor-up",
    "ArrowLeft": "notebook:move-cursor-heading-above-or-collapse",
    "ArrowRight": "notebook:move-cursor-heading-below-or-expand",
}
WIDGET_ELEMENT = ".jupyter-widgets *"     # anything inside an ipywidget: slider handle, dropdown, radio
SETTINGS_FILE = Path("@jupyterlab") / "shortcuts-extension" / "shortcuts.jupyterlab-settings"


def shortcut_overrides() -> dict:
    """The user settings of @jupyterlab/shortcuts-extension: each default arrow-key binding disabled
    and added back with a selector that leaves a focused widget alone (a slider's handle, a dropdown, a
    radio button: all inside an element of class jupyter-widgets), so the widget gets the key."""
    shortcuts = []
    for key, command in ARROW_COMMANDS.items():
        shortcuts.append({"command": command, "keys": [key], "selector": DEFAULT_SELECTOR, "disabled": True})
        shortcuts.append({"command": command, "keys": [key],
                          "selector": f"{DEFAULT_SELECTOR}:not({WIDGET_ELEMENT})"})
    return {"shortcuts": shortcuts}


def settings_path() -> Path:
    """Where JupyterLab and Notebook 7 read this user's keyboard shortcuts."""
    folder = os.environ.get("JUPYTERLAB_SETTINGS_DIR")
    if not folder:
        from jupyter_core.paths import jupyter_config_dir
        folder = Path(jupyter_config_dir()) / "lab" / "user-settings"
    return Path(folder) / SETTINGS_FILE


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Let arrow keys move ipywidgets sliders in Notebook 7.")
    parser.add_argument("--write", action="store_true", help="write the settings file (never overwrites one)")
    args = parser.parse_args(argv)
    text = json.dumps(shortcut_overrides(), indent=2)
    path = settings_path()
    if not args.write:
        print(text)
        print(f"\n# goes to {path} (or: Settings > Settings Editor > JSON Settings Editor > Keyboard Shortcuts)")
        return 0
    if path.exists():
        print(f"{path} exists: add the entries below to its \"shortcuts\" list by hand, then reload the page.")
        print(text)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {path}; reload the Notebook 7 page")
    return 0


__all__ = ["shortcut_overrides", "settings_path", "ARROW_COMMANDS", "DEFAULT_SELECTOR"]


if __name__ == "__main__":
    raise SystemExit(main())

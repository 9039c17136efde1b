"""The course glossary, English and Chinese side by side: docs/GLOSSARY.md is the one source.

    from minift.course import glossary
    terms = glossary.load()            # [Term(english, chinese, definition, chapter), ...]
    glossary.show()                    # a table in a notebook, plain text elsewhere
    glossary.lookup("LoRA")            # the Term whose English (or Chinese) name matches

The Markdown file is what a reader browses on GitHub; this module parses its table so the review
notebook shows the same rows, and refuses a file it cannot read exactly (a row with the wrong number of
cells, an empty cell, a term listed twice) instead of showing a silently shortened table.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("English", "中文", "Definition", "Chapter")


class GlossaryError(ValueError):
    """docs/GLOSSARY.md does not have the expected table; the message names the line."""


@dataclass(frozen=True)
class Term:
    english: str
    chinese: str
    definition: str
    chapter: str


def default_path() -> Path:
    """docs/GLOSSARY.md of the repository this package sits in (a source checkout)."""
    return Path(__file__).resolve().parents[2] / "docs" / "GLOSSARY.md"


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse(text: str, where: str = "GLOSSARY.md") -> list[Term]:
    """The terms of the glossary table in ``text`` (Markdown), in file order."""
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines)
                   if line.lstrip().startswith("|") and tuple(_cells(line)) == COLUMNS), None)
    if header is None:
        raise GlossaryError(f"{where}: no table with the header | {' | '.join(COLUMNS)} |")
    terms, seen_en, seen_zh = [], {}, {}
    for number, line in enumerate(lines[header + 2:], start=header + 3):
        if not line.strip().startswith("|"):
            break                                           # the table ends at the first non-row line
        cells = _cells(line)
        if len(cells) != len(COLUMNS) or not all(cells):
            raise GlossaryError(f"{where}, line {number}: a row needs {len(COLUMNS)} non-empty cells "
                                f"({', '.join(COLUMNS)}), got {cells}")
        english, chinese, definition, chapter = cells
        if not (len(chapter) == 2 and chapter.isdigit()):
            raise GlossaryError(f"{where}, line {number}: chapter must look like '04', got {chapter!r}")
        for name, seen in ((english.lower(), seen_en), (chinese, seen_zh)):
            if name in seen:
                raise GlossaryError(f"{where}, line {number}: {name!r} is already listed on line {seen[name]}")
            seen[name] = number
        terms.append(Term(english, chinese, definition, chapter))
    if not terms:
        raise GlossaryError(f"{where}: the glossary table has no rows")
    return terms


def load(path=None) -> list[Term]:
    """Parse docs/GLOSSARY.md (or ``path``)."""
    path = default_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no glossary at {path}: it ships with the course repository (docs/GLOSSARY.md), "
                                "not with an installed wheel; pass path= to read a copy")
    return parse(path.read_text(encoding="utf-8"), where=str(path))


def lookup(name: str, terms=None) -> Term:
    """The term whose English name (case-insensitive, with or without its parenthesis) or Chinese
    name is ``name``."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    terms = load() if terms is None else terms
    wanted = name.strip().lower()
    for term in terms:
        short = term.english.split(" (")[0].lower()
        if wanted in (term.english.lower(), short, term.chinese.lower()):
            return term
    raise ValueError(f"{name!r} is not in the glossary; terms: {[t.english for t in terms]}")


def text_table(terms=None) -> str:
    """The glossary as aligned plain text (the fallback where HTML is not shown)."""
    terms = load() if terms is None else terms
    width = max(len(t.english) for t in terms)
    return "\n".join(f"{t.english:<{width}}  {t.chinese}  ({t.chapter}) {t.definition}" for t in terms)


def html_table(terms=None) -> str:
    terms = load() if terms is None else terms
    head = "".join(f"<th style='text-align:left'>{c}</th>" for c in COLUMNS)
    rows = "".join(f"<tr><td><b>{html.escape(t.english)}</b></td><td>{html.escape(t.chinese)}</td>"
                   f"<td style='text-align:left'>{html.escape(t.definition)}</td><td>{t.chapter}</td></tr>"
                   for t in terms)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def show(terms=None) -> None:
    """The glossary as a table in a notebook (with the text table for static viewers), text elsewhere."""
    terms = load() if terms is None else terms
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        print(text_table(terms))
        return
    if get_ipython() is None:
        print(text_table(terms))
        return
    display({"text/html": html_table(terms), "text/plain": text_table(terms)}, raw=True)


__all__ = ["Term", "GlossaryError", "load", "parse", "lookup", "show", "text_table", "html_table"]

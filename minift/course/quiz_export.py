"""The instructor's view of a question bank: a printed exam (Markdown) or an LMS import (JSON).

    python -m minift.course.quiz export --chapter 09 --format markdown            # the exam sheet
    python -m minift.course.quiz export --chapter 09 --format markdown --answers  # the answer key
    python -m minift.course.quiz export --chapter 09 --format json --answers --lang zh > 09_zh.json

Without --answers nothing that gives the answer away is printed (no correct options, no explanations,
no known mistakes). Options are lettered A, B, C ... on paper; the JSON keeps the indices that
minift.quiz.check takes, and the letters beside them.
"""

from __future__ import annotations

import argparse
import json
import string
import sys

from . import quiz
from .quiz_lang import LANGS, check_lang, localise, type_name, ui

FORMATS = ("markdown", "json")


def _letter(index: int) -> str:
    return string.ascii_uppercase[index]


def _number(value) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.6g}"


def _tolerance(correct: dict) -> str:
    if "tolerance" in correct:
        return f"± {_number(correct['tolerance'])}"
    return f"± {100 * correct['rel_tolerance']:g}%"


def question_record(question, answers: bool, lang: str) -> dict:
    """One question as a JSON-able dict (what the JSON export lists)."""
    q = localise(question, lang)
    record = {"id": q.id, "type": q.type, "type_name": type_name(lang, q.type), "prompt": q.prompt,
              "options": list(q.options), "letters": [_letter(i) for i in range(len(q.options))],
              "article_section": q.article_section}
    if q.unit:
        record["unit"] = q.unit
    if q.measured_in:
        record["measured_in"] = q.measured_in
        record["measured_where"] = q.measured_where
    if answers:
        if q.type == "numeric":
            record["correct"] = {k: v for k, v in q.correct.items()}
            record["explanation"] = q.explanations[0]
            record["mistakes"] = [{"value": m[0], "message": m[1]} for m in q.mistakes]
        else:
            record["correct"] = list(q.correct)
            record["correct_letters"] = [_letter(i) for i in q.correct]
            record["explanations"] = list(q.explanations)
    return record


def export_json(chapter, answers: bool = False, lang: str = "en") -> str:
    lang = check_lang(lang)
    bank = quiz.normalise_chapter(chapter)
    payload = {"chapter": bank, "lang": lang, "with_answers": bool(answers),
               "questions": [question_record(q, answers, lang) for q in quiz.load_bank(bank)]}
    return json.dumps(payload, ensure_ascii=False, indent=2)


def export_markdown(chapter, answers: bool = False, lang: str = "en") -> str:
    lang = check_lang(lang)
    zh = lang == "zh"
    bank = quiz.normalise_chapter(chapter)
    questions = quiz.load_bank(bank)
    title = (f"# 第 {bank} 章测验" if zh else f"# Quiz, chapter {bank}") + (
        ("（含答案）" if zh else " (with answers)") if answers else "")
    lines = [title, ""]
    if not answers:
        lines += ["姓名：____________________" if zh else "Name: ____________________", ""]
    for number, question in enumerate(questions, 1):
        q = localise(question, lang)
        meta = [type_name(lang, q.type)]
        if q.article_section != "-":
            meta.append(ui(lang, "article", s=q.article_section))
        if answers and q.measured_in:
            separator = "：" if zh else ": "
            meta.append(ui(lang, "measured", c=q.measured_in) + (separator + q.measured_where if q.measured_where else ""))
        lines.append(f"**{number}.** {q.prompt}")
        lines.append(f"*({'; '.join(meta)} · {q.id})*")
        lines.append("")
        for index, option in enumerate(q.options):
            mark = ""
            if answers:
                mark = " ✅" if index in q.correct else ""
            lines.append(f"- {_letter(index)}. {option}{mark}")
        if q.type == "numeric":
            unit = {"percent": " (%)", "fraction": " (0-1)"}.get(q.unit or "", "")
            if answers:
                lines.append(f"{'答案' if zh else 'Answer'}: **{_number(q.correct['value'])}**{unit} "
                             f"({_tolerance(q.correct)})")
            else:
                lines.append(f"{'答案' if zh else 'Answer'}{unit}: ____________________")
        lines.append("")
        if answers:
            if q.type == "numeric":
                lines.append(f"> {q.explanations[0]}")
                for value, message, *_ in q.mistakes:
                    lines.append(f"> - {_number(value)}: {message}")
            else:
                letters = ", ".join(_letter(i) for i in q.correct)
                lines.append(f"> **{'答案' if zh else 'Answer'}: {letters}**")
                for index, explanation in enumerate(q.explanations):
                    lines.append(f"> - {_letter(index)}: {explanation}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def export(chapter, fmt: str = "markdown", answers: bool = False, lang: str = "en") -> str:
    """A bank as Markdown (a printed exam) or JSON (an LMS import), with or without the answers."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if not isinstance(answers, bool):
        raise TypeError(f"answers must be True or False, got {answers!r}")
    return (export_markdown if fmt == "markdown" else export_json)(chapter, answers=answers, lang=lang)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minift.course.quiz",
                                     description="Print a quiz bank for a printed exam or an LMS import.")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("export", help="print one chapter's bank")
    command.add_argument("--chapter", required=True, help=f"a chapter with a bank: {quiz.available_chapters()}")
    command.add_argument("--format", choices=FORMATS, default="markdown")
    command.add_argument("--answers", action="store_true", help="include the answers and explanations")
    command.add_argument("--lang", choices=LANGS, default="en")
    args = parser.parse_args(argv)
    try:
        text = export(args.chapter, fmt=args.format, answers=args.answers, lang=args.lang)
    except ValueError as error:
        parser.error(str(error))
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

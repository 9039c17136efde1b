"""Quizzes with immediate feedback: every option explains why it is right or wrong.

    minift.quiz.show("01")                      # widgets in Jupyter, plain text elsewhere
    minift.quiz.check("01-sft-lr", 0)           # a pure function: the same answer, the same Feedback

Question banks are JSON files shipped with the package (minift/course/quizzes/<chapter>.json). A question:

    id              unique, starts with its chapter: "01-sft-lr"
    chapter         "01"
    type            "single" | "multiple" | "truefalse" | "numeric"
    prompt          the question
    options         the choices (truefalse: ["True", "False"]; numeric: [])
    correct         indices of the right options; numeric: {"value": x, "tolerance": t}
                    (absolute) or {"value": x, "rel_tolerance": r}
    explanations    one per option, why it is right or wrong; numeric: one string
    article_section the section of the source article it tests ("5.1"); "-" if none
    mistakes        numeric only, optional: [{"value": x, "message": "..."}], answers that come from a
                    known mistake, so the feedback can name it; a mistake may carry its own "tolerance"
                    or "rel_tolerance" (else the question's)
    unit            numeric only, optional: "percent" or "fraction". An answer given in the other form
                    (0.667 where 66.7% is asked, 66.7 where 0.667 is asked) is recognised and said so
    measured_in     optional: the chapter ("04") whose notebook measured the answer, when it is not the
                    bank's own chapter (review banks); quiz.report() scores the student per this chapter
    measured_where  optional, with measured_in: the section of that chapter, in words
    zh              optional: the Chinese version, {"prompt", "options", "explanations", "mistakes",
                    "measured_where"}, each field optional (English is the fallback); see quiz_lang.py

Languages: show(chapter, lang="zh"), text_version(chapter, lang="zh") and check(id, answer, lang="zh")
use the Chinese text where the bank has it. report(chapter) summarises the answers given in the quiz
widgets shown in this kernel (or a dict of answers) per chapter; python -m minift.course.quiz export
prints a bank for a printed exam or an LMS (quiz_export.py).

Banks are read once per Python session (restart the kernel after editing one).

Answers: single -> an option index; multiple -> a list of indices; truefalse -> True or False (not 0
or 1: 0 would be option "True" but the number 0 reads as False); numeric -> a number (an int, a float, a
numpy scalar or a one-number tensor).
"""

from __future__ import annotations

import difflib
import html
import json
import math
import numbers
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from .quiz_lang import (Translation, check_lang, localise, parse_translation, translate_feedback,
                        type_name, ui)

TYPES = ("single", "multiple", "truefalse", "numeric")
TYPE_NAMES = {"single": "single choice", "multiple": "multiple choice (choose every correct option)",
              "truefalse": "true or false", "numeric": "numeric answer"}
TRUE_FALSE = ("True", "False")
UNITS = ("percent", "fraction")


class QuizBankError(ValueError):
    """A question bank that breaks the schema; the message names the file and the question."""


@dataclass(frozen=True)
class Question:
    id: str
    chapter: str
    type: str
    prompt: str
    options: tuple[str, ...]
    correct: object                 # tuple of option indices, or a dict for numeric questions
    explanations: tuple[str, ...]   # one per option; numeric: exactly one
    article_section: str
    mistakes: tuple = ()            # numeric: ((value, message, tolerance dict), ...)
    unit: str | None = None         # numeric: "percent", "fraction" or None
    measured_in: str | None = None  # the chapter that measured the answer (review banks), else None
    measured_where: str = ""        # the section of that chapter, in words
    zh: Translation | None = None   # the Chinese version (quiz_lang.py); None: English only


@dataclass(frozen=True)
class Feedback:
    """The result of check(): right or wrong, a short message, and the explanation of each choice."""

    question_id: str
    correct: bool
    message: str
    chosen: tuple[int, ...] = ()              # the option indices the answer selected
    explanations: tuple[str, ...] = ()        # "option — why", one per chosen option (numeric: one)

    def __str__(self):
        lines = [self.message] + [f"  - {text}" for text in self.explanations]
        return "\n".join(lines)


# --- loading and validating the banks ---------------------------------------------------------------

def normalise_chapter(chapter) -> str:
    """1, "1" and "01" all mean chapter "01"."""
    if isinstance(chapter, bool) or not isinstance(chapter, (int, str)):
        raise ValueError(f"chapter must be a number like 1 or a string like '01', got {chapter!r}")
    text = str(chapter).strip()
    return text.zfill(2) if text.isdigit() else text


def _banks():
    """The folder of question banks, found through importlib.resources so it works from a wheel too."""
    return resources.files(__package__) / "quizzes"


def available_chapters() -> list[str]:
    """Chapters that ship a question bank."""
    folder = _banks()
    if not folder.is_dir():
        return []
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".json"))


def _fail(where: str, problem: str):
    raise QuizBankError(f"{where}: {problem}")


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def parse_question(raw: dict, chapter: str, where: str = "question") -> Question:
    """Check one question against the schema and build it. Errors name the question."""
    if not isinstance(raw, dict):
        _fail(where, f"a question must be a JSON object, got {type(raw).__name__}")
    qid = raw.get("id")
    if not isinstance(qid, str) or not qid.startswith(f"{chapter}-"):
        _fail(where, f"id {qid!r} must be a string starting with '{chapter}-'")
    where = f"{where} {qid!r}"
    allowed = {"id", "chapter", "type", "prompt", "options", "correct", "explanations",
               "article_section", "mistakes", "unit", "measured_in", "measured_where", "zh"}
    unknown = set(raw) - allowed
    if unknown:
        _fail(where, f"unknown fields {sorted(unknown)}; allowed: {sorted(allowed)}")
    if raw.get("chapter") != chapter:
        _fail(where, f"chapter is {raw.get('chapter')!r}, but the question is in bank {chapter!r}")
    qtype = raw.get("type")
    if qtype not in TYPES:
        _fail(where, f"type {qtype!r} is unknown; allowed: {TYPES}")
    for name in ("prompt", "article_section"):
        if not isinstance(raw.get(name), str) or not raw[name].strip():
            _fail(where, f"{name} must be a non-empty string")
    options = raw.get("options", [])
    explanations = raw.get("explanations")
    correct = raw.get("correct")
    mistakes = ()
    unit = raw.get("unit")

    if qtype == "numeric":
        if unit is not None and unit not in UNITS:
            _fail(where, f"unit {unit!r} is unknown; allowed: {UNITS} (or no unit)")
        if options:
            _fail(where, "a numeric question has no options (use options: [])")
        if isinstance(explanations, list) and len(explanations) == 1:
            explanations = explanations[0]
        if not isinstance(explanations, str) or not explanations.strip():
            _fail(where, "a numeric question needs one explanation string")
        explanations = (explanations,)
        if not isinstance(correct, dict) or not _is_number(correct.get("value")):
            _fail(where, 'correct must be {"value": number, "tolerance": t} or {"value": number, "rel_tolerance": r}')
        tolerances = [k for k in ("tolerance", "rel_tolerance") if k in correct]
        if len(tolerances) != 1 or set(correct) - {"value", "tolerance", "rel_tolerance"}:
            _fail(where, f"correct needs 'value' and exactly one of 'tolerance' (absolute) or "
                         f"'rel_tolerance', got keys {sorted(correct)}")
        if not _is_number(correct[tolerances[0]]) or correct[tolerances[0]] < 0:
            _fail(where, f"{tolerances[0]} must be a number >= 0, got {correct[tolerances[0]]!r}")
        parsed = []
        for i, mistake in enumerate(raw.get("mistakes", [])):
            keys = set(mistake) if isinstance(mistake, dict) else set()
            if not {"value", "message"} <= keys or keys - {"value", "message", "tolerance", "rel_tolerance"} \
                    or len(keys & {"tolerance", "rel_tolerance"}) > 1 \
                    or not _is_number(mistake["value"]) or not isinstance(mistake["message"], str) \
                    or any(not _is_number(mistake[k]) or mistake[k] < 0 for k in keys & {"tolerance", "rel_tolerance"}):
                _fail(where, f'mistakes[{i}] must be {{"value": number, "message": str}} with at most one of '
                             f'"tolerance" or "rel_tolerance" (a number >= 0)')
            window = {k: mistake[k] for k in ("tolerance", "rel_tolerance") if k in mistake} or \
                {k: v for k, v in correct.items() if k != "value"}
            window = {**window, "value": mistake["value"]}
            if _within(mistake["value"], correct) or _within(correct["value"], window):
                _fail(where, f"mistakes[{i}] value {mistake['value']} is within the tolerance of the right answer")
            parsed.append((mistake["value"], mistake["message"], window))
        correct = dict(correct)
        mistakes = tuple(parsed)
    else:
        if "mistakes" in raw or unit is not None:
            _fail(where, "only numeric questions have 'mistakes' or a 'unit'")
        if qtype == "truefalse" and list(options) != list(TRUE_FALSE):
            _fail(where, f"a truefalse question's options must be {list(TRUE_FALSE)}, got {options!r}")
        if not isinstance(options, list) or len(options) < 2 or \
                not all(isinstance(o, str) and o.strip() for o in options):
            _fail(where, "options must be a list of at least 2 non-empty strings")
        if len(set(options)) != len(options):
            _fail(where, "two options have the same text")
        if not isinstance(explanations, list) or len(explanations) != len(options) or \
                not all(isinstance(e, str) and e.strip() for e in explanations):
            count = len(explanations) if isinstance(explanations, list) else explanations
            _fail(where, f"every option needs an explanation: {len(options)} options, explanations = {count!r}")
        if not isinstance(correct, list) or not correct or \
                not all(isinstance(i, int) and not isinstance(i, bool) for i in correct):
            _fail(where, f"correct must be a non-empty list of option indices, got {correct!r}")
        if any(not 0 <= i < len(options) for i in correct):
            _fail(where, f"correct {correct} has an index outside 0..{len(options) - 1}")
        if len(set(correct)) != len(correct):
            _fail(where, f"correct {correct} repeats an index")
        if qtype in ("single", "truefalse") and len(correct) != 1:
            _fail(where, f"a {qtype} question has exactly one correct option, got {correct}")
        correct = tuple(sorted(correct))
        explanations = tuple(explanations)
    measured_in, measured_where = raw.get("measured_in"), raw.get("measured_where", "")
    if measured_in is not None and (not isinstance(measured_in, str) or len(measured_in) != 2
                                    or not measured_in.isdigit()):
        _fail(where, f"measured_in must be a chapter like '04', got {measured_in!r}")
    if "measured_where" in raw and (measured_in is None or not isinstance(measured_where, str)
                                    or not measured_where.strip()):
        _fail(where, "measured_where must be a non-empty string and needs measured_in")
    zh = None
    if "zh" in raw:
        zh = parse_translation(raw["zh"], qtype, len(options), len(mistakes),
                               lambda problem: _fail(where, problem))
    return Question(id=qid, chapter=chapter, type=qtype, prompt=raw["prompt"], options=tuple(options),
                    correct=correct, explanations=explanations, article_section=raw["article_section"],
                    mistakes=mistakes, unit=unit, measured_in=measured_in, measured_where=measured_where,
                    zh=zh)


@lru_cache(maxsize=None)
def _load_bank(chapter: str) -> tuple[Question, ...]:
    path = _banks() / f"{chapter}.json"
    if not path.is_file():
        raise ValueError(f"there is no quiz for chapter {chapter!r}; available: {available_chapters()}")
    where = f"quizzes/{chapter}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise QuizBankError(f"{where} is not valid JSON: {error}") from None
    if not isinstance(raw, list) or not raw:
        raise QuizBankError(f"{where} must hold a non-empty JSON list of questions")
    questions, seen = [], set()
    for number, item in enumerate(raw):
        question = parse_question(item, chapter, where=f"{where}, question {number}")
        if question.id in seen:
            raise QuizBankError(f"{where}, question {number}: id {question.id!r} is used twice")
        seen.add(question.id)
        questions.append(question)
    return tuple(questions)


def load_bank(chapter) -> list[Question]:
    """The validated questions of one chapter ("01" or 1)."""
    return list(_load_bank(normalise_chapter(chapter)))


def get_question(question_id: str) -> Question:
    """Find a question by id (its chapter is the part before the first '-')."""
    if not isinstance(question_id, str) or "-" not in question_id:
        raise ValueError(f"question id must look like '01-sft-lr', got {question_id!r}")
    chapter = question_id.split("-", 1)[0]
    if chapter not in available_chapters():
        raise ValueError(f"question id {question_id!r}: there is no quiz for chapter {chapter!r}; "
                         f"available: {available_chapters()}")
    questions = {q.id: q for q in _load_bank(chapter)}
    if question_id not in questions:
        near = difflib.get_close_matches(question_id, list(questions), n=3)
        raise ValueError(f"no question {question_id!r} in chapter {chapter}"
                         + (f"; did you mean {near}?" if near else f"; ids: {sorted(questions)}"))
    return questions[question_id]


# --- checking answers -----------------------------------------------------------------------------

def _within(value, correct: dict) -> bool:
    target = correct["value"]
    if "tolerance" in correct:
        return abs(value - target) <= correct["tolerance"]
    return abs(value - target) <= correct["rel_tolerance"] * abs(target)


def _as_index(value, question: Question) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{question.id}: an option is chosen by its index (an int), got {value!r}")
    value = int(value)
    if not 0 <= value < len(question.options):
        raise ValueError(f"{question.id}: option index {value} is out of range; "
                         f"allowed: 0..{len(question.options) - 1}")
    return value


def _chosen_options(question: Question, answer) -> tuple[int, ...]:
    """Turn an answer into the sorted option indices it selects, or raise ValueError."""
    if question.type == "truefalse":
        if getattr(getattr(answer, "dtype", None), "kind", "") == "b" and getattr(answer, "size", 0) == 1:
            answer = bool(answer)                           # numpy's bool
        if isinstance(answer, bool):
            return (0 if answer else 1,)
        if isinstance(answer, str) and answer.strip() in TRUE_FALSE:
            return (TRUE_FALSE.index(answer.strip()),)
        raise ValueError(f"{question.id} is true or false: answer True or False, got {answer!r} "
                         "(a number is not accepted: 0 would be the option 'True', but 0 means False in Python)")
    if question.type == "multiple":
        if isinstance(answer, (list, tuple, set, frozenset)):
            chosen = {_as_index(a, question) for a in answer}
        else:
            chosen = {_as_index(answer, question)}
        if not chosen:
            raise ValueError(f"{question.id}: choose at least one option (a list of indices)")
        return tuple(sorted(chosen))
    if isinstance(answer, (list, tuple)) and len(answer) == 1:
        answer = answer[0]
    elif isinstance(answer, (list, tuple, set)):
        raise ValueError(f"{question.id} is {TYPE_NAMES[question.type]}: give one answer, "
                         f"got {len(answer)}: {answer!r}")
    if question.type == "truefalse" and isinstance(answer, str) and answer.strip() in TRUE_FALSE:
        return (TRUE_FALSE.index(answer.strip()),)
    return (_as_index(answer, question),)


def _number(value) -> str:
    """7077888.0 -> "7,077,888"; 0.6667 -> "0.6667"."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.6g}"


def _as_answer_number(question: Question, answer):
    """A numeric answer as a float; a one-number tensor or numpy value is fine (what a function computing
    the answer with torch returns). None and several numbers give a Feedback, not an error, so a notebook
    that grades a function's return value never crashes; anything else is a ValueError."""
    if answer is None:
        return Feedback(question.id, False, "❌ No answer: got None. If a function computes your answer, it must "
                                            "`return` the number (printing it is not enough).")
    if hasattr(answer, "numel") or (hasattr(answer, "dtype") and hasattr(answer, "item")):   # torch / numpy
        size = answer.numel() if hasattr(answer, "numel") else getattr(answer, "size", 1)
        if size != 1:
            shape = tuple(getattr(answer, "shape", ()))
            return Feedback(question.id, False, f"❌ Expected one number, got an array of shape {shape}. "
                                                "Reduce it to the single number the question asks for.")
        if getattr(getattr(answer, "dtype", None), "kind", "") != "b" and "bool" not in str(getattr(answer, "dtype", "")):
            answer = answer.item()
    if not _is_number(answer):
        raise ValueError(f"{question.id} expects a number (like 147456 or 0.5), got {answer!r}")
    if not math.isfinite(answer):
        raise ValueError(f"{question.id} expects a finite number, got {answer!r}")
    return float(answer) if not isinstance(answer, numbers.Integral) else int(answer)


def _other_unit(question: Question, answer):
    """(the answer converted to the question's unit, how to say it) when the answer looks like it was
    given in the other unit (a fraction where a percentage is asked, or the reverse), else None."""
    if question.unit == "percent":
        return answer * 100, f"{_number(answer)} looks like a fraction; the question asks for a percentage"
    if question.unit == "fraction":
        return answer / 100, f"{_number(answer)} looks like a percentage; the question asks for a fraction between 0 and 1"
    return None


def _check_numeric(question: Question, answer) -> Feedback:
    answer = _as_answer_number(question, answer)
    if isinstance(answer, Feedback):
        return answer
    if _within(answer, question.correct):
        return Feedback(question.id, True, f"✅ Correct: {_number(answer)}.", (), question.explanations)
    converted = _other_unit(question, answer)
    if converted is not None and _within(converted[0], question.correct):
        value, how = converted
        return Feedback(question.id, False, f"❌ Almost: {how}. Your number is right, written as "
                                            f"{_number(value)}; enter it that way.")
    def raw_mistake():
        for value, message, window in question.mistakes:
            if _within(answer, window):
                return Feedback(question.id, False, f"❌ {_number(answer)} is not right. {message}")

    def converted_mistake():
        if converted is not None:
            value, how = converted
            for mistake_value, message, window in question.mistakes:
                if _within(value, window):
                    return Feedback(question.id, False, f"❌ {how} ({_number(value)} in its terms), and that is "
                                                        f"not right either. {message}")

    # a number in (0, 1] for a percentage was most likely meant as a fraction: read it that way first
    as_fraction = question.unit == "percent" and 0 < abs(answer) <= 1
    for named in ((converted_mistake, raw_mistake) if as_fraction else (raw_mistake, converted_mistake)):
        feedback = named()
        if feedback is not None:
            return feedback
    target = question.correct["value"]
    direction = "too high" if answer > target else "too low"
    hint = ""
    if answer != 0 and target != 0 and (answer / target > 1.5 or answer / target < 1 / 1.5):
        hint = f" (off by a factor of about {max(answer / target, target / answer):.3g})"
    return Feedback(question.id, False,
                    f"❌ {_number(answer)} is {direction}{hint}. Re-derive it step by step and try again.")


def check(question_id: str, answer, lang: str = "en") -> Feedback:
    """Grade ``answer`` to question ``question_id``; pure (no printing, no state).

    Wrong choices come with the explanation of why each chosen option is wrong, but the right answer
    is not revealed, so you can try again. Numeric answers get the explanation once they are right.
    ``lang="zh"``: the same grading, the feedback in Chinese where the bank has it (else English).
    """
    lang = check_lang(lang)
    question = localise(get_question(question_id), lang)
    if question.type == "numeric":
        return translate_feedback(_check_numeric(question, answer), lang)
    chosen = _chosen_options(question, answer)
    explanations = tuple(f"{question.options[i]} — {question.explanations[i]}" for i in chosen)
    right = set(question.correct)
    picked = set(chosen)
    if picked == right:
        message = "✅ Correct."
    elif question.type != "multiple":
        message = "❌ Not quite. Read why, then try again."
    else:
        hits, wrong, missed = len(picked & right), len(picked - right), len(right - picked)
        parts = [f"{hits} of your choices {'is' if hits == 1 else 'are'} correct"]
        if wrong:
            parts.append(f"{wrong} {'is' if wrong == 1 else 'are'} wrong")
        if missed:
            parts.append(f"you missed {missed} correct option{'s' if missed > 1 else ''}")
        message = ("❌ Partly right: " if hits else "❌ Not quite: ") + ", ".join(parts) + "."
    return translate_feedback(Feedback(question.id, picked == right, message, chosen, explanations), lang)


# --- showing a quiz ---------------------------------------------------------------------------------

ANSWER_FORMS = {"single": "<option number>", "multiple": "[<option number>, ...]",
                "truefalse": "True or False", "numeric": "<number>"}


def how_to_answer(question: Question) -> str:
    """The quiz.check call that answers ``question``, as text (a template, not a hint)."""
    return f'minift.quiz.check("{question.id}", {ANSWER_FORMS[question.type]})'


def _measured(question: Question, lang: str) -> str:
    """"measured in chapter 04: <section>" for a review question, "" otherwise."""
    if question.measured_in is None:
        return ""
    separator = "：" if lang == "zh" else ": "
    where = separator + question.measured_where if question.measured_where else ""
    return ui(lang, "measured", c=question.measured_in) + where


def text_version(chapter, lang: str = "en") -> str:
    """Every question of a chapter as plain text, with how to answer each one (``lang``: "en", "zh")."""
    lang = check_lang(lang)
    questions = [localise(q, lang) for q in load_bank(chapter)]
    lines = [ui(lang, "title", c=normalise_chapter(chapter), n=len(questions)), ui(lang, "howto"), ""]
    for number, question in enumerate(questions, 1):
        section = "" if question.article_section == "-" else ", " + ui(lang, "article", s=question.article_section)
        lines.append(f"Q{number}. [{question.id}] ({type_name(lang, question.type)}{section})")
        lines.append(f"  {question.prompt}")
        for index, option in enumerate(question.options):
            lines.append(f"    {index}) {option}")
        if _measured(question, lang):
            lines.append(f"  ({_measured(question, lang)})")
        answer_call = how_to_answer(question)
        if lang != "en":
            answer_call = answer_call[:-1] + f', lang="{lang}")'
        lines.append(f"  answer: {answer_call}")
        lines.append("")
    return "\n".join(lines)


@dataclass
class QuizWidget:
    """One question as widgets. ``container`` is what is displayed; tests drive ``input`` (or
    ``checkboxes``), click ``submit`` and read ``feedback.value``."""

    question: Question
    container: object
    input: object
    submit: object
    feedback: object
    checkboxes: list = field(default_factory=list)
    last_feedback: Feedback | None = None
    lang: str = "en"

    def answer(self):
        """The answer the widgets currently hold, in the form check() takes (None if nothing chosen)."""
        if self.question.type == "multiple":
            return [i for i, box in enumerate(self.checkboxes) if box.value]
        if self.question.type == "numeric":
            return self.input.value
        if self.question.type == "truefalse" and self.input.value is not None:
            return self.input.value == 0  # the option "True" is index 0; check() takes True/False
        return self.input.value           # RadioButtons hold the option index, or None

    def on_submit(self, _button=None) -> None:
        answer = self.answer()
        if answer is None or answer == []:
            self.feedback.value = f"<p><b>{ui(self.lang, 'choose_first')}</b></p>"
            return
        try:
            result = check(self.question.id, answer, lang=self.lang)
        except ValueError as error:
            self.feedback.value = f"<p><b>⚠️ {html.escape(str(error))}</b></p>"
            return
        self.last_feedback = result
        self.feedback.value = feedback_html(result)


def feedback_html(feedback: Feedback) -> str:
    colour = "#1a7f37" if feedback.correct else "#cf222e"
    items = "".join(f"<li>{html.escape(text)}</li>" for text in feedback.explanations)
    return (f'<div style="color:{colour}"><b>{html.escape(feedback.message)}</b></div>'
            + (f"<ul>{items}</ul>" if items else ""))


# JupyterLab gives each radio/checkbox label one line of fixed height, so a long option wrapped onto
# the next one; these rules let labels grow to fit. The two widgets build their labels in opposite
# orders (ipywidgets 8): a radio label holds its text first and the <input> after it, so it is shown
# reversed (row-reverse) to put the button first; a checkbox label already holds the <input> first and
# a <span> with the text, so it keeps the normal order (reversing it put the boxes after their text).
_LABEL = "display: flex; align-items: flex-start; height: auto; white-space: normal; line-height: 1.35; " \
         "margin-bottom: 0.3em;"
WRAP_LONG_OPTIONS = (
    "<style>"
    f".minift-quiz .widget-radio-box label {{{_LABEL} flex-direction: row-reverse; justify-content: flex-end;}} "
    f".minift-quiz .widget-checkbox label {{{_LABEL} flex-direction: row; justify-content: flex-start;}} "
    # height: ipywidgets makes a radio button 20 px tall, which put its circle 4 px below the text's
    # first line; align-self: ipywidgets centres a checkbox, which put it between the lines of a
    # two-line option (both measured in headless Chromium, tests/browser/check_frontends.py)
    ".minift-quiz .widget-radio-box input, .minift-quiz .widget-checkbox input "
    "{flex-shrink: 0; height: auto; align-self: flex-start; margin: 0.2em 0.5em 0 0;} "
    ".minift-quiz .widget-checkbox {height: auto;} "
    # ipywidgets gives HTML content one widget row's line height (28 px): a wrapped prompt or feedback
    # was double-spaced (seen in JupyterLab and Notebook 7, tests/browser/check_frontends.py)
    ".minift-quiz .widget-html-content {line-height: 1.4;}"
    "</style>")


def build_widget(question: Question, lang: str = "en") -> QuizWidget:
    """Widgets for one question: its text, an input (RadioButtons / Checkboxes / FloatText), a Submit
    button and a feedback area; ``lang="zh"``: the Chinese text where the bank has it."""
    import ipywidgets as widgets

    lang = check_lang(lang)
    question = localise(question, lang)
    section = "" if question.article_section == "-" else " · " + ui(lang, "article_short", s=question.article_section)
    measured = f" · {html.escape(_measured(question, lang))}" if question.measured_in else ""
    header = widgets.HTML(f"<p><b>{html.escape(question.prompt)}</b><br>"
                          f"<small>{type_name(lang, question.type)}{section}{measured} · {question.id}</small></p>")
    layout = widgets.Layout(width="auto")
    checkboxes = []
    if question.type == "multiple":
        checkboxes = [widgets.Checkbox(value=False, description=option, indent=False, layout=layout)
                      for option in question.options]
        answer_input = widgets.VBox(checkboxes)
    elif question.type == "numeric":
        answer_input = widgets.FloatText(value=0.0, description=ui(lang, "answer"))
    else:
        answer_input = widgets.RadioButtons(options=[(o, i) for i, o in enumerate(question.options)],
                                            value=None, layout=layout)
    submit = widgets.Button(description=ui(lang, "submit"), button_style="primary")
    feedback = widgets.HTML("")
    header.value = WRAP_LONG_OPTIONS + header.value
    container = widgets.VBox([header, answer_input, submit, feedback],
                             layout=widgets.Layout(margin="0 0 1.5em 0"))
    container.add_class("minift-quiz")
    quiz_widget = QuizWidget(question, container, answer_input, submit, feedback, checkboxes, lang=lang)
    submit.on_click(quiz_widget.on_submit)
    return quiz_widget


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def show(chapter, text: bool = False, lang: str = "en"):
    """Show a chapter's quiz: widgets in a notebook, else (or with text=True) plain text.
    ``lang="zh"`` shows the Chinese version (English where a translation is missing). The widgets'
    answers are recorded in this kernel for report(chapter); nothing is stored anywhere else."""
    text_quiz = text_version(chapter, lang=lang)
    if text or not _in_notebook():
        print(text_quiz)
        return None
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:
        print(text_quiz)
        return None
    from .quiz_review import watch
    quiz_widgets = [build_widget(q, lang=lang) for q in load_bank(chapter)]
    watch(normalise_chapter(chapter), quiz_widgets)
    box = widgets.VBox([w.container for w in quiz_widgets])
    bundle = box._repr_mimebundle_() or {}
    bundle["text/plain"] = text_quiz      # what a static viewer (GitHub, nbviewer) shows instead
    display(bundle, raw=True)
    return None        # nothing for the notebook to echo after the widgets


def report(chapter, answers: dict | None = None, lang: str = "en"):
    """The student's score per chapter and which chapter to revisit, from the answers given in the
    widgets of show(chapter) in this kernel, or from ``answers`` ({question id: answer}, the text
    fallback). See quiz_review.report."""
    from .quiz_review import report as _report
    return _report(chapter, answers=answers, lang=lang)


__all__ = ["Question", "Feedback", "QuizWidget", "QuizBankError", "load_bank", "available_chapters",
           "get_question", "check", "show", "build_widget", "text_version", "parse_question", "report"]


if __name__ == "__main__":          # python -m minift.course.quiz export --chapter 09 --format markdown
    from minift.course.quiz_export import main
    raise SystemExit(main())

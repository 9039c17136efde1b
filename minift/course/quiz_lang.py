"""Languages of the quizzes: a bank question may carry a Chinese version, shown with ``lang="zh"``.

A question's translation is one optional nested object, ``"zh"``, beside the English fields:

    "zh": {
        "prompt":         the question in Chinese,
        "options":        one per English option, same order (choice questions; truefalse questions
                          have none: their options are shown as 正确 / 错误),
        "explanations":   one per option, same order (numeric: one string),
        "mistakes":       numeric only: one message per English mistake, same order,
        "measured_where": the chapter section the question points to
    }

Every field is optional: what is missing is shown in English (the fallback). The answer is NOT part of
the translation (a "correct" inside "zh" is refused): the Chinese twin is graded by the same
``correct`` as the English one, so the two versions can never disagree on the answer.

This module holds the parts of the engine that depend on the language: checking a translation
(``parse_translation``), swapping it in (``localise``), the fixed words of the interface (``ui``) and
the feedback headlines (``translate_message``). It does not import quiz.py, which imports it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

LANGS = ("en", "zh")
TRANSLATION_FIELDS = ("prompt", "options", "explanations", "mistakes", "measured_where")


@dataclass(frozen=True)
class Translation:
    """A question's text in another language; None (or a None item) = use the English text."""

    prompt: str | None = None
    options: tuple | None = None
    explanations: tuple | None = None
    mistakes: tuple | None = None
    measured_where: str | None = None


def check_lang(lang) -> str:
    """"en" or "zh"; anything else is a ValueError that lists the languages."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    return lang


def _text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def parse_translation(raw, qtype: str, n_options: int, n_mistakes: int, fail) -> Translation:
    """Check a question's "zh" object against its English twin; ``fail(problem)`` raises."""
    if not isinstance(raw, dict):
        fail(f"zh must be a JSON object with some of {TRANSLATION_FIELDS}, got {type(raw).__name__}")
    if "correct" in raw:
        fail("zh must not carry 'correct': the answer is shared with the English question")
    unknown = set(raw) - set(TRANSLATION_FIELDS)
    if unknown:
        fail(f"zh has unknown fields {sorted(unknown)}; allowed: {list(TRANSLATION_FIELDS)}")
    for name in ("prompt", "measured_where"):
        if name in raw and not _text(raw[name]):
            fail(f"zh.{name} must be a non-empty string")
    options = raw.get("options")
    if options is not None:
        if qtype in ("truefalse", "numeric"):
            fail(f"a {qtype} question has no zh.options (truefalse options are shown as 正确 / 错误)")
        if not isinstance(options, list) or len(options) != n_options or not all(_text(o) for o in options):
            fail(f"zh.options must be a list of {n_options} non-empty strings, one per English option, "
                 f"got {options!r}")
        if len(set(options)) != len(options):
            fail("two zh.options have the same text")
        options = tuple(options)
    explanations = raw.get("explanations")
    if explanations is not None:
        if qtype == "numeric":
            if isinstance(explanations, list) and len(explanations) == 1:
                explanations = explanations[0]
            if not _text(explanations):
                fail("zh.explanations of a numeric question must be one non-empty string")
            explanations = (explanations,)
        else:
            if not isinstance(explanations, list) or len(explanations) != n_options or \
                    not all(_text(e) for e in explanations):
                fail(f"zh.explanations must be a list of {n_options} non-empty strings, one per option")
            explanations = tuple(explanations)
    mistakes = raw.get("mistakes")
    if mistakes is not None:
        if qtype != "numeric":
            fail("only numeric questions have zh.mistakes")
        if not isinstance(mistakes, list) or len(mistakes) != n_mistakes or not all(_text(m) for m in mistakes):
            fail(f"zh.mistakes must be a list of {n_mistakes} non-empty strings, one per English mistake")
        mistakes = tuple(mistakes)
    return Translation(prompt=raw.get("prompt"), options=options, explanations=explanations,
                       mistakes=mistakes, measured_where=raw.get("measured_where"))


TRUE_FALSE_ZH = ("正确", "错误")


def localise(question, lang: str):
    """The question with its ``lang`` text swapped in, field by field; English where a field is missing.
    (The id, type, answer and tolerances never change, so grading is the same in every language.)"""
    lang = check_lang(lang)
    if lang == "en":
        return question
    zh = getattr(question, "zh", None) or Translation()
    changes = {}
    if zh.prompt:
        changes["prompt"] = zh.prompt
    if question.type == "truefalse":
        changes["options"] = TRUE_FALSE_ZH
    elif zh.options:
        changes["options"] = zh.options
    if zh.explanations:
        changes["explanations"] = zh.explanations
    if zh.mistakes:
        changes["mistakes"] = tuple((m[0], text, *m[2:]) for m, text in zip(question.mistakes, zh.mistakes))
    if zh.measured_where:
        changes["measured_where"] = zh.measured_where
    return dataclasses.replace(question, **changes) if changes else question


# --- the fixed words of the interface --------------------------------------------------------------

UI = {
    "en": {
        "types": {"single": "single choice", "multiple": "multiple choice (choose every correct option)",
                  "truefalse": "true or false", "numeric": "numeric answer"},
        "submit": "Submit", "choose_first": "Choose an option first.", "answer": "answer:",
        "article": "article section {s}", "article_short": "article §{s}",
        "measured": "measured in chapter {c}", "title": "Quiz for chapter {c} ({n} questions). "
                                                        "Answer a question with minift.quiz.check(question_id, answer):",
        "howto": "  single choice: an option number; multiple choice: a list of option numbers; "
                 "true/false: True or False; numeric: a number.",
    },
    "zh": {
        "types": {"single": "单选题", "multiple": "多选题（选出所有正确选项）", "truefalse": "判断题",
                  "numeric": "数值题"},
        "submit": "提交", "choose_first": "请先选择一个选项。", "answer": "答案：",
        "article": "文章第 {s} 节", "article_short": "文章 §{s}",
        "measured": "测量见第 {c} 章",
        "title": "第 {c} 章测验（共 {n} 题）。用 minift.quiz.check(题号, 答案, lang=\"zh\") 作答：",
        "howto": "  单选题填选项编号；多选题填选项编号的列表；判断题填 True 或 False；数值题填一个数。",
    },
}


def ui(lang: str, key: str, **values) -> str:
    text = UI[check_lang(lang)][key]
    return text.format(**values) if values else text


def type_name(lang: str, qtype: str) -> str:
    return UI[check_lang(lang)]["types"][qtype]


# --- feedback headlines -----------------------------------------------------------------------------
# check() builds its headline in English; for zh each known form is rewritten. A form not listed here
# (say, a message added to the engine later) stays English: the fallback, never a wrong translation.

_N = r"(-?[\d,.]+(?:e[+-]?\d+)?)"
_ZH_MESSAGES = [
    (r"✅ Correct\.", lambda m: "✅ 正确。"),
    (rf"✅ Correct: {_N}\.", lambda m: f"✅ 正确：{m[1]}。"),
    (r"❌ Not quite\. Read why, then try again\.", lambda m: "❌ 不对。先看看下面的解释，再试一次。"),
    (r"❌ (Partly right|Not quite): (\d+) of your choices (?:is|are) correct(?:, (\d+) (?:is|are) wrong)?"
     r"(?:, you missed (\d+) correct options?)?\.",
     lambda m: ("❌ 部分正确：" if m[1] == "Partly right" else "❌ 不对：") + f"你选对了 {m[2]} 项"
               + (f"，选错了 {m[3]} 项" if m[3] else "") + (f"，漏选了 {m[4]} 个正确选项" if m[4] else "") + "。"),
    (rf"❌ {_N} is not right\. (.*)", lambda m: f"❌ {m[1]} 不对。{m[2]}"),
    (rf"❌ Almost: {_N} looks like a fraction; the question asks for a percentage\. Your number is right, "
     rf"written as {_N}; enter it that way\.",
     lambda m: f"❌ 差一点：{m[1]} 像是小数（比例），题目要的是百分数。你的数没错，写成 {m[2]} 再填一次。"),
    (rf"❌ Almost: {_N} looks like a percentage; the question asks for a fraction between 0 and 1\. Your "
     rf"number is right, written as {_N}; enter it that way\.",
     lambda m: f"❌ 差一点：{m[1]} 像是百分数，题目要的是 0 到 1 之间的小数。你的数没错，写成 {m[2]} 再填一次。"),
    (rf"❌ {_N} is too (high|low)(?: \(off by a factor of about {_N}\))?\. Re-derive it step by step and try again\.",
     lambda m: f"❌ {m[1]} {'偏大' if m[2] == 'high' else '偏小'}"
               + (f"（差了大约 {m[3]} 倍）" if m[3] else "") + "。请一步一步重新推导，再试一次。"),
    (r"❌ No answer: got None\..*", lambda m: "❌ 没有答案：得到的是 None。如果答案由函数计算，函数必须 "
                                              "`return` 这个数（只 print 不够）。"),
    (r"❌ Expected one number, got an array of shape (.*?)\..*",
     lambda m: f"❌ 这里要一个数，得到的却是形状为 {m[1]} 的数组。请把它化成题目要的那一个数。"),
]


def translate_message(message: str, lang: str) -> str:
    """A feedback headline of check() in ``lang``; unknown forms stay English."""
    if check_lang(lang) == "en":
        return message
    for pattern, build in _ZH_MESSAGES:
        match = re.fullmatch(pattern, message, flags=re.S)
        if match:
            return build(match)
    return message


def translate_feedback(feedback, lang: str):
    """The same Feedback with its headline in ``lang`` (explanations are already localised)."""
    if check_lang(lang) == "en":
        return feedback
    return dataclasses.replace(feedback, message=translate_message(feedback.message, lang))

"""python -m minift.course.quiz export: a bank as a printed exam (Markdown) or an LMS import (JSON),
with or without the answers, in English or Chinese."""

import json
import subprocess
import sys

import pytest

from minift.course import quiz, quiz_export, quiz_lang

CHAPTERS = quiz.available_chapters()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "minift.course.quiz", *args], capture_output=True, text=True,
                          encoding="utf-8", timeout=120)


def test_markdown_exam_without_answers_gives_nothing_away():
    text = quiz_export.export("09", "markdown")
    assert text.startswith("# Quiz, chapter 09") and "Name:" in text
    for question in quiz.load_bank("09"):
        assert question.prompt in text and question.id in text
        for letter, option in zip("ABCDE", question.options):
            assert f"- {letter}. {option}" in text
        for explanation in question.explanations:
            assert explanation not in text
        for _value, message, *_ in question.mistakes:
            assert message not in text
    assert "✅" not in text and "Answer: **" not in text


def test_markdown_answer_key_marks_the_right_options_and_explains_every_one():
    text = quiz_export.export("09", "markdown", answers=True)
    for question in quiz.load_bank("09"):
        for explanation in question.explanations:
            assert explanation in text
        if question.type != "numeric":
            letters = ", ".join("ABCDE"[i] for i in question.correct)
            assert f"**Answer: {letters}**" in text
    assert "**4,194,304**" in text                        # a numeric answer, formatted
    assert "measured in chapter 04" in text


def test_json_without_answers_has_no_answer_fields():
    payload = json.loads(quiz_export.export("09", "json"))
    assert payload["chapter"] == "09" and payload["with_answers"] is False and payload["lang"] == "en"
    assert [q["id"] for q in payload["questions"]] == [q.id for q in quiz.load_bank("09")]
    for record in payload["questions"]:
        assert not {"correct", "explanations", "explanation", "mistakes"} & set(record)


def test_json_with_answers_matches_the_bank_and_grades_right():
    payload = json.loads(quiz_export.export("09", "json", answers=True))
    for record in payload["questions"]:
        question = quiz.get_question(record["id"])
        if question.type == "numeric":
            assert record["correct"] == question.correct and record["explanation"] == question.explanations[0]
            assert quiz.check(record["id"], record["correct"]["value"]).correct
        else:
            assert record["correct"] == list(question.correct)
            assert record["correct_letters"] == [record["letters"][i] for i in record["correct"]]
            assert record["explanations"] == list(question.explanations)


def test_chinese_export_uses_the_chinese_text():
    text = quiz_export.export("09", "markdown", answers=True, lang="zh")
    assert text.startswith("# 第 09 章测验（含答案）")
    for question in quiz.load_bank("09"):
        zh = quiz_lang.localise(question, "zh")
        assert zh.prompt in text and question.prompt not in text
        assert all(e in text for e in zh.explanations)
    payload = json.loads(quiz_export.export("09", "json", lang="zh"))
    assert payload["lang"] == "zh" and payload["questions"][0]["prompt"] == quiz.load_bank("09")[0].zh.prompt


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_bank_exports_in_both_formats(chapter):
    for answers in (False, True):
        assert quiz.load_bank(chapter)[0].prompt in quiz_export.export(chapter, "markdown", answers=answers)
        assert len(json.loads(quiz_export.export(chapter, "json", answers=answers))["questions"]) == \
            len(quiz.load_bank(chapter))


def test_a_bank_without_translation_exports_in_english_under_zh():
    first = quiz.load_bank("00")[0]
    if first.zh is None:
        assert first.prompt in quiz_export.export("00", "markdown", lang="zh")


@pytest.mark.parametrize("kwargs, error", [({"fmt": "pdf"}, ValueError), ({"answers": "yes"}, TypeError),
                                           ({"lang": "fr"}, ValueError)])
def test_bad_arguments_are_refused(kwargs, error):
    with pytest.raises(error):
        quiz_export.export("09", **kwargs)


def test_the_command_line_prints_json_for_an_lms():
    done = run_cli("export", "--chapter", "09", "--format", "json", "--answers")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["with_answers"] is True


def test_the_command_line_prints_a_chinese_exam():
    done = run_cli("export", "--chapter", "9", "--format", "markdown", "--lang", "zh")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# 第 09 章测验") and "姓名" in done.stdout


@pytest.mark.parametrize("args, message", [
    (("export", "--chapter", "77"), "available"),
    (("export", "--chapter", "09", "--format", "pdf"), "invalid choice"),
    (("export",), "--chapter"),
])
def test_the_command_line_refuses_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit) as exited:            # main() is what `python -m` runs (tested above)
        quiz_export.main(list(args))
    assert exited.value.code == 2 and message in capsys.readouterr().err

"""minift.course.quiz: every bank is valid, check() grades each question type, the widgets work headlessly."""

import importlib.util
import json

import pytest

from minift.course import quiz

CHAPTERS = quiz.available_chapters()


def question_of_type(qtype):
    for chapter in CHAPTERS:
        for question in quiz.load_bank(chapter):
            if question.type == qtype:
                return question
    pytest.skip(f"no {qtype} question in any bank")


def a_wrong_option(question):
    return next(i for i in range(len(question.options)) if i not in question.correct)


# --- the banks --------------------------------------------------------------------------------------

def test_the_first_chapters_have_banks():
    assert {"00", "01", "02"} <= set(CHAPTERS)
    assert len(quiz.load_bank("00")) >= 3
    assert len(quiz.load_bank("01")) >= 8
    assert len(quiz.load_bank(2)) >= 6                 # a number works too


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_bank_is_valid(chapter):
    questions = quiz.load_bank(chapter)
    assert len({q.id for q in questions}) == len(questions)
    for question in questions:
        assert question.chapter == chapter and question.id.startswith(chapter + "-")
        assert question.type in quiz.TYPES and question.prompt and question.article_section
        if question.type == "numeric":
            assert question.options == () and len(question.explanations) == 1
            assert quiz.check(question.id, question.correct["value"]).correct
        else:
            assert len(question.explanations) == len(question.options) >= 2
            answer = list(question.correct) if question.type == "multiple" else question.correct[0]
            if question.type == "truefalse":
                answer = question.correct[0] == 0
            assert quiz.check(question.id, answer).correct


def test_ids_are_unique_across_banks():
    ids = [q.id for chapter in CHAPTERS for q in quiz.load_bank(chapter)]
    assert len(ids) == len(set(ids))


def test_banks_cover_every_question_type():
    types = {q.type for chapter in CHAPTERS for q in quiz.load_bank(chapter)}
    assert types == set(quiz.TYPES)


def test_correct_answers_are_not_always_the_first_option():
    firsts = [q.correct[0] == 0 for c in CHAPTERS for q in quiz.load_bank(c) if q.type in ("single", "multiple")]
    assert sum(firsts) < len(firsts) / 2


@pytest.mark.parametrize("qid, value", [("02-gpt2-block", 12 * 768 ** 2),
                                        ("02-lora-gpt2", 12 * 2 * 4 * (768 + 768)),
                                        ("02-ffn-share", 8 / 12)])
def test_numeric_answers_are_the_right_numbers(qid, value):
    assert quiz.check(qid, value).correct


def good_question(**changes):
    raw = {"id": "99-x", "chapter": "99", "type": "single", "prompt": "p?", "options": ["a", "b"],
           "correct": [0], "explanations": ["yes", "no"], "article_section": "1.1"}
    raw.update(changes)
    return raw


@pytest.mark.parametrize("changes, message", [
    ({"explanations": ["only one"]}, "explanation"),
    ({"correct": [2]}, "outside"),
    ({"correct": [0, 1]}, "exactly one"),
    ({"type": "essay"}, "essay"),
    ({"id": "01-x"}, "'99-'"),
    ({"type": "truefalse"}, "True"),
    ({"type": "numeric", "options": [], "explanations": "why", "correct": {"value": 1}}, "tolerance"),
    ({"type": "numeric", "options": [], "explanations": "why",
      "correct": {"value": 1, "tolerance": 0}, "mistakes": [{"value": 1, "message": "m"}]}, "within"),
])
def test_validation_names_the_bad_question(changes, message):
    with pytest.raises(quiz.QuizBankError, match=message) as raised:
        quiz.parse_question(good_question(**changes), "99", where="quizzes/99.json, question 0")
    assert "quizzes/99.json" in str(raised.value)


def test_duplicate_ids_are_rejected(tmp_path, monkeypatch):
    folder = tmp_path / "minift" / "quizzes"
    folder.mkdir(parents=True)
    (folder / "99.json").write_text(json.dumps([good_question(), good_question()]))

    class FakeFiles:
        def __truediv__(self, name):
            return tmp_path / "minift" / name

    monkeypatch.setattr(quiz.resources, "files", lambda package: FakeFiles())
    quiz._load_bank.cache_clear()
    try:
        with pytest.raises(quiz.QuizBankError, match="'99-x' is used twice"):
            quiz.load_bank("99")
    finally:
        quiz._load_bank.cache_clear()


def test_unknown_chapter_lists_the_available_ones():
    with pytest.raises(ValueError, match="available"):
        quiz.load_bank("77")


# --- check() ----------------------------------------------------------------------------------------

def test_single_choice_right_and_wrong():
    question = question_of_type("single")
    right = quiz.check(question.id, question.correct[0])
    assert right.correct and right.message.startswith("✅")
    assert right.explanations == (f"{question.options[question.correct[0]]} — "
                                  f"{question.explanations[question.correct[0]]}",)
    wrong_index = a_wrong_option(question)
    wrong = quiz.check(question.id, wrong_index)
    assert not wrong.correct and wrong.chosen == (wrong_index,)
    assert question.explanations[wrong_index] in wrong.explanations[0]
    assert quiz.check(question.id, [question.correct[0]]).correct        # a one-item list is fine


def test_check_is_pure():
    question = question_of_type("single")
    assert quiz.check(question.id, 0) == quiz.check(question.id, 0)


def test_multiple_choice_right_partial_and_wrong():
    question = question_of_type("multiple")
    right = list(question.correct)
    assert quiz.check(question.id, right).correct
    assert quiz.check(question.id, tuple(reversed(right))).correct         # order does not matter
    partial = quiz.check(question.id, right[:1])
    assert not partial.correct and "Partly right" in partial.message and "missed" in partial.message
    wrong_index = a_wrong_option(question)
    extra = quiz.check(question.id, right + [wrong_index])
    assert not extra.correct and "1 is wrong" in extra.message
    assert len(extra.explanations) == len(right) + 1
    only_wrong = quiz.check(question.id, [wrong_index])
    assert not only_wrong.correct and "Not quite" in only_wrong.message


def test_true_false_accepts_bools_and_their_names_but_not_0_or_1():
    import numpy as np

    question = question_of_type("truefalse")
    truth = question.correct[0] == 0
    assert quiz.check(question.id, truth).correct
    assert not quiz.check(question.id, not truth).correct
    assert quiz.check(question.id, np.bool_(truth)).correct
    assert quiz.check(question.id, "True" if truth else "False").correct
    for number in (0, 1):              # 0 used to mean option 0, "True", although 0 is False in Python
        with pytest.raises(ValueError, match="answer True or False"):
            quiz.check(question.id, number)


def test_numeric_within_and_outside_tolerance():
    question = quiz.get_question("02-ffn-share")             # tolerance 0.01 around 2/3
    assert quiz.check(question.id, 0.67).correct
    assert quiz.check(question.id, 2 / 3).correct
    assert quiz.check(question.id, 2 / 3).explanations == question.explanations
    outside = quiz.check(question.id, 0.7)
    assert not outside.correct and "too high" in outside.message
    assert outside.explanations == ()                         # the derivation is not given away
    exact = quiz.get_question("02-gpt2-block")                # tolerance 0
    assert not quiz.check(exact.id, 7077889).correct


def test_relative_tolerance():
    question = quiz.get_question("02-lora-gpt3")               # rel_tolerance 0.001
    value = question.correct["value"]
    assert quiz.check(question.id, value * 1.0005).correct
    assert not quiz.check(question.id, value * 1.01).correct


def test_numeric_known_mistake_is_named():
    feedback = quiz.check("02-lora-gpt2", 12 * 2 * 4 * 768 * 768)
    assert not feedback.correct and "r x d_in x d_out" in feedback.message
    far = quiz.check("02-lora-gpt2", 1_000_000)
    assert "too high" in far.message and "factor" in far.message


@pytest.mark.parametrize("qid_type, answer, message", [
    ("single", 99, "out of range"),
    ("single", -1, "out of range"),
    ("single", "a", "index"),
    ("single", 1.0, "index"),
    ("single", [0, 1], "one answer"),
    ("multiple", [0, 99], "out of range"),
    ("multiple", [], "at least one"),
    ("multiple", ["a"], "index"),
    ("truefalse", 2, "True or False"),
    ("truefalse", 0, "True or False"),
    ("numeric", "147,456", "number"),
    ("numeric", float("nan"), "finite"),
    ("numeric", True, "number"),
])
def test_bad_answers_raise_value_error(qid_type, answer, message):
    question = question_of_type(qid_type)
    with pytest.raises(ValueError, match=message):
        quiz.check(question.id, answer)


def test_unknown_question_id_suggests_close_ones():
    with pytest.raises(ValueError, match="did you mean"):
        quiz.check("01-sft-lrr", 0)
    with pytest.raises(ValueError, match="chapter"):
        quiz.check("77-nope", 0)
    with pytest.raises(ValueError):
        quiz.check("nodash", 0)


# --- widgets, headless ------------------------------------------------------------------------------

needs_widgets = pytest.mark.skipif(importlib.util.find_spec("ipywidgets") is None,
                                   reason="ipywidgets is not installed")


@needs_widgets
def test_single_choice_widget_drive():
    question = question_of_type("single")
    widget = quiz.build_widget(question)
    assert question.prompt in widget.container.children[0].value
    widget.submit.click()
    assert "Choose an option" in widget.feedback.value           # nothing chosen yet
    wrong_index = a_wrong_option(question)
    widget.input.value = wrong_index
    widget.submit.click()
    assert "❌" in widget.feedback.value and widget.last_feedback.correct is False
    assert question.explanations[wrong_index][:40] in widget.feedback.value.replace("&#x27;", "'")
    widget.input.value = question.correct[0]
    widget.submit.click()
    assert "✅" in widget.feedback.value and widget.last_feedback.correct


@needs_widgets
def test_multiple_choice_widget_drive():
    question = question_of_type("multiple")
    widget = quiz.build_widget(question)
    assert len(widget.checkboxes) == len(question.options)
    widget.checkboxes[question.correct[0]].value = True
    widget.submit.click()
    expected = "✅" if len(question.correct) == 1 else "Partly right"
    assert expected in widget.feedback.value
    for i in question.correct:
        widget.checkboxes[i].value = True
    widget.submit.click()
    assert "✅ Correct" in widget.feedback.value


@needs_widgets
def test_true_false_widget_uses_radio_buttons():
    import ipywidgets

    question = question_of_type("truefalse")
    widget = quiz.build_widget(question)
    assert isinstance(widget.input, ipywidgets.RadioButtons)
    assert [label for label, _ in widget.input.options] == ["True", "False"]
    widget.input.value = question.correct[0]
    assert widget.answer() is (question.correct[0] == 0)          # the widget hands check() a bool
    widget.submit.click()
    assert "✅" in widget.feedback.value
    widget.input.value = 1 - question.correct[0]
    widget.submit.click()
    assert "❌" in widget.feedback.value


@needs_widgets
def test_numeric_widget_drive():
    import ipywidgets

    question = quiz.get_question("02-gpt2-block")
    widget = quiz.build_widget(question)
    assert isinstance(widget.input, ipywidgets.FloatText)
    widget.input.value = 4 * 768 ** 2
    widget.submit.click()
    assert "❌" in widget.feedback.value and "attention part" in widget.feedback.value
    widget.input.value = 12 * 768 ** 2
    widget.submit.click()
    assert "✅" in widget.feedback.value and "7,077,888" in widget.feedback.value


# --- text fallback ----------------------------------------------------------------------------------

@pytest.mark.parametrize("chapter", CHAPTERS)
def test_text_fallback_prints_every_question(chapter, capsys):
    quiz.show(chapter, text=True)
    out = capsys.readouterr().out
    for question in quiz.load_bank(chapter):
        assert question.id in out and question.prompt in out
        for option in question.options:
            assert option in out
    assert "minift.quiz.check(" in out


def test_show_outside_a_notebook_falls_back_to_text(capsys):
    quiz.show("00")                                  # pytest is not a Jupyter kernel
    assert "00-what-is-fine-tuning" in capsys.readouterr().out


def test_show_without_ipywidgets_falls_back_to_text(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_ipywidgets(name, *args, **kwargs):
        if name.startswith("ipywidgets"):
            raise ImportError("no ipywidgets")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(quiz, "_in_notebook", lambda: True)
    monkeypatch.setattr(builtins, "__import__", no_ipywidgets)
    quiz.show("01")
    assert "01-sft-lr" in capsys.readouterr().out


@needs_widgets
def test_show_in_a_notebook_displays_widgets_with_a_text_fallback(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(quiz, "_in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    assert quiz.show("02") is None
    (bundle, raw), = shown
    assert raw and "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == quiz.text_version("02")       # what GitHub shows without a kernel


# --- numeric answers as students enter them ----------------------------------------------------------

def test_numeric_answers_of_any_number_type():
    import numpy as np
    import torch

    for value in (2 / 3, np.float32(2 / 3), np.float64(2 / 3), torch.tensor(2 / 3), torch.tensor([2 / 3]),
                  np.array(2 / 3)):
        assert quiz.check("02-ffn-share", value).correct, repr(value)
    assert quiz.check("02-gpt2-block", torch.tensor(7077888)).correct
    assert quiz.check("02-gpt2-block", np.int64(7077888)).correct


def test_a_notebook_grade_helper_never_crashes_on_none_or_a_tensor():
    """The chapter-02 notebook grades `print(minift.quiz.check(id, answer()))`: a function that forgot
    its return, or returned a tensor, gets feedback instead of a traceback."""
    import torch

    missing = quiz.check("02-gpt2-block", None)
    assert not missing.correct and "return" in missing.message
    several = quiz.check("02-gpt2-block", torch.tensor([1.0, 2.0]))
    assert not several.correct and "one number" in several.message
    assert str(missing) and str(several)


@pytest.mark.parametrize("qid, answer, fragment", [
    ("02-ffn-share", 66.7, "looks like a percentage"),
    ("02-ffn-share", 66.67, "looks like a percentage"),
    ("02-ffn-share", 33.3, "attention's share"),                 # a known mistake, entered as a percentage
    ("02-ffn-share", 2, "ratio FFN : attention"),
    ("00-chance-level", 0.333, "looks like a fraction"),
    ("00-chance-level", 1 / 3, "looks like a fraction"),
    ("00-ignored-positions", 0.5, "looks like a fraction"),
    ("00-ignored-positions", 35, "divided by every position"),
    ("00-ignored-positions", 0.35, "divided by every position"),
    ("02-gpt2-block", 6_488_064, "output projection"),
    ("02-gpt2-block", 7_087_872, "biases"),
    ("02-lora-checkpoint-mb", 35, "rounded figure"),
    ("02-lora-checkpoint-mb", 36, "MiB"),
    ("02-lora-checkpoint-mb", 36.0, "MiB"),
    ("02-lora-checkpoint-mb", 75.5, "fp32"),
    ("04-scaling-value", 1, "integer division"),
    ("01-initial-loss", 1.585, "bits"),
])
def test_common_mistakes_are_recognised_as_entered(qid, answer, fragment):
    feedback = quiz.check(qid, answer)
    assert not feedback.correct
    assert fragment in feedback.message, feedback.message


def test_the_fraction_for_a_percentage_is_said_kindly_with_the_right_number():
    feedback = quiz.check("00-chance-level", 0.333)
    assert "33.3" in feedback.message and "enter it that way" in feedback.message
    assert quiz.check("00-chance-level", 33.3).correct and quiz.check("02-ffn-share", 0.667).correct


@pytest.mark.parametrize("changes, message", [
    ({"unit": "kg"}, "unit"),
    ({"mistakes": [{"value": 2, "message": "m", "tolerance": -1}]}, "mistakes"),
    ({"mistakes": [{"value": 2, "message": "m", "tolerance": 1, "rel_tolerance": 0.1}]}, "mistakes"),
    ({"mistakes": [{"value": 1.5, "message": "m", "tolerance": 0.6}]}, "within"),
])
def test_numeric_schema_names_bad_units_and_mistakes(changes, message):
    raw = good_question(type="numeric", options=[], explanations="why", correct={"value": 1, "tolerance": 0.1})
    raw.update(changes)
    with pytest.raises(quiz.QuizBankError, match=message):
        quiz.parse_question(raw, "99")
    with pytest.raises(quiz.QuizBankError, match="unit"):
        quiz.parse_question(good_question(unit="percent"), "99")     # a choice question has no unit


def test_a_mistake_can_have_its_own_tolerance():
    raw = good_question(type="numeric", options=[], explanations="why", correct={"value": 10, "tolerance": 0},
                        mistakes=[{"value": 20, "message": "doubled", "rel_tolerance": 0.05}])
    question = quiz.parse_question(raw, "99")
    value, message, window = question.mistakes[0]
    assert value == 20 and window == {"rel_tolerance": 0.05, "value": 20}


# --- the review's fixes in the banks --------------------------------------------------------------------

def test_lora_what_stays_follows_the_measured_activation_drop():
    question = quiz.get_question("02-lora-what-stays")
    assert question.correct == (1, 2)                   # gradients and Adam states shrink by a large factor
    activations = question.options.index("the activations saved for backward")
    assert activations not in question.correct and "31%" in question.explanations[activations]
    assert round(1 - 50.9 / 73.8, 2) == 0.31            # chapter 02's measured MiB, full vs LoRA


def test_alpha_over_r_explanation_agrees_with_chapter_04():
    question = quiz.get_question("04-alpha-over-r")
    right = question.explanations[question.correct[0]]
    assert "over-corrects" in right
    assert "Dividing by r cancels that" not in right
    # the numbers it quotes are chapter 04's stored measurement (mean ||dW|| over seeds at r = 1, 8, 32)
    import json
    from pathlib import Path
    stored = json.loads((Path(__file__).resolve().parents[2] / "results" / "04_lora_alpha_scaling.json").read_text())
    norms = stored["data"]["delta_w_norm"]["alpha / r (alpha = 16)"]
    means = [sum(seed[i] for seed in norms) / len(norms) for i in range(3)]
    for value in means:
        assert f"{value:.3f}" in right, (value, right)
    low, high = stored["data"]["growth_ci95"]["alpha / r (alpha = 16)"]
    assert f"[{low:.2f}, {high:.2f}]" in right


def test_initial_loss_asks_about_the_moment_before_any_update():
    prompt = quiz.get_question("01-initial-loss").prompt
    assert "Before the first update" in prompt and "first step" not in prompt


def test_chapter_00_asks_concepts_not_tooling():
    prompts = " ".join(q.prompt for q in quiz.load_bank("00"))
    assert "MINIFT_MODE" not in prompts and "fast" not in prompts
    with pytest.raises(ValueError):
        quiz.get_question("00-fast-mode")


def test_no_two_questions_ask_the_same_thing():
    import difflib

    questions = [q for chapter in CHAPTERS for q in quiz.load_bank(chapter)]
    for a_index, a in enumerate(questions):
        for b in questions[a_index + 1:]:
            text_a, text_b = a.prompt + " ".join(a.options), b.prompt + " ".join(b.options)
            ratio = difflib.SequenceMatcher(None, text_a, text_b).ratio()
            assert ratio < 0.75, (a.id, b.id, round(ratio, 2))
    ids = {q.id for q in questions}
    # the pairs the review found: one of each is kept
    for pair in (("03-decompose-every-matrix", "04-every-matrix"), ("03-pretrained-frozen", "04-what-lora-does"),
                 ("02-lora-checkpoint-mb", "04-gpt3-adapter-mb")):
        assert len(ids & set(pair)) == 1, pair


def test_every_option_of_every_question_is_explained():
    for chapter in CHAPTERS:
        for question in quiz.load_bank(chapter):
            if question.type == "numeric":
                assert question.explanations[0].strip()
            else:
                assert len(question.explanations) == len(question.options)
                assert all(len(text.strip()) > 10 for text in question.explanations), question.id


def test_checkbox_labels_keep_the_box_before_the_text():
    """ipywidgets 8 builds a checkbox label as <input><span>text</span>, a radio label as text<input>:
    only the radio labels may be reversed, or the boxes end up after their text."""
    css = quiz.WRAP_LONG_OPTIONS
    radio = css[css.index(".widget-radio-box label"):].split("}")[0]
    checkbox = css[css.index(".widget-checkbox label"):].split("}")[0]
    assert "row-reverse" in radio
    assert "row-reverse" not in checkbox and "flex-direction: row;" in checkbox

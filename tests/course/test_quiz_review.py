"""Chapter 09's review bank (every key point of article section 5, numbers from chapter 02's formulas),
its Chinese twin, the zh display with English fallback, and the per-chapter self-assessment."""

import itertools

import pytest

from minift import ModelConfig
from minift.analysis import memory, params
from minift.course import quiz, quiz_lang, quiz_review

BANK = quiz.load_bank("09")
COURSE_CHAPTERS = {"00", "01", "02", "03", "04", "05", "06", "07"}

# the published shapes (LLaMA: Touvron et al. 2023; ChatGLM-6B: THUDM's config, as in chapter 06;
# GPT-3: Brown et al. 2020, table 2.1, as in chapter 02's explorer)
LLAMA_7B = ModelConfig(vocab_size=32000, d_model=4096, n_layers=32, n_heads=32, d_ff=11008, max_len=2048,
                       tie_embeddings=False)
LLAMA_7B_PUBLISHED = 6_738_415_616          # SwiGLU and RMSNorm: counted exactly in chapter 02
CHATGLM_6B = ModelConfig(vocab_size=130528, d_model=4096, n_layers=28, n_heads=32, d_ff=16384, max_len=2048,
                         tie_embeddings=True)
GPT3 = ModelConfig(vocab_size=50257, d_model=12288, n_layers=96, n_heads=96, d_ff=4 * 12288, max_len=2048,
                   tie_embeddings=True)


def right_answer(question):
    if question.type == "numeric":
        return question.correct["value"]
    if question.type == "multiple":
        return list(question.correct)
    if question.type == "truefalse":
        return question.correct[0] == 0
    return question.correct[0]


def wrong_answer(question):
    if question.type == "numeric":
        return question.correct["value"] * 10 + 1
    wrong = next(i for i in range(len(question.options)) if i not in question.correct)
    if question.type == "truefalse":
        return wrong == 0
    return [wrong] if question.type == "multiple" else wrong


# --- coverage ------------------------------------------------------------------------------------------

def test_every_key_point_of_article_section_5_has_a_question():
    sections = {q.article_section for q in BANK}
    assert {f"5.{n}" for n in range(1, 11)} <= sections


# each common mistake the article lists in section 5 -> the question that catches it
MISTAKES = {
    "SFT needs a lot of training time and data": ("09-sft-mistakes", 0),
    "SFT copies ALL source parameters": ("09-sft-mistakes", 1),
    "a few dozen labelled examples are enough": ("09-sft-mistakes", 3),
    "ImageNet pre-training + detector is not SFT": ("09-imagenet-detector", None),
    "training GPT-3 (from scratch) is SFT": ("09-sft-tasks", 0),
    "v1 can do NER well": ("09-pt-v1-v2", 1),
    "v1 matches full fine-tuning": ("09-pt-v1-v2", 2),
    "v2 is poor at NLU": ("09-pt-v1-v2", 3),
    "v2 tunes discrete prefixes": ("09-pt-v2-discrete", 0),
    "a layer's prefix is the previous layer's output": ("09-pt-v2-layers", 0),
    "LoRA decomposes every weight matrix": ("09-lora-every-matrix", 0),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_common_mistake_is_a_wrong_option_with_its_explanation(mistake):
    qid, option = MISTAKES[mistake]
    question = quiz.get_question(qid)
    if option is not None:
        assert option not in question.correct
        answer = [option] if question.type == "multiple" else (option == 0 if question.type == "truefalse" else option)
        assert not quiz.check(qid, answer).correct


def test_the_big_ideas_of_chapters_00_to_07_each_have_questions():
    assert {q.measured_in for q in BANK} == COURSE_CHAPTERS


def test_every_question_points_to_a_chapter_and_section_and_explains_every_option():
    for question in BANK:
        assert question.measured_in in COURSE_CHAPTERS and question.measured_where.strip()
        assert all(e.strip() for e in question.explanations)
        if question.type != "numeric":
            assert len(question.explanations) == len(question.options)


def test_the_review_bank_has_every_question_type_and_varied_right_options():
    assert {q.type for q in BANK} == set(quiz.TYPES)
    firsts = [q.correct[0] for q in BANK if q.type in ("single", "multiple")]
    assert firsts.count(0) < len(firsts) / 4 and len(set(firsts)) >= 3


# --- numbers on real configurations, from chapter 02's formulas ------------------------------------------

def numbers():
    lora_llama = params.lora_parameters(LLAMA_7B, 8, ("q", "v"))
    lora_gpt3 = params.lora_parameters(GPT3, 4, ("q", "v"))
    n_gpt3 = params.transformer_parameters(GPT3)
    n_chatglm = params.transformer_parameters(CHATGLM_6B)
    prompt_chatglm = params.prefix_parameters(CHATGLM_6B, 128, reparam=False)
    lora_training = memory.mixed_precision_bytes(n_gpt3 + lora_gpt3, n_trainable=lora_gpt3)
    return {
        "09-lora-llama-count": lora_llama,
        "09-lora-llama-percent": 100 * lora_llama / LLAMA_7B_PUBLISHED,
        "09-gpt3-lora-percent": 100 * lora_gpt3 / n_gpt3,
        "09-gpt3-lora-memory": lora_training["total"] / 1e9,
        "09-chatglm-ptv2-count": prompt_chatglm,
        "09-chatglm-ptv2-percent": 100 * prompt_chatglm / n_chatglm,
        "09-chatglm-freeze-count": params.freeze_parameters(CHATGLM_6B, 2, ("ffn",)),
        "09-chatglm-ffn-share": params.ffn_parameters(CHATGLM_6B) / params.block_parameters(CHATGLM_6B),
    }


def test_every_numeric_question_is_computed_here():
    assert set(numbers()) == {q.id for q in BANK if q.type == "numeric"}


@pytest.mark.parametrize("qid", sorted(numbers()))
def test_numeric_answers_are_the_formulas_numbers(qid):
    value = numbers()[qid]
    question = quiz.get_question(qid)
    assert quiz.check(qid, value).correct
    assert quiz._within(question.correct["value"], {**question.correct, "value": value})
    assert not quiz.check(qid, value * 1.5).correct


def test_the_numbers_quoted_in_prompts_are_the_formulas_numbers():
    assert params.transformer_parameters(GPT3) == 174_604_259_328          # the 09-gpt3-* prompts
    assert params.transformer_parameters(CHATGLM_6B) == 6_181_675_008       # 09-chatglm-ptv2-percent
    assert params.lora_parameters(GPT3, 4, ("q", "v")) == 18_874_368
    assert "174,604,259,328" in quiz.get_question("09-gpt3-lora-percent").prompt
    assert "6,181,675,008" in quiz.get_question("09-chatglm-ptv2-percent").prompt


@pytest.mark.parametrize("qid, value, words", [
    ("09-lora-llama-count", 2_097_152, "one matrix"),
    ("09-lora-llama-count", 32 * 2 * 8 * 4096 * 4096, "r x d_in x d_out"),
    ("09-chatglm-ptv2-count", 128 * 4096, "input only"),
    ("09-chatglm-freeze-count", 2 * params.attention_parameters(CHATGLM_6B), "attention"),
    ("09-chatglm-freeze-count", params.ffn_parameters(CHATGLM_6B), "one layer"),
    ("09-gpt3-lora-memory", memory.mixed_precision_bytes(params.transformer_parameters(GPT3))["total"] / 1e9,
     "full fine-tuning"),
])
def test_the_usual_wrong_numbers_are_named(qid, value, words):
    feedback = quiz.check(qid, value)
    assert not feedback.correct and words in feedback.message


def test_a_percentage_given_as_a_fraction_is_recognised():
    value = numbers()["09-lora-llama-percent"]
    assert "looks like a fraction" in quiz.check("09-lora-llama-percent", value / 100).message


# --- the Chinese twin --------------------------------------------------------------------------------------

def test_every_question_is_complete_in_chinese():
    for question in BANK:
        zh = question.zh
        assert zh is not None and zh.prompt and zh.explanations and zh.measured_where, question.id
        assert len(zh.explanations) == len(question.explanations)
        if question.type in ("single", "multiple"):
            assert zh.options is not None and len(zh.options) == len(question.options)
        if question.mistakes:
            assert zh.mistakes is not None and len(zh.mistakes) == len(question.mistakes)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh.prompt)             # written in Chinese


def every_answer(question):
    if question.type == "numeric":
        return [question.correct["value"], question.correct["value"] * 3 + 1] + [m[0] for m in question.mistakes]
    if question.type == "truefalse":
        return [True, False]
    indices = range(len(question.options))
    if question.type == "single":
        return list(indices)
    return [list(s) for n in range(1, len(question.options) + 1) for s in itertools.combinations(indices, n)]


@pytest.mark.parametrize("question", BANK, ids=lambda q: q.id)
def test_the_chinese_twin_has_the_same_options_and_the_same_answer(question):
    zh = quiz_lang.localise(question, "zh")
    assert len(zh.options) == len(question.options) and zh.correct == question.correct
    assert zh.prompt != question.prompt
    for answer in every_answer(question):
        english, chinese = quiz.check(question.id, answer), quiz.check(question.id, answer, lang="zh")
        assert english.correct == chinese.correct and english.chosen == chinese.chosen
        assert len(english.explanations) == len(chinese.explanations)


def test_chinese_feedback_is_in_chinese():
    question = quiz.get_question("09-lora-b-zero")
    right = quiz.check(question.id, question.correct[0], lang="zh")
    assert right.message == "✅ 正确。" and question.zh.explanations[question.correct[0]] in right.explanations[0]
    partly = quiz.check("09-sft-mistakes", [2], lang="zh")
    assert partly.message.startswith("❌ 部分正确") and "漏选了 1" in partly.message
    named = quiz.check("09-chatglm-ptv2-count", 128 * 4096, lang="zh")
    assert "只在输入层" in named.message and named.message.startswith("❌ 524,288 不对")
    far = quiz.check("09-chatglm-ptv2-count", 10, lang="zh")
    assert "偏小" in far.message


def test_an_unknown_feedback_form_falls_back_to_english():
    assert quiz_lang.translate_message("❌ Something new.", "zh") == "❌ Something new."


def fake(raw_changes=None, **zh):
    raw = {"id": "99-x", "chapter": "99", "type": "single", "prompt": "Which?", "options": ["a", "b", "c"],
           "correct": [1], "explanations": ["no a", "yes b", "no c"], "article_section": "-"}
    if zh:
        raw["zh"] = zh
    raw.update(raw_changes or {})
    return quiz.parse_question(raw, "99", where="quizzes/99.json, question 0")


def test_english_is_the_fallback_where_a_translation_is_missing():
    plain = quiz_lang.localise(fake(), "zh")
    assert plain.prompt == "Which?" and plain.options == ("a", "b", "c")
    partial = quiz_lang.localise(fake(prompt="哪个？"), "zh")
    assert partial.prompt == "哪个？" and partial.options == ("a", "b", "c") and partial.explanations[1] == "yes b"


@pytest.mark.parametrize("zh, message", [
    ({"prompt": "哪个？", "correct": [0]}, "must not carry 'correct'"),
    ({"options": ["甲", "乙"]}, "3 non-empty strings"),
    ({"explanations": ["否", "是"]}, "3 non-empty strings"),
    ({"options": ["甲", "甲", "丙"]}, "same text"),
    ({"title": "x"}, "unknown fields"),
    ({"prompt": ""}, "non-empty"),
    ({"mistakes": ["x"]}, "only numeric"),
])
def test_a_bad_translation_is_refused_with_the_question_named(zh, message):
    with pytest.raises(quiz.QuizBankError, match=message) as raised:
        fake(**zh)
    assert "99-x" in str(raised.value)


def test_translation_counts_are_checked_for_numeric_and_truefalse():
    numeric = {"type": "numeric", "options": [], "explanations": "why", "correct": {"value": 10, "tolerance": 0},
               "mistakes": [{"value": 5, "message": "half"}]}
    with pytest.raises(quiz.QuizBankError, match="one per English mistake"):
        fake(numeric, mistakes=["一半", "两倍"])
    truefalse = {"type": "truefalse", "options": ["True", "False"], "explanations": ["y", "n"], "correct": [0]}
    with pytest.raises(quiz.QuizBankError, match="no zh.options"):
        fake(truefalse, options=["对", "错"])


@pytest.mark.parametrize("changes, message", [
    ({"measured_in": "4"}, "measured_in"),
    ({"measured_in": 4}, "measured_in"),
    ({"measured_where": "section 2"}, "needs measured_in"),
])
def test_bad_chapter_pointers_are_refused(changes, message):
    with pytest.raises(quiz.QuizBankError, match=message):
        fake(changes)


def test_an_unknown_language_is_refused():
    with pytest.raises(ValueError, match="lang"):
        quiz.check("09-lora-b-zero", 2, lang="fr")
    with pytest.raises(ValueError, match="lang"):
        quiz.text_version("09", lang="de")


# --- showing it ---------------------------------------------------------------------------------------------

def test_text_fallback_in_chinese(capsys):
    quiz.show("09", text=True, lang="zh")
    out = capsys.readouterr().out
    assert out.startswith("第 09 章测验")
    for question in BANK:
        localised = quiz_lang.localise(question, "zh")
        assert localised.prompt in out and all(option in out for option in localised.options)
        assert f'quiz.check("{question.id}"' in out and 'lang="zh")' in out
    assert "测量见第 04 章" in out


def test_english_text_shows_where_each_answer_was_measured():
    text = quiz.text_version("09")
    assert "measured in chapter 02: section 2, real models counted exactly" in text


def shown_widgets(monkeypatch, chapter, lang):
    """Run show() as in a notebook, headless; return the bundle and the widgets it built."""
    import IPython.display

    captured, bundles = [], []
    real_watch = quiz_review.watch
    monkeypatch.setattr(quiz, "_in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: bundles.append(obj))
    monkeypatch.setattr(quiz_review, "watch", lambda ch, ws: (captured.extend(ws), real_watch(ch, ws)))
    assert quiz.show(chapter, lang=lang) is None
    return bundles[0], captured


def test_show_in_chinese_renders_widgets_headlessly(monkeypatch):
    pytest.importorskip("ipywidgets")
    bundle, widgets = shown_widgets(monkeypatch, "09", "zh")
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == quiz.text_version("09", lang="zh")
    assert len(widgets) == len(BANK)
    first = widgets[0]
    assert first.question.zh.prompt in first.container.children[0].value
    assert first.submit.description == "提交"
    first.submit.click()
    assert "请先选择" in first.feedback.value
    first.input.value = first.question.correct[0]
    first.submit.click()
    assert "✅ 正确" in first.feedback.value
    quiz_review.forget("09")


# --- the self-assessment ----------------------------------------------------------------------------------

def answer_in_widgets(widget, answer):
    if widget.question.type == "multiple":
        for i, box in enumerate(widget.checkboxes):
            box.value = i in answer
    elif widget.question.type == "truefalse":
        widget.input.value = 0 if answer else 1
    else:
        widget.input.value = answer
    widget.submit.click()


def test_report_from_the_widgets_scores_the_first_try_per_chapter(monkeypatch):
    pytest.importorskip("ipywidgets")
    quiz_review.forget()
    _, widgets = shown_widgets(monkeypatch, "09", "en")
    wrong_first = {"04"}                      # every chapter-04 question answered wrong, then right
    for widget in widgets:
        question = widget.question
        if question.measured_in == "07":
            continue                          # chapter 07 left unanswered
        if question.measured_in in wrong_first:
            answer_in_widgets(widget, wrong_answer(question))
        answer_in_widgets(widget, right_answer(question))
    result = quiz.report("09")
    rows = {r.chapter: r for r in result.rows}
    assert rows["04"].answered == rows["04"].questions and rows["04"].first_try == 0
    assert rows["04"].eventually == rows["04"].questions
    assert rows["01"].score == 1.0 and rows["07"].answered == 0 and rows["07"].score is None
    assert result.revisit == ["04"]
    assert set(result.unanswered) == {q.id for q in BANK if q.measured_in == "07"}
    assert "Revisit chapter 04 (LoRA in practice)" in str(result)
    assert "建议复习：第 04" in str(quiz.report("09", lang="zh"))
    quiz_review.forget("09")
    assert quiz.report("09").answered == 0


def test_report_from_a_dict_of_answers_orders_the_weakest_first():
    answers = {q.id: right_answer(q) for q in BANK}
    assert quiz.report("09", answers=answers).revisit == []
    for q in BANK:
        if q.measured_in in ("05", "02"):
            answers[q.id] = wrong_answer(q)
    one_right = next(q for q in BANK if q.measured_in == "02")
    answers[one_right.id] = right_answer(one_right)
    result = quiz.report("09", answers=answers)
    assert result.revisit == ["05", "02"]               # 0% before 2 right of 5
    assert result.answered == result.total == len(BANK)
    assert "<table>" in result._repr_html_()


def test_report_without_answers_says_so():
    quiz_review.forget()
    result = quiz.report("09")
    assert result.answered == 0 and result.revisit == [] and "Nothing answered yet" in str(result)


@pytest.mark.parametrize("answers, error", [({"01-sft-lr": 0}, ValueError), ([("09-lora-b-zero", 2)], TypeError)])
def test_report_refuses_answers_it_cannot_use(answers, error):
    with pytest.raises(error):
        quiz.report("09", answers=answers)

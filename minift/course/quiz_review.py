"""Self-assessment: the student's score per chapter and which chapter to revisit.

    minift.quiz.show("09")          # answer in the widgets
    minift.quiz.report("09")        # score per chapter, from those answers
    minift.quiz.report("09", answers={"09-lora-llama-count": 4194304, ...})   # text fallback

No server and no file: show() hands its widgets to ``watch``, which adds a second click handler to each
Submit button and keeps every graded attempt in a dict of this Python process (the notebook's kernel).
Restarting the kernel forgets them, as it forgets every other variable.

What counts is the FIRST attempt at each question: the feedback of a wrong answer explains why it is
wrong, so a second attempt measures reading, not knowing. A question is scored for the chapter that
measured its answer (``measured_in`` in the bank), or for the bank's own chapter.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from .quiz_lang import check_lang

REVISIT_BELOW = 0.75        # revisit a chapter whose first-try score is below this share
CHAPTER_TITLES = {
    "en": {"00": "welcome", "01": "SFT: source and target model", "02": "counting parameters and memory",
           "03": "the low-rank maths behind LoRA", "04": "LoRA in practice",
           "05": "prompt tuning, P-tuning v1, prefix-tuning", "06": "P-tuning v2",
           "07": "Freeze, and what layers learn", "08": "shoot-out", "09": "review"},
    "zh": {"00": "欢迎", "01": "SFT：源模型与目标模型", "02": "参数量与显存", "03": "LoRA 背后的低秩数学",
           "04": "LoRA 实践", "05": "提示微调、P-tuning v1、前缀微调", "06": "P-tuning v2",
           "07": "Freeze 与各层学到了什么", "08": "方法大比拼", "09": "复习"},
}

# chapter -> {question id: [Feedback, ...]} for the quizzes shown in this kernel
_ATTEMPTS: dict[str, dict[str, list]] = {}


def watch(chapter: str, quiz_widgets) -> None:
    """Record every graded Submit of these widgets under ``chapter`` (called by quiz.show)."""
    attempts = _ATTEMPTS.setdefault(chapter, {})
    for quiz_widget in quiz_widgets:
        def after_submit(_button, w=quiz_widget):
            feedback = w.last_feedback              # set by w.on_submit, which ran just before
            tries = attempts.setdefault(w.question.id, [])
            if feedback is not None and (not tries or tries[-1] is not feedback):
                tries.append(feedback)
        quiz_widget.submit.on_click(after_submit)


def forget(chapter=None) -> None:
    """Drop the recorded attempts of one chapter (or of all): a fresh start without a kernel restart."""
    if chapter is None:
        _ATTEMPTS.clear()
    else:
        from .quiz import normalise_chapter
        _ATTEMPTS.pop(normalise_chapter(chapter), None)


@dataclass
class ChapterScore:
    chapter: str
    questions: int
    answered: int = 0
    first_try: int = 0          # right at the first attempt
    eventually: int = 0         # right at some attempt

    @property
    def score(self) -> float | None:
        """Share right at the first attempt, among the answered questions (None: nothing answered)."""
        return self.first_try / self.answered if self.answered else None


@dataclass(repr=False)
class Report:
    """Scores per chapter, the chapters to revisit (worst first) and the questions not answered yet.
    Its text (str and repr) is the table a static viewer shows; _repr_html_ the one Jupyter shows."""

    bank: str
    rows: list
    revisit: list
    unanswered: list = field(default_factory=list)
    lang: str = "en"

    @property
    def answered(self) -> int:
        return sum(r.answered for r in self.rows)

    @property
    def first_try(self) -> int:
        return sum(r.first_try for r in self.rows)

    @property
    def total(self) -> int:
        return sum(r.questions for r in self.rows)

    def _title(self, chapter: str) -> str:
        return CHAPTER_TITLES[self.lang].get(chapter, "")

    def _advice(self) -> str:
        zh = self.lang == "zh"
        if not self.answered:
            return ("还没有作答：先回答上面的测验，再运行这个单元格。" if zh else
                    "Nothing answered yet: answer the quiz above, then run this cell again.")
        if not self.revisit:
            return ("每一章首次作答的正确率都不低于 75%，不需要回头复习。" if zh else
                    "Every chapter at 75% or more on the first try: nothing to revisit.")
        names = ", ".join(f"{c} ({self._title(c)})" for c in self.revisit)
        return (f"建议复习：第 {names} 章（按得分从低到高）。" if zh else
                f"Revisit chapter {names} (lowest score first).")

    def __str__(self) -> str:
        zh = self.lang == "zh"
        head = ("章", "内容", "已答", "首次答对", "得分") if zh else ("ch.", "topic", "answered", "right 1st try", "score")
        lines = [f"{head[0]:<4} {head[1]:<42} {head[2]:>9} {head[3]:>14} {head[4]:>6}"]
        for r in self.rows:
            score = "-" if r.score is None else f"{100 * r.score:.0f}%"
            lines.append(f"{r.chapter:<4} {self._title(r.chapter):<42} {r.answered:>4} / {r.questions:<2} "
                         f"{r.first_try:>14} {score:>6}")
        total = (f"合计：已答 {self.answered} / {self.total} 题，首次答对 {self.first_try} 题。" if zh else
                 f"all: {self.answered} of {self.total} answered, {self.first_try} right at the first try.")
        return "\n".join(lines + [total, self._advice()])

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        zh = self.lang == "zh"
        head = ("章", "内容", "已答", "首次答对", "得分") if zh else ("chapter", "topic", "answered", "right at 1st try", "score")
        rows = "".join(
            f"<tr><td>{r.chapter}</td><td>{html.escape(self._title(r.chapter))}</td>"
            f"<td>{r.answered} / {r.questions}</td><td>{r.first_try}</td>"
            f"<td>{'-' if r.score is None else f'{100 * r.score:.0f}%'}</td></tr>" for r in self.rows)
        cells = "".join(f"<th>{h}</th>" for h in head)
        return (f"<table><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table>"
                f"<p><b>{html.escape(self._advice())}</b></p>")


def report(chapter, answers: dict | None = None, lang: str = "en") -> Report:
    """Score the quiz of ``chapter`` per measured chapter.

    answers None: the attempts made in the widgets of quiz.show(chapter) in this kernel. A dict
    {question id: answer}: each answer graded once with quiz.check (the text fallback; ids must belong
    to the bank). A chapter is to revisit when its first-try score is below 75%; unanswered questions
    do not count against it, they are listed apart.
    """
    from . import quiz

    lang = check_lang(lang)
    bank = quiz.normalise_chapter(chapter)
    questions = quiz.load_bank(bank)
    if answers is None:
        attempts = _ATTEMPTS.get(bank, {})
    else:
        if not isinstance(answers, dict):
            raise TypeError(f"answers must be a dict {{question id: answer}}, got {type(answers).__name__}")
        known = {q.id for q in questions}
        strangers = sorted(set(answers) - known)
        if strangers:
            raise ValueError(f"answers for questions that are not in bank {bank}: {strangers}")
        attempts = {qid: [quiz.check(qid, answer)] for qid, answer in answers.items()}
    rows: dict[str, ChapterScore] = {}
    unanswered = []
    for question in questions:
        home = question.measured_in or question.chapter
        row = rows.setdefault(home, ChapterScore(home, 0))
        row.questions += 1
        tries = attempts.get(question.id, [])
        if not tries:
            unanswered.append(question.id)
            continue
        row.answered += 1
        row.first_try += bool(tries[0].correct)
        row.eventually += any(t.correct for t in tries)
    ordered = [rows[c] for c in sorted(rows)]
    weak = [r for r in ordered if r.score is not None and r.score < REVISIT_BELOW]
    revisit = [r.chapter for r in sorted(weak, key=lambda r: (r.score, r.chapter))]
    return Report(bank, ordered, revisit, unanswered, lang)

"""docs/GLOSSARY.md parses into one row per term, with no term twice; the parser refuses broken tables."""

import pytest

from minift.course import glossary

REQUIRED = {  # term -> Chinese, the pairs issue 13 names
    "SFT (supervised fine-tuning)": "监督微调", "LoRA (low-rank adaptation)": "低秩适配", "prefix-tuning": "前缀微调",
    "prompt tuning": "提示微调", "Freeze": "冻结微调", "PEFT (parameter-efficient fine-tuning)": "参数高效微调",
    "rank": "秩", "adapter": "适配器", "source model": "源模型", "target model": "目标模型", "learning rate": "学习率",
    "probe": "探针",
}


def test_the_glossary_file_parses_with_about_fifty_unique_terms():
    terms = glossary.load()
    assert len(terms) >= 50
    english = [t.english.lower() for t in terms]
    chinese = [t.chinese for t in terms]
    assert len(set(english)) == len(english) and len(set(chinese)) == len(chinese)
    for term in terms:
        assert term.definition.endswith(".") and len(term.chapter) == 2


def test_the_terms_the_issue_names_are_there_with_their_chinese():
    by_name = {t.english: t for t in glossary.load()}
    for english, chinese in REQUIRED.items():
        assert by_name[english].chinese == chinese
    for name in ("P-tuning (v1)", "verbaliser", "CKA (centred kernel alignment)"):
        assert name in by_name


def test_every_chapter_of_the_course_has_terms():
    chapters = {t.chapter for t in glossary.load()}
    assert {"00", "01", "02", "03", "04", "05", "06", "07"} <= chapters


def test_lookup_by_english_short_name_or_chinese():
    assert glossary.lookup("LoRA").chinese == "低秩适配"
    assert glossary.lookup("lora (low-rank adaptation)").chinese == "低秩适配"
    assert glossary.lookup("前缀微调").english == "prefix-tuning"
    with pytest.raises(ValueError, match="not in the glossary"):
        glossary.lookup("quantum annealing")


TABLE = "| English | 中文 | Definition | Chapter |\n|---|---|---|---|\n"


@pytest.mark.parametrize("rows, message", [
    ("| rank | 秩 | A number. | 03 |\n| Rank | 阶 | Again. | 03 |\n", "already listed"),
    ("| rank | 秩 | A number. | 03 |\n| order | 秩 | Again. | 03 |\n", "already listed"),
    ("| rank | 秩 | A number. |\n", "4 non-empty cells"),
    ("| rank |  | A number. | 03 |\n", "4 non-empty cells"),
    ("| rank | 秩 | A number. | three |\n", "chapter"),
    ("", "no rows"),
])
def test_a_broken_table_is_refused_with_its_line(rows, message):
    with pytest.raises(glossary.GlossaryError, match=message):
        glossary.parse(TABLE + rows)


def test_a_file_without_the_table_is_refused():
    with pytest.raises(glossary.GlossaryError, match="no table"):
        glossary.parse("# Glossary\n\n| a | b |\n|---|---|\n| x | y |\n")


def test_the_table_ends_at_the_first_line_that_is_not_a_row():
    terms = glossary.parse(TABLE + "| rank | 秩 | A number. | 03 |\n\nSome text | with a bar\n")
    assert [t.english for t in terms] == ["rank"]


def test_a_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="GLOSSARY"):
        glossary.load(tmp_path / "GLOSSARY.md")


def test_text_and_html_tables_hold_every_term():
    terms = glossary.load()
    text, page = glossary.text_table(terms), glossary.html_table(terms)
    for term in terms:
        assert term.chinese in text and term.chinese in page


def test_show_outside_a_notebook_prints_text(capsys):
    glossary.show()
    assert "低秩适配" in capsys.readouterr().out

"""benchmarks/shootout.py: the quick configuration runs end to end, is resumable and seeded, and the
README table and the notebook's summaries come from its JSON."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shootout():
    spec = importlib.util.spec_from_file_location("shootout", ROOT / "benchmarks" / "shootout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick(shootout, tmp_path_factory):
    out = tmp_path_factory.mktemp("shootout") / "08_quick.json"
    result = shootout.main(["--quick", "--out", str(out), "--no-progress"])
    return shootout, out, result


def test_quick_run_writes_every_planned_job(quick):
    shootout, out, result = quick
    saved = json.loads(out.read_text())
    assert {"machine", "torch", "commit", "date", "config", "command", "records"} <= set(saved)
    assert saved["command"] == "python benchmarks/shootout.py --quick"
    cfg = shootout.CONFIGS["quick"]
    assert len(saved["records"]) == len(shootout.plan(cfg))
    kinds = {r["kind"] for r in saved["records"]}
    assert kinds == {"lr", "cost", "run", "labels"}
    # every method of the first part ran at both budgets, with every seed
    for method in shootout.METHODS:
        for mult in (1, 4):
            rs = shootout.runs(saved, "causal-tiny", "classification", method, cfg["budget"] * mult)
            assert [r["seed"] for r in rs] == cfg["seeds"], method
            assert all(0.0 <= r["test"] <= 1.0 for r in rs)


def test_records_carry_the_measurements(quick):
    shootout, out, result = quick
    run = next(r for r in result["records"] if r["kind"] == "run")
    for key in ("test", "val", "trainable", "trainable_percent", "seconds_per_step", "steps_to_95"):
        assert key in run and run[key] is not None
    costs = [r for r in result["records"] if r["kind"] == "cost"]
    assert all(r["memory_bytes"] > 0 and r["stored_bytes"] > 0 and r["latency_ms"] > 0 for r in costs)
    by_method = {r["method"]: r for r in costs if r["task"] == "classification"}
    # full fine-tuning stores the whole model; the head alone is far smaller; LoRA is merged for latency
    assert by_method["full"]["stored_bytes"] > 10 * by_method["head only"]["stored_bytes"]
    assert by_method["LoRA r=8 (q,v)"]["latency_merged"] and not by_method["full"]["latency_merged"]
    assert by_method["full"]["memory_bytes"] > by_method["head only"]["memory_bytes"]


def test_tagging_is_scored_with_entity_f1(quick, shootout):
    _, _, result = quick
    rs = [r for r in result["records"] if r["task"] == "tagging" and r["kind"] == "run"]
    assert rs
    cfg = shootout.CONFIGS["quick"]
    task = shootout.get_task("tagging", cfg["n_train"], cfg)
    model = shootout.build("causal-tiny", task, "LoRA r=8 (q,v)", 0)
    from minift.analysis.metrics import entity_f1
    assert shootout.score(model, task, task.test) == entity_f1(model, task.test, task.label_names)["f1"]


def test_rerun_skips_what_is_done(quick):
    shootout, out, result = quick
    records = out.with_name(out.name.replace(".json", "") + ".records.jsonl")
    before = records.read_text()
    again = shootout.main(["--quick", "--out", str(out), "--no-progress"])
    assert records.read_text() == before                     # nothing re-ran
    assert len(again["records"]) == len(result["records"])


def test_a_cut_line_is_rerun_not_fatal(shootout, tmp_path):
    path = tmp_path / "r.records.jsonl"
    path.write_text(json.dumps({"kind": "lr"}) + "\n" + '{"kind": "ru')
    assert shootout.read_records(path) == [{"kind": "lr"}]


def test_same_seed_same_score(shootout):
    cfg = shootout.CONFIGS["quick"]
    a = shootout.train_run(cfg, "causal-tiny", "classification", "LoRA r=8 (q,v)", 1e-2, 3, 3, cfg["n_train"])
    b = shootout.train_run(cfg, "causal-tiny", "classification", "LoRA r=8 (q,v)", 1e-2, 3, 3, cfg["n_train"])
    assert a["test"] == b["test"] and a["val_curve"] == b["val_curve"]


def test_chosen_lr_is_the_best_validation_score(shootout):
    grid = shootout.METHODS["full"][2]
    records = [{"kind": "lr", "source": "s", "task": "t", "method": "full", "lr": lr, "val": v}
               for lr, v in zip(grid, (0.5, 0.7, 0.7))]
    assert shootout.chosen_lr(records, "s", "t", "full") == grid[1]          # ties: the smaller rate
    assert shootout.chosen_lr(records[:2], "s", "t", "full") is None         # the grid is not complete


def test_steps_to_fraction(shootout):
    assert shootout.steps_to_fraction([10, 20, 30, 40], [0.2, 0.5, 0.96, 1.0]) == 30
    assert shootout.steps_to_fraction([10, 20], [0.9, 0.5]) == 10
    assert shootout.steps_to_fraction([], []) is None


def test_label_runs_reuse_the_main_runs(quick):
    shootout, _, result = quick
    cfg = result["config"]
    for method in cfg["labels"]["methods"]:
        assert len(shootout.label_runs(result, method, cfg["labels"]["sizes"][0])) == len(cfg["labels"]["seeds"])


def test_readme_section_comes_from_the_json(quick, capsys):
    shootout, out, result = quick
    shootout.main(["--readme", str(out)])
    text = capsys.readouterr().out
    assert text.startswith("## The methods, measured")
    for method in shootout.METHODS:
        assert f"| {method} |" in text
    row = shootout.table_rows(result, "causal-tiny", "classification", result["config"]["budget"])[0]
    assert f"{row['mean']:.3f} ± {row['std']:.3f}" in text


def test_unknown_source_is_refused(shootout):
    with pytest.raises(SystemExit, match="causal-huge"):
        shootout.main(["--quick", "--sources", "causal-huge"])


def test_methods_table_calls_the_shootout():
    text = (ROOT / "benchmarks" / "methods_table.py").read_text()
    assert "shootout" in text and "METHODS = {" not in text

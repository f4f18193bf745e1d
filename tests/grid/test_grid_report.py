"""``grid report``: short task headers with the specs below, no std of one seed, the terminal
table, the files written, the plots' directions and the training loss. Results are written into a
store directly (no training), so every case is quick."""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from ssmzoo.cli import main
from ssmzoo.grid import Store, markdown, write_report
from ssmzoo.grid.report import report_table, rich_table, task_labels

MQAR = "mqar(seq_len=64, num_kv=8, vocab=64, n_train=256, n_val=64, n_test=64)"
MQAR_LONG = "mqar(seq_len=256, num_kv=16, vocab=64, n_train=256, n_val=64, n_test=64)"
DIGITS = "sdigits"


def _row(variant: str, task: str, seed: int, value: float | None, *, status: str = "ok",
         metric: str = "accuracy", higher: bool = True, sweep: dict[str, Any] | None = None,
         losses: tuple[float, ...] = (2.0, 1.0)) -> dict[str, Any]:
    history = [{"step": 10 * (i + 1), "train_loss": loss, "lr": 1e-3, "time": 1.0,
                metric: value if value is not None else math.nan}
               for i, loss in enumerate(losses)] if status == "ok" else []
    return {"key": f"{variant}|{task}|{seed}|{sweep}", "grid": "rep", "variant": variant,
            "task": task, "seed": seed, "sweep": sweep or {}, "status": status, "metric": metric,
            "higher_is_better": int(higher), "val": {metric: value} if value is not None else {},
            "test": {metric: value} if value is not None else {}, "history": history,
            "error": None if status == "ok" else f"{status} at step 3", "steps": 20,
            "n_params": 100, "wall_time": 1.5, "config": {}, "versions": {}}


def _store(directory: Path, rows: list[dict[str, Any]]) -> Path:
    with Store(directory) as store:
        store.set_meta(name="rep", plan=[r["key"] for r in rows])
        for r in rows:
            store.write(r)
    return directory


ONE_SEED = [_row("s6", MQAR, 0, 0.8125), _row("b2s6(h=4)", MQAR, 0, 0.9375),
            _row("s6", MQAR_LONG, 0, 0.5), _row("b2s6(h=4)", MQAR_LONG, 0, 0.625),
            _row("s6", DIGITS, 0, 0.25), _row("b2s6(h=4)", DIGITS, 0, 0.5)]


def test_task_labels_are_short_and_unique() -> None:
    assert task_labels([MQAR, MQAR_LONG, DIGITS, "induction(seq_len=8)"]) == {
        MQAR: "mqar", MQAR_LONG: "mqar#2", DIGITS: "sdigits", "induction(seq_len=8)": "induction"}


def test_markdown_has_short_headers_the_specs_below_and_no_std_of_one_seed() -> None:
    text = markdown(ONE_SEED, title="grid rep")
    assert text.startswith("## grid rep\n")
    header = next(ln for ln in text.splitlines() if ln.startswith("| variant"))
    assert header == ("| variant | mqar (accuracy ↑) | mqar#2 (accuracy ↑) | "
                      "sdigits (accuracy ↑) |")
    assert "±" not in text and "n=1" in text
    assert "| `b2s6(h=4)` | **0.938** | **0.625** | **0.500** |" in text
    assert f"- `mqar`: `{MQAR}`" in text and f"- `mqar#2`: `{MQAR_LONG}`" in text
    assert "- `sdigits`" not in text  # a task given by its name alone needs no legend


def test_std_only_from_two_seeds_and_seed_counts_where_they_differ() -> None:
    rows = [_row("s6", MQAR, 0, 0.5), _row("s6", MQAR, 1, 0.7),
            _row("b2s6", MQAR, 0, 0.9), _row("b2s6", MQAR, 1, None, status="diverged")]
    table = report_table(rows)
    assert table is not None
    (_, _, s6), (_, _, b2s6) = table.lines
    assert s6[0].text == f"0.600 ± {math.sqrt(0.02):.3f}" and not s6[0].best
    assert (b2s6[0].value, b2s6[0].notes, b2s6[0].best) == ("0.900", "n=1, 1 diverged", True)
    assert "2 per entry" in table.note
    text = markdown(rows)
    assert "± 0.000" not in text and "(n=1, 1 diverged)" in text


def test_rich_table_fits_80_columns_with_the_specs_below() -> None:
    from rich.console import Console

    console = Console(force_terminal=True, width=80, file=io.StringIO(), record=True)
    console.print(rich_table(ONE_SEED, title="grid rep"))
    text = console.export_text()
    assert "\x1b[" in console.file.getvalue()  # styled for a terminal
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 80
    head = "\n".join(lines[:4])
    assert "mqar#2" in head and "accuracy ↑" in head and "seq_len" not in head
    assert "±" not in text and "n=1" in text
    below = text[text.index("tasks:"):]
    assert "mqar#2" in below and "seq_len=256" in below and "sdigits" not in below


def test_report_prints_a_rich_table_in_a_terminal_and_lists_the_files(
        tmp_path, capsys, monkeypatch) -> None:
    out = _store(tmp_path / "out", ONE_SEED)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["grid", "report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| variant" not in printed and "mqar#2" in printed and "tasks:" in printed
    listed = printed[printed.index("report files written:"):]
    for name in ("report.md", "report.csv", "metric_by_variant.png", "learning_curves.png",
                 "train_loss.png"):
        assert str(out / name) in listed and (out / name).is_file()


def test_report_prints_markdown_when_piped_and_the_files_on_stderr(tmp_path, capsys) -> None:
    out = _store(tmp_path / "out", ONE_SEED)
    assert main(["grid", "report", str(out), "--no-plots"]) == 0
    captured = capsys.readouterr()
    assert captured.out == (out / "report.md").read_text()
    assert captured.err.splitlines() == ["report files written:", f"  {out / 'report.md'}",
                                         f"  {out / 'report.csv'}"]
    assert main(["grid", "report", str(out), "--format", "csv", "--no-plots"]) == 0
    assert capsys.readouterr().out == (out / "report.csv").read_text()
    assert main(["grid", "report", str(out), "--format", "table", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "mqar#2" in printed and "report files written:" in printed


@pytest.mark.parametrize("losses", [(2.0, 1.0), (1.5,)])
def test_training_loss_is_plotted_as_curves_or_final_bars(tmp_path, losses) -> None:
    pytest.importorskip("matplotlib")
    out = _store(tmp_path / "out", [_row("s6", MQAR, 0, 0.5, losses=losses),
                                    _row("s4d", MQAR, 0, 0.4, losses=losses)])
    files = write_report(out)
    assert files["train_loss"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_measurement_cells_get_no_training_loss_plot(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    out = _store(tmp_path / "out", [_row("s6", MQAR, 0, 0.5, losses=())])
    assert "train_loss" not in write_report(out)


def test_plot_axes_say_which_way_is_better(monkeypatch, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from ssmzoo.grid import plots

    labels: list[str] = []
    real = plots._label
    monkeypatch.setattr(plots, "_label", lambda *a: labels.append(real(*a)) or labels[-1])
    rows = [_row("s6", DIGITS, 0, 0.3, metric="bpc", higher=False), _row("s6", MQAR, 0, 0.5)]
    plots.plot_all(rows, tmp_path)
    assert "bpc (lower is better)" in labels and "accuracy (higher is better)" in labels
    assert "val accuracy (higher is better)" in labels
    assert "training loss (lower is better)" in labels

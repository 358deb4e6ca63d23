"""The evaluation report reads right, on the real output of `lav demo-data` -> `lav eval` with the
shipped demo model: negatives labelled on their cards, the answer and the click as two labelled values,
one table per partition of the samples, notes as information, a title that names the dataset and the
model, and a resumed run that says how many samples it found done."""

from __future__ import annotations

import contextlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lav.cli import main
from lav.demo import assets

pytestmark = pytest.mark.slow

N = 8  # two tasks of 4 screens: one negative sample in each (lav demo-data's one in ten, at least one)


def _eval(data: Path, out: Path, capsys) -> str:
    args = ["eval", "--model", str(assets.BASE), "--adapter", str(assets.ADAPTER), "--data", str(data)]
    args += ["--device", "cpu", "--focus-layers", "-1", "--edge-layers", "-1", "--out", str(out)]
    capsys.readouterr()
    assert main(args) == 0
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalreport")
    assert main(["demo-data", "--out", str(root / "data"), "-n", str(N)]) == 0
    return root


@pytest.fixture(scope="module")
def done(run):
    capsys = _Capture()
    out = run / "whole"
    _eval(run / "data", out, capsys)
    return out


class _Capture:
    """A stand-in for pytest's capsys in a module fixture: `main` prints; nothing needs reading."""

    def readouterr(self):
        class _O:
            out = ""

        return _O()


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict]] = []
        self.title = ""
        self.tables: list[list[str]] = []  # header cells of each table
        self.classes: dict[str, list[str]] = {}  # class -> texts of <p class=...>
        self._p: str | None = None
        self._in_title = self._in_th = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "title":
            self._in_title = True
        if tag == "table":
            self.tables.append([])
        if tag == "th" and self.tables:
            self._in_th = True
            self.tables[-1].append("")
        if tag == "p":
            self._p = a.get("class") or ""
            self.classes.setdefault(self._p, []).append("")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag == "th":
            self._in_th = False
        if tag == "p":
            self._p = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._in_th:
            self.tables[-1][-1] += data
        if self._p is not None:
            self.classes[self._p][-1] += data


def _page(folder: Path) -> tuple[_Page, str]:
    text = (folder / "report.html").read_text()
    p = _Page()
    p.feed(text)
    return p, text


def _records(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "samples.jsonl").read_text().splitlines()]


def _cards(text: str) -> dict[str, str]:
    """Gallery card html by sample id."""
    cards = re.findall(r"<figure[^>]*>.*?</figure>", text, flags=re.S)
    return {re.search(r"<code>([^<]+)</code>", c).group(1): c for c in cards}


def test_the_title_names_the_dataset_and_the_model(done):
    page, _ = _page(done)
    summary = json.loads((done / "summary.json").read_text())
    assert summary["dataset"] in page.title
    assert "demo model" in page.title and "demo adapter" in page.title


def test_negatives_are_labelled_as_such_on_their_cards(done):
    _, text = _page(done)
    cards = _cards(text)
    negatives = [r for r in _records(done) if r["target"] == "negative"]
    assert len(negatives) == 2 and all(r["click"] is not None for r in negatives)  # the demo model clicks
    for r in negatives:
        assert "target absent: the model clicked" in cards[r["id"]]
    for r in _records(done):
        if r["target"] != "negative" and r["id"] in cards:
            assert "target absent" not in cards[r["id"]]


def test_the_answer_and_the_click_are_two_labelled_values(done):
    _, text = _page(done)
    cards = _cards(text)
    assert cards
    by_id = {r["id"]: r for r in _records(done)}
    for sid, card in cards.items():
        r = by_id[sid]
        assert "→" not in card
        assert f"<dt>answer</dt><dd><code>{r['response']}</code></dd>" in card
        x, y = r["click"]["x"], r["click"]["y"]
        assert f"<dt>click</dt><dd>({x:.0f}, {y:.0f}) px</dd>" in card


def test_fields_that_split_the_samples_alike_share_one_table(run, done):
    # From the dataset's own files: ScreenSpot-Pro's application and group name the same split here.
    entries = [
        e for f in sorted((run / "data" / "annotations").glob("*.json")) for e in json.loads(f.read_text())
    ]
    pairs = {(e["application"], e["group"]) for e in entries}
    assert len(pairs) == len({a for a, _ in pairs}) == len({g for _, g in pairs}) == 2
    page, _ = _page(done)
    firsts = [t[0] for t in page.tables if t]
    assert not {"application", "group"} & set(firsts)
    merged = [h for h in firsts if "application" in h.split(" / ")]
    assert len(merged) == 1 and "group" in merged[0].split(" / ")
    # gt_type splits the samples its own way and keeps its own table.
    assert "gt_type" in firsts


def test_notes_about_the_data_are_information_not_warnings(done):
    page, _ = _page(done)
    summary = json.loads((done / "summary.json").read_text())
    assert summary["notes"]
    info = page.classes.get("info", [])
    for note in summary["notes"]:
        assert note in info
    assert not any(
        note in texts for cls, texts in page.classes.items() if cls != "info" for note in summary["notes"]
    )


def test_a_resumed_run_says_how_many_samples_it_found_done(run, done, capsys, monkeypatch):
    # A real interrupted run (Ctrl-C as its fourth batch starts): three records on disk, no summary,
    # the folder exactly as lav left it (a hand-cut samples.jsonl is a user edit lav refuses).
    from lav.eval import engine

    out = run / "killed"
    real, calls = engine._run_batch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "_run_batch", interrupted)
    args = [
        "eval",
        "--model",
        str(assets.BASE),
        "--adapter",
        str(assets.ADAPTER),
        "--data",
        str(run / "data"),
    ]
    args += ["--device", "cpu", "--focus-layers", "-1", "--edge-layers", "-1", "--batch-size", "1"]
    with contextlib.suppress(KeyboardInterrupt):  # main may turn it into exit 130 or let it through
        assert main([*args, "--out", str(out)]) != 0
    monkeypatch.setattr(engine, "_run_batch", real)
    assert (out / "samples.jsonl").read_text().count("\n") == 3 and not (out / "summary.json").exists()
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"resumed: 3 of {N} samples were already done in {out}" in printed
    page, _ = _page(out)
    assert page.classes["info resumed"] == [
        f"Resumed: 3 of {N} samples were already done in this folder when the run started; it ran the other {N - 3}."
    ]
    # A fresh run says nothing of the kind.
    fresh, _ = _page(done)
    assert "info resumed" not in fresh.classes

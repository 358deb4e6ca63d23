"""`lav eval --responses` at scale (issue 26, "memory flat over 1,000 samples"): what one run keeps
and rewrites must not grow with the samples done. Deterministic counts, not RSS or seconds:
`bench/replay.py --memory N` measures the resident memory itself."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

import lav
from lav import livefolder, outdir
from lav.eval.responses import read_responses

from .test_eval_engine import _dataset, model_dirs, viz  # noqa: F401 - fixtures


def _responses(tmp_path, dataset):
    # A click at the screen's corner, outside every box: each sample is wrong, so each writes a
    # gallery thumbnail as well as its record (the most a sample writes without --save-maps).
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps({"id": s.id, "response": "(0, 0)"}) + "\n" for s in dataset.samples))
    return read_responses(path)


def test_a_replay_keeps_no_result_of_a_finished_batch(viz, tmp_path, monkeypatch):  # noqa: F811
    ds = _dataset(tmp_path / "img", 8)
    responses = _responses(tmp_path, ds)
    analyze_many = viz.analyze_many
    batches: list[list[weakref.ref]] = []
    alive_at_call: list[int] = []

    def spy(items, *args, **kwargs):
        gc.collect()
        alive_at_call.append(sum(ref() is not None for batch in batches for ref in batch))
        results = analyze_many(items, *args, **kwargs)
        batches.append([weakref.ref(r) for r in results])
        return results

    monkeypatch.setattr(viz, "analyze_many", spy)
    run = lav.evaluate(viz, ds, tmp_path / "ev", batch_size=2, progress=False, responses=responses)
    gc.collect()
    assert len(batches) == 4 and all(len(b) == 2 for b in batches)
    # Each batch's Results (maps, image, tensors) are gone once its records are written.
    assert alive_at_call == [0, 0, 0, 0]
    assert all(ref() is None for batch in batches for ref in batch)
    assert all(r["error"] is None and not r["correct"] for r in run.records)
    assert all("_result" not in r for r in run.records)


def test_a_replay_rewrites_the_manifest_per_batch_not_per_sample(viz, tmp_path, monkeypatch):  # noqa: F811
    # The manifest lists every file of the folder, so a rewrite per sample makes a long run
    # quadratic: one for the batch's records, two for its thumbnails (before and after they move).
    saves: list[int] = []
    write_json = livefolder.write_json

    def counting(path, data):
        saves[-1] += 1
        write_json(path, data)

    monkeypatch.setattr(livefolder, "write_json", counting)
    for n in (4, 8):
        ds = _dataset(tmp_path / f"img{n}", n)
        saves.append(0)
        run = lav.evaluate(
            viz, ds, tmp_path / f"ev{n}", batch_size=4, progress=False, responses=_responses(tmp_path, ds)
        )
        assert sum(not r["correct"] for r in run.records) == n  # every sample wrote a thumbnail
        assert len(list((tmp_path / f"ev{n}" / "thumbs").iterdir())) == n
    assert saves[1] - saves[0] == 3


def test_save_maps_lists_a_batchs_sample_folders_in_one_manifest_update(viz, tmp_path, monkeypatch):  # noqa: F811
    # With --save-maps each sample also gets its own nested folder (with its own manifest); the
    # run's manifest lists a batch's folders in one update, not one per sample.
    saves: dict[str, int] = {}
    write_json = livefolder.write_json

    def counting(path, data):
        saves[str(path)] = saves.get(str(path), 0) + 1
        write_json(path, data)

    monkeypatch.setattr(livefolder, "write_json", counting)
    top = []
    for n in (4, 8):
        ds = _dataset(tmp_path / f"img{n}", n)
        out = tmp_path / f"ev{n}"
        lav.evaluate(
            viz, ds, out, batch_size=4, progress=False, save_maps=True, responses=_responses(tmp_path, ds)
        )
        assert len(list((out / "samples").iterdir())) == n
        assert all((out / "samples" / d.name / "result.json").is_file() for d in (out / "samples").iterdir())
        # The run's own manifest is staged in its private temporary folder, then moved into place.
        top.append(
            sum(
                k
                for p, k in saves.items()
                if Path(p).name == outdir.MANIFEST
                and Path(p).parent.parent == out
                and Path(p).parent.name.startswith(".lav-tmp-")
            )
        )
    # One batch more: its records (1), its thumbnails (2) and its sample folders (1).
    assert top[1] - top[0] == 4

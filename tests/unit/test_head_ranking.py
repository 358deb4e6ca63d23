"""Head selection for ``focus_selected``: `lav eval`'s ranking read back, ``--focus-heads`` parsed."""

from __future__ import annotations

import json

import pytest

from lav.errors import InputError
from lav.eval.stats import summarize
from lav.methods.heads import heads_from_ranking, parse_heads


def _record(n: int, heads: list[list[int]]) -> dict:
    return {
        "id": str(n),
        "error": None,
        "correct": True,
        "wrong_format": False,
        "groups": {},
        "layers": {"focus": [1, 3]},
        "maps": {},
        "heads": heads,
        "base": {"correct": False, "wrong_format": False, "maps": {}, "heads": [[1, 0], [0, 0]]},
    }


def test_top_k_reads_the_ranking_lav_eval_writes(tmp_path):
    # Head (layer 3, head 1) hits in both samples, (1, 0) in one: that order, layers as the model's.
    summary = summarize([_record(0, [[1, 0], [0, 1]]), _record(1, [[0, 0], [0, 1]])])
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert heads_from_ranking(tmp_path, 2) == [(3, 1), (1, 0)]
    assert heads_from_ranking(tmp_path / "summary.json", 1) == [(3, 1)]
    assert heads_from_ranking(tmp_path, 1, base=True) == [(1, 0)]
    assert parse_heads("top-2", tmp_path / "summary.json") == [(3, 1), (1, 0)]
    assert parse_heads(" -1:3, -2:0 ") == "-1:3, -2:0"


def test_bad_rankings_and_specs_are_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="needs --head-ranking"):
        parse_heads("top-3")
    with pytest.raises(InputError, match="top-K with a whole number"):
        parse_heads("top-x", tmp_path)
    with pytest.raises(InputError, match="cannot read the head ranking"):
        heads_from_ranking(tmp_path / "missing.json", 3)
    (tmp_path / "summary.json").write_text(json.dumps({"heads": []}))
    with pytest.raises(InputError, match="no head ranking"):
        heads_from_ranking(tmp_path, 3)
    with pytest.raises(InputError, match="positive K"):
        heads_from_ranking(tmp_path, 0)

"""Focus from chosen decoder heads: localization heads picked by hand or from a `lav eval` ranking.

"Your LVLM only needs a few attention heads for visual grounding" (CVPR 2025): a few heads point at
the target far better than the mean over all heads. ``focus`` keeps every head (``focus_heads``,
L x H x merged grid); this method draws the mean of the chosen ``(layer, head)`` pairs only. A ranking
of heads by pointing game comes from `lav eval` (``summary.json``, key ``heads``, best first) and is
read back by `heads_from_ranking`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .. import jsonsafe
from ..errors import InputError
from ..models import ModelParts
from ..result import Map
from .base import Item, MapMethod, Needs, Selection, merged_grid, minmax
from .focus import answer_rows

HeadSpec = str | Sequence[tuple[int, int]] | None


def _head_count(parts: ModelParts, layer: int) -> int:
    module = parts.decoder_attention[layer]
    config = getattr(module, "config", None)
    count = getattr(config, "num_attention_heads", None) or getattr(module, "num_heads", None)
    if count is None:
        raise InputError(f"cannot tell how many heads decoder layer {layer} has; please report the model")
    return int(count)


def resolve_heads(spec: HeadSpec, parts: ModelParts) -> tuple[tuple[int, int], ...] | None:
    """``(layer, head)`` pairs, layers counted among full-attention decoder layers (negative allowed).

    ``spec``: None (no selection), pairs, or text ``"L:H L:H"`` (commas or spaces between pairs).
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        try:
            pairs = [tuple(int(v) for v in p.split(":")) for p in spec.replace(",", " ").split()]
        except ValueError:
            pairs = [()]
        if any(len(p) != 2 for p in pairs):
            raise InputError(f"focus heads {spec!r}: write layer:head pairs, e.g. '-1:3 -2:0'")
    else:
        pairs = [tuple(p) for p in spec]
    if not pairs:
        raise InputError("focus heads is empty; give at least one layer:head pair")
    count = len(parts.decoder_attention)
    out = []
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
            raise InputError(f"a focus head is a (layer, head) pair of integers, got {pair!r}")
        layer, head = pair
        if not -count <= layer < count:
            raise InputError(
                f"focus head {layer}:{head}: the model has {count} full-attention decoder layers "
                f"(0..{count - 1}, or -1..-{count})"
            )
        layer %= count
        heads = _head_count(parts, layer)
        if not 0 <= head < heads:
            raise InputError(f"focus head {layer}:{head}: decoder layer {layer} has heads 0..{heads - 1}")
        out.append((layer, head))
    return tuple(dict.fromkeys(out))


def heads_from_ranking(path: str | Path, k: int, base: bool = False) -> list[tuple[int, int]]:
    """The ``k`` best ``(layer, head)`` pairs of a `lav eval` ranking (``summary.json`` or its folder).

    ``base``: the ranking of the base model (``summary["base"]``) instead of the adapter's.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"top-K needs a positive K, got {k!r}")
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    try:
        summary = jsonsafe.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the head ranking {path}: {exc}; pass lav eval's summary.json") from exc
    if base:
        summary = summary.get("base") or {}
    ranking = summary.get("heads") if isinstance(summary, dict) else None
    if not ranking:
        raise InputError(
            f"{path} has no head ranking ('heads'); run lav eval with per-head focus (the default) first"
        )
    try:
        pairs = [(int(h["layer"]), int(h["head"])) for h in ranking]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: a 'heads' entry is not {{'layer': int, 'head': int, ...}}") from exc
    return pairs[:k]


def parse_heads(spec: str, ranking: str | Path | None = None) -> HeadSpec:
    """The CLI's ``--focus-heads``: ``"top-K"`` (with ``ranking``, a `lav eval` summary) or pairs."""
    text = spec.strip()
    if text.lower().startswith("top-"):
        if ranking is None:
            raise InputError(f"--focus-heads {spec} needs --head-ranking FILE (lav eval's summary.json)")
        try:
            k = int(text[4:])
        except ValueError:
            raise InputError(
                f"--focus-heads {spec!r}: write top-K with a whole number K, e.g. top-5"
            ) from None
        return heads_from_ranking(ranking, k)
    return text


class SelectedHeadsFocus(MapMethod):
    """``focus_selected`` (grid_h/m, grid_w/m) in [0,1]: mean over the chosen ``(layer, head)`` pairs
    and the coordinate-digit rows of the attention to image tokens.

    Needs ``focus_heads=`` (`Visualizer.analyze`) or ``--focus-heads`` (CLI). Arrays:
    ``focus_selected_raw``. Info: ``heads`` ([layer, head] with layers among full-attention layers),
    ``decoder_layers`` (the model's indices of those layers), ``tokens``, ``rows``.
    """

    name = "focus_selected"
    default = False
    requires = ("focus_heads",)

    def needs(self, selection: Selection) -> Needs:
        return Needs(decoder_layers=tuple(sorted({layer for layer, _ in selection.heads or ()})))

    def reduce(self, item: Item, selection: Selection) -> list[Map]:
        if not selection.heads:
            raise InputError("focus_selected needs heads: pass focus_heads= (or --focus-heads L:H / top-K)")
        rows = list(item.answer.rows)
        per_head = [answer_rows(item, layer, rows)[:, head].mean(dim=0) for layer, head in selection.heads]
        raw = merged_grid(item, torch.stack(per_head).double().mean(dim=0).numpy())
        layers = tuple(sorted({layer for layer, _ in selection.heads}))
        return [
            self.decision_map(
                item,
                selection,
                minmax(raw),
                "Decision focus, selected heads",
                {"focus_selected_raw": raw.astype("float32")},
                layers=layers,
                info={"heads": [[layer, head] for layer, head in selection.heads]},
            )
        ]

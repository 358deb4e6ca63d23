"""How good is the shipped demo model, measured through lav's own analysis (`viz.analyze`).

    python bench/demo_eval.py [--n 200] [--json out.json]

On ``n`` held-out synthetic screens per task (seeds disjoint from training):
- click inside the target's box: base model on its task; adapter vs base on the adapter's task
  (and the adapter on the base task, to show it kept it);
- decision focus, per decoder layer: pointing game (the centre of the map's maximum cell lies in the
  target's box, `lav.metrics.pointing_game`) against chance (box area / image area, and one cell);
- edge map: share of its top 10% patches that touch a widget (and that hold a widget's boundary:
  partly inside a widget's box), against the share of all patches that do (chance); for the map
  lav shows (the mean of the last two vision blocks) and for each vision block on its own; and,
  since the title bar is one widget box that fills the first patch row, the share of the top 10%
  on that row, and below it (the title bar's row left out) the top 10%'s share on widgets against
  the widgets' share of those patches;
- with ``--methods focus_sink_masked,focus_relative,focus_grad,...`` (issue #11): the pointing game of
  each method's map (mean over all decoder layers), and per layer where the method keeps per-layer
  maps (``<name>_layers``), beside raw attention's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lav.metrics import cell_coverage, chance_level, point_in_box, pointing_game, wilson_interval  # noqa: E402


def _inside(click, box) -> bool:
    return click is not None and point_in_box(click.x, click.y, box)


def _patch_mask(boxes, shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """(h, w) patches of a grid covering the image that overlap any of ``boxes``."""
    mask = np.zeros(shape, dtype=bool)
    for box in boxes:
        mask |= cell_coverage(box, shape, size) > 0
    return mask


def _boundary_mask(boxes, shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """(h, w) patches that a box's boundary crosses: partly, not wholly, inside one of ``boxes``."""
    mask = np.zeros(shape, dtype=bool)
    for box in boxes:
        cover = cell_coverage(box, shape, size)
        mask |= (cover > 0) & (cover < 1)
    return mask


def _drawn(values: np.ndarray) -> np.ndarray:
    low, high = values.min(), values.max()
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def _top10_share(values: np.ndarray, mask: np.ndarray) -> float:
    """Share of ``values``' top 10% cells (at least one) that lie in ``mask``."""
    k = max(1, int(round(0.1 * values.size)))
    top = np.argsort(values.flatten(), kind="stable")[::-1][:k]
    return float(mask.flatten()[top].mean())


def edge_shares(blocks: np.ndarray, screen) -> dict:
    """One screen's edge maps, each block's (``blocks``: (L, h, w), `edge_layers` arrays) and the
    default map (the mean of the last two): the share of each map's top 10% on widgets, on widget
    boundaries, on the title bar's row, and on widgets below that row, as lists over
    [default, block 0, block 1, ...]; and the share of patches each region covers (chance).
    ``shown_widgets`` / ``shown_background``: below the title bar, the map's mean on widget / on
    other patches after the min-max normalisation the picture draws (alpha scales with it), so a
    map whose top patches are all on the title bar shows as little as it draws elsewhere."""
    from lav.demo import screens as S

    maps = [blocks[-2:].mean(axis=0), *blocks]
    shape, size = maps[0].shape, screen.image.size
    on = _patch_mask(screen.widget_boxes, shape, size)
    rim = _boundary_mask(screen.widget_boxes, shape, size)
    title = np.zeros(shape, dtype=bool)
    title[0] = True
    below = _patch_mask([b for b in screen.widget_boxes if b != S.TITLE_BAR], shape, size)[1:]
    return {
        "on": [_top10_share(m, on) for m in maps],
        "rim": [_top10_share(m, rim) for m in maps],
        "title": [_top10_share(m, title) for m in maps],
        "below": [_top10_share(m[1:], below) for m in maps],
        "shown_widgets": [float(_drawn(m)[1:][below].mean()) for m in maps],
        "shown_background": [float(_drawn(m)[1:][~below].mean()) for m in maps],
        "on_area": float(on.mean()),
        "rim_area": float(rim.mean()),
        "title_area": float(title.mean()),
        "below_area": float(below.mean()),
    }


def evaluate(n: int = 200, start: int = 0, device: str = "cpu", base=None, adapter=None, methods=()) -> dict:
    """Run the evaluation; returns plain numbers (see the module docstring)."""
    import torch

    import lav
    from lav.demo import assets
    from lav.demo import screens as S

    torch.set_num_threads(min(2, torch.get_num_threads()))
    viz = lav.load(base or assets.BASE, adapter=adapter or assets.ADAPTER, device=device, dtype="float32")
    stats: dict = {"n": n, "tasks": {}}
    t0 = time.perf_counter()
    for task in S.TASKS:
        hits_adapter, hits_base, point_a, point_b, chance = [], [], [], [], []
        edge_top, edge_area, edge_edge, edge_edge_area, blocks_top, blocks_edge = [], [], [], [], [], []
        title_top, title_area, below_top, below_area, shown_w, shown_b = [], [], [], [], [], []
        per_method: dict = {
            m: {"adapter": [], "base": [], "layers_adapter": [], "layers_base": []} for m in methods
        }
        maps = ["edge", "focus", *methods] if methods else None
        focus_heads = [(-1, 0)] if "focus_selected" in methods else None
        for screen in S.held_out(n, task, start):
            res = viz.analyze(
                screen.image,
                screen.instruction,
                compare_base=True,
                focus_layers="all",
                edge_layers="all",
                maps=maps,
                focus_heads=focus_heads,
            )
            box = screen.box
            hits_adapter.append(_inside(res.click, box))
            hits_base.append(_inside(res.base.click, box))
            size = screen.image.size
            point_a.append([pointing_game(m, box, size) for m in res.map("focus").arrays["focus_layers"]])
            point_b.append(
                [pointing_game(m, box, size) for m in res.base.map("focus").arrays["focus_layers"]]
            )
            chance.append(chance_level(box, size))
            for name in methods:
                for side, r in (("adapter", res), ("base", res.base)):
                    m = r.map(name)
                    per_method[name][side].append(pointing_game(m.values, box, size))
                    layers = m.arrays.get(f"{name}_layers")
                    if layers is not None:
                        per_method[name][f"layers_{side}"].append(
                            [pointing_game(x, box, size) for x in layers]
                        )
            # The adapter is decoder-only: the vision tower is the base model's. With
            # edge_layers="all" each block's own map comes beside the default one.
            e = edge_shares(res.base.map("edge").arrays["edge_layers"], screen)
            edge_top.append(e["on"][0])
            edge_edge.append(e["rim"][0])
            edge_area.append(e["on_area"])
            edge_edge_area.append(e["rim_area"])
            blocks_top.append(e["on"][1:])
            blocks_edge.append(e["rim"][1:])
            title_top.append(e["title"][0])
            title_area.append(e["title_area"])
            below_top.append(e["below"])
            below_area.append(e["below_area"])
            shown_w.append(e["shown_widgets"][0])
            shown_b.append(e["shown_background"][0])
        grid_cells = res.focus.size
        stats["tasks"][task] = {
            "hit_adapter": float(np.mean(hits_adapter)),
            "hit_base": float(np.mean(hits_base)),
            "hit_adapter_ci95": wilson_interval(sum(hits_adapter), len(hits_adapter)),
            "hit_base_ci95": wilson_interval(sum(hits_base), len(hits_base)),
            "pointing_adapter": np.mean(point_a, axis=0).tolist(),
            "pointing_base": np.mean(point_b, axis=0).tolist(),
            "chance_area": float(np.mean(chance)),
            "chance_cell": 1.0 / grid_cells,
            "edge_top10_on_widgets": float(np.mean(edge_top)),
            "widget_patch_share": float(np.mean(edge_area)),
            "edge_top10_on_boundaries": float(np.mean(edge_edge)),
            "boundary_patch_share": float(np.mean(edge_edge_area)),
            "edge_blocks_top10_on_widgets": np.mean(blocks_top, axis=0).tolist(),
            "edge_blocks_top10_on_boundaries": np.mean(blocks_edge, axis=0).tolist(),
            "edge_top10_on_title_row": float(np.mean(title_top)),
            "title_row_share": float(np.mean(title_area)),
            # [default map, block 0, block 1, ...] with the title bar's row left out
            "edge_below_title_top10_on_widgets": np.mean(below_top, axis=0).tolist(),
            "widget_share_below_title": float(np.mean(below_area)),
            # the default map as drawn (min-max normalised), below the title bar's row
            "edge_drawn_below_title_widgets": float(np.mean(shown_w)),
            "edge_drawn_below_title_background": float(np.mean(shown_b)),
            "methods": {
                name: {
                    key: (np.mean(v, axis=0).tolist() if key.startswith("layers") else float(np.mean(v)))
                    for key, v in d.items()
                    if v
                }
                for name, d in per_method.items()
            },
        }
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    return stats


def table(stats: dict) -> str:
    """The evaluation as a Markdown table (what the README shows)."""
    b, a = stats["tasks"]["base"], stats["tasks"]["adapter"]
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    lines = [
        f"Demo model on {stats['n']} held-out screens per task ({stats['seconds']} s)",
        "",
        "| measure | base model | with adapter | target |",
        "|---|---|---|---|",
        f'| click in box, base task ("Click the red circle") | {pct(b["hit_base"])} | {pct(b["hit_adapter"])} | base >= 90% |',
        f'| click in box, adapter task ("Click the purple circle") | {pct(a["hit_base"])} | {pct(a["hit_adapter"])} | adapter >= base + 30 pts |',
    ]
    for task, s in (("base", b), ("adapter", a)):
        for i, (pb, pa) in enumerate(zip(s["pointing_base"], s["pointing_adapter"], strict=True)):
            lines.append(
                f"| decision focus pointing game, decoder layer {i}, {task} task | {pct(pb)} | {pct(pa)} | "
                f"chance {pct(s['chance_area'])} (box area), {pct(s['chance_cell'])} (one cell) |"
            )
    for task, s in (("base", b), ("adapter", a)):
        lines.append(
            f"| edge map: top-10% patches on widgets, {task} screens | {pct(s['edge_top10_on_widgets'])} | (same vision tower) | "
            f"widgets cover {pct(s['widget_patch_share'])} of patches |"
        )
        lines.append(
            f"| edge map: top-10% patches on widget boundaries, {task} screens | {pct(s['edge_top10_on_boundaries'])} | (same vision tower) | "
            f"boundaries cross {pct(s['boundary_patch_share'])} of patches |"
        )
        for i, (w, e) in enumerate(
            zip(s["edge_blocks_top10_on_widgets"], s["edge_blocks_top10_on_boundaries"], strict=True)
        ):
            lines.append(
                f"| edge map of vision block {i} alone: top-10% on widgets / on boundaries, {task} screens | "
                f"{pct(w)} / {pct(e)} | (same vision tower) | {pct(s['widget_patch_share'])} / {pct(s['boundary_patch_share'])} |"
            )
        lines.append(
            f"| edge map: top-10% patches on the title bar's row, {task} screens | {pct(s['edge_top10_on_title_row'])} | (same vision tower) | "
            f"the row is {pct(s['title_row_share'])} of patches |"
        )
        below = s["edge_below_title_top10_on_widgets"]
        lines.append(
            "| below the title bar: top-10% on widgets, default map / block "
            + " / block ".join(str(i) for i in range(len(below) - 1))
            + f", {task} screens | {' / '.join(pct(v) for v in below)} | (same vision tower) | "
            f"widgets cover {pct(s['widget_share_below_title'])} of those patches |"
        )
        lines.append(
            f"| below the title bar: the default map as drawn (0-1), mean on widgets / on the rest, {task} screens | "
            f"{s['edge_drawn_below_title_widgets']:.2f} / {s['edge_drawn_below_title_background']:.2f} | "
            "(same vision tower) | equal: the picture does not single out widgets |"
        )
    for task, s in (("base", b), ("adapter", a)):
        for name, m in s.get("methods", {}).items():
            lines.append(
                f"| `{name}` pointing game (all layers), {task} task | {pct(m['base'])} | {pct(m['adapter'])} | "
                f"chance {pct(s['chance_area'])} |"
            )
            for i, (pb, pa) in enumerate(
                zip(m.get("layers_base", []), m.get("layers_adapter", []), strict=True)
            ):
                lines.append(
                    f"| `{name}` pointing game, decoder layer {i}, {task} task | {pct(pb)} | {pct(pa)} | |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="held-out screens per task (default 200)")
    parser.add_argument("--start", type=int, default=0, help="first held-out index (default 0)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--base", help="base model folder (default: the shipped one)")
    parser.add_argument("--adapter", help="adapter folder (default: the shipped one)")
    parser.add_argument(
        "--methods", default="", help="opt-in map methods to score too, comma-separated (e.g. focus_relative)"
    )
    args = parser.parse_args(argv)
    methods = tuple(m for m in args.methods.split(",") if m)
    stats = evaluate(args.n, args.start, args.device, args.base, args.adapter, methods)
    print(table(stats))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(stats, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

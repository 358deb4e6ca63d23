"""Does the map explain the click? Deletion / insertion curves of each map, and the zoom test.

`faithfulness`: for one `Result` and each of its maps, the merged-grid cells are ordered from most to
least important; in ``steps`` steps a fixed fraction of them is removed from the screenshot (filled
with its mean colour, or blurred), and separately inserted back into a blurred screenshot, in that
order. At every step one forced forward with the model's own answer gives the log-probability of the
answer's coordinate tokens, and whether the greedy click still lands in the target. The same curves
for three random orders (the ``random`` baseline) and each map's inverse order come beside them.

The greedy click of a step is read from the forced forward itself where it can be: greedy decoding
picks the most likely token at each position, so when the forward's most likely token at every answer
position is the answer's own (and the one after it ends the turn), the greedy answer *is* the
model's answer. The other steps' greedy answers are decoded on from their forwards' own caches
(`lav.faithful.decode`): greedy decoding agrees with the forced answer up to a step's first
differing position, so only from there on, at most to the answer's length plus a few tokens, and
the rows of several batches together (one forward per token for all of them), holding at most
`decode.CACHE_BUDGET` bytes of cache; a batch's size is chosen within that budget too. Where the
cache cannot be cut back (linear-attention layers) those steps generate afresh (`ask`). Every
image of a step is cut in original-image pixels, cell by cell, through the processor's resize
(`lav.faithful.cells.cell_labels`), so every family works unchanged.

`zoom`: crop around each map's peak (``1/zoom_factor`` of each side), ask again, and map the click
back to original pixels (crop offset plus the click in the crop: exact).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from ..capture.recorder import model_lock
from ..coords import Click
from ..errors import LavError
from ..geometry import Grid
from ..options import AnalysisOptions
from ..scoring import cache_of, keeps_logits
from ..stages import Request, pad_id, prepare, read_click, strip_end
from . import cells as C
from .decode import CACHE_BUDGET, GreedyPool, batch_rows, poolable, row_bytes
from .options import RANDOM_SEEDS, CheckOptions

if TYPE_CHECKING:
    from ..analysis import Visualizer
    from ..result import Result

#: Tokens a step's generate may write beyond the answer's own length (an answer that grew a digit).
EXTRA_TOKENS = 4

Hit = Callable[[float, float], bool]


@dataclass(frozen=True)
class _Step:
    """One image of a curve: ``order`` (a name) at point ``k``, ``kind`` deletion or insertion."""

    order: str
    kind: str
    k: int


def cell_box_hit(res: Result) -> tuple[Hit, str]:
    """The target `lav run` checks a click against (it has no annotated box): a box of one merged
    cell's size, in original pixels, centred on the model's own click."""
    if res.click is None:
        raise LavError("this result has no click to check")
    width, height = res.image_size
    half_w = width / (res.grid["w"] // res.merge) / 2
    half_h = height / (res.grid["h"] // res.merge) / 2
    cx, cy = res.click.x, res.click.y

    def hit(x: float, y: float) -> bool:
        return abs(x - cx) <= half_w and abs(y - cy) <= half_h

    return hit, f"within one cell ({2 * half_w:.0f}x{2 * half_h:.0f} px) of the model's own click"


def map_names(res: Result, maps: Sequence[str] | None = None) -> list[str]:
    """The maps a check runs on: ``maps`` (each must be in ``res``), else every map of the result."""
    if maps is None:
        return list(res.maps)
    missing = [n for n in maps if n not in res.maps]
    if missing:
        raise LavError(f"this result has no map {missing[0]!r}; it has {', '.join(res.maps)}")
    return list(maps)


def faithfulness(
    viz: Visualizer,
    res: Result,
    checks: CheckOptions | None = None,
    analysis: AnalysisOptions | None = None,
    hit: Hit | None = None,
    maps: Sequence[str] | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """Deletion and insertion curves of ``res``'s maps (``maps``: some of them) and of the baselines.

    ``res`` must come from ``viz`` with the prompt options ``analysis`` (system, template, coords,
    as the analysis ran); a base result (``adapter_enabled`` False) runs with the adapter disabled.
    ``hit(x, y)``: whether a click in original pixels is on the target (default `cell_box_hit`;
    ``target`` describes it). Returns plain JSON: ``x`` (fraction of cells removed / inserted at each
    point), ``orders`` (each order's curves: ``logprob`` of the coordinate tokens and ``hit``), and
    ``auc`` per map name, its ``<name>_inverse`` and ``random``: ``deletion_auc`` / ``insertion_auc``
    (area under the coordinate tokens' mean probability, exp(logprob / tokens)) and
    ``deletion_hit_auc`` / ``insertion_hit_auc`` (area under the click-in-target curve), with
    ``forwards`` (step images) and the ``batch_size`` they ran in. A result without a click gives
    ``{"skipped": why}``.
    """
    checks = checks or CheckOptions(faithfulness=True)
    if res.click is None:
        return {"skipped": f"no click to explain ({res.click_error})"}
    if hit is None:
        hit, target = cell_box_hit(res)
    names = map_names(res, maps)
    t0 = time.perf_counter()
    image = res.image.convert("RGB")
    grid = Grid(res.grid["t"], res.grid["h"], res.grid["w"], res.merge)
    shape = (grid.merged_h, grid.merged_w)
    n_cells = shape[0] * shape[1]
    labels = C.cell_labels(res.image_size, res.resized_size, shape)
    side = max(image.width / shape[1], image.height / shape[0])
    fill = C.fill_image(image, checks.removal, side)
    blur = C.blurred(image, side)
    pixels = {"image": np.asarray(image), "fill": np.asarray(fill), "blur": np.asarray(blur)}
    counts = C.step_counts(n_cells, checks.steps)
    orders: dict[str, np.ndarray] = {}
    for name in names:
        m = res.maps[name]
        orders[name] = C.map_order(C.merged_values(m.values, m.grid, res.merge))
        orders[f"{name}_inverse"] = orders[name][::-1]
    for seed in RANDOM_SEEDS:
        orders[f"random_{seed}"] = C.random_order(n_cells, seed)

    def picture(step: _Step) -> Image.Image:
        if step.order == "original":
            return image
        if step.order == "removed":
            return fill
        if step.order == "blurred":
            return blur
        chosen = orders[step.order][: counts[step.k]]
        if step.kind == "deletion":
            return C.composite(pixels["fill"], pixels["image"], labels, chosen)
        return C.composite(pixels["image"], pixels["blur"], labels, chosen)

    # The curves' ends are the same for every order: the image, all removed, all blurred.
    ends = [_Step("original", "", 0), _Step("removed", "", 0)]
    if checks.removal != "blur":
        ends.append(_Step("blurred", "", 0))
    inner = [
        _Step(name, kind, k)
        for name in orders
        for kind in ("deletion", "insertion")
        for k in range(1, checks.steps)
    ]
    plan = ends + inner
    with _running(viz, res):
        scored, batch = _score(
            viz, res, analysis, plan, picture, grid, hit, checks.batch_size, 2 * checks.steps
        )
    at = dict(zip(plan, scored, strict=True))
    blurred_end = at[_Step("blurred" if checks.removal != "blur" else "removed", "", 0)]
    first = at[ends[0]]
    curves: dict[str, Any] = {}
    for name in orders:
        curve = {}
        for kind in ("deletion", "insertion"):
            start, end = (first, at[ends[1]]) if kind == "deletion" else (blurred_end, first)
            points = [start] + [at[_Step(name, kind, k)] for k in range(1, checks.steps)] + [end]
            curve[kind] = {"logprob": [p[0] for p in points], "hit": [p[1] for p in points]}
        curves[name] = curve
    xs = [n / n_cells for n in counts]
    tokens = first[2]
    out = {
        "removal": checks.removal,
        "steps": checks.steps,
        "cells": n_cells,
        "x": xs,
        "tokens": tokens,
        "target": target,
        "maps": names,
        "orders": curves,
        "auc": _aucs(curves, names, xs, tokens),
        "forwards": len(plan),
        "batch_size": batch,
        "seconds": time.perf_counter() - t0,
    }
    return out


def _aucs(curves: dict[str, Any], names: Sequence[str], xs: Sequence[float], tokens: int) -> dict[str, Any]:
    def of(curve: dict[str, Any]) -> dict[str, float]:
        out = {}
        for kind in ("deletion", "insertion"):
            prob = [float(np.exp(lp / tokens)) for lp in curve[kind]["logprob"]]
            out[f"{kind}_auc"] = C.auc(xs, prob)
            out[f"{kind}_hit_auc"] = C.auc(xs, [float(h) for h in curve[kind]["hit"]])
        return out

    aucs = {}
    for name in names:
        aucs[name] = of(curves[name])
        aucs[f"{name}_inverse"] = of(curves[f"{name}_inverse"])
    seeds = [of(curves[f"random_{s}"]) for s in RANDOM_SEEDS]
    aucs["random"] = {k: float(np.mean([s[k] for s in seeds])) for k in seeds[0]}
    return aucs


@contextmanager
def _running(viz: Visualizer, res: Result) -> Iterator[None]:
    """The model as ``res`` was made (adapter off for a base result), in eval mode, under its lock;
    every module's training flag put back afterwards."""
    model = viz.model
    base = viz.has_adapter and not res.adapter_enabled
    flags = [(m, m.training) for m in model.modules()]
    with model_lock(model):
        try:
            model.eval()
            with model.disable_adapter() if base else nullcontext(), torch.inference_mode():
                yield
        finally:
            for m, training in flags:
                m.training = training


def _requests(res: Result, images: Sequence[Image.Image], opts: AnalysisOptions, response: str | None):
    return [
        Request(img, res.instruction, response, opts.system, opts.template, opts.coords) for img in images
    ]


def _prompt_options(viz: Visualizer, analysis: AnalysisOptions | None) -> AnalysisOptions:
    return (analysis or AnalysisOptions()).for_preset(viz.preset)


def _score(
    viz: Visualizer,
    res: Result,
    analysis: AnalysisOptions | None,
    plan: Sequence[_Step],
    picture: Callable[[_Step], Image.Image],
    grid: Grid,
    hit: Hit,
    batch: int | None,
    most: int,
) -> tuple[list[tuple[float, bool, int]], int]:
    """(log-probability of the answer's coordinate tokens, greedy click on target, coordinate tokens)
    for every step of ``plan``, and the batch size it ran: ``batch`` images per forward (None: as many as `decode.CACHE_BUDGET`
    of key/value cache allows, at most ``most``: see `lav.faithful.decode`)."""
    opts = _prompt_options(viz, analysis)
    ends = torch.tensor(sorted(viz.end_ids()))
    pooling = poolable(viz.parts)

    def batch_of(first: int, size: int):
        images = [picture(s) for s in plan[first : first + size]]
        requests = _requests(res, images, opts, res.response)
        return images, requests, prepare(viz, requests)

    # The first batch, prepared at the largest size, gives the length a step's cache is sized by; it
    # runs as it is unless the budget allows fewer rows (then the batches are prepared again).
    ready = batch_of(0, batch or most)
    length = ready[2].inputs["input_ids"].shape[1]
    answer_length = length - ready[2].answer_starts[0]
    row = row_bytes(viz, length)
    if batch is None:
        batch = batch_rows(row, most)
        if batch < most:
            ready = None
    batch_bytes = batch * row
    # A batch the user asked for always runs, whatever its cache.
    pool = GreedyPool(viz, answer_length + EXTRA_TOKENS, max(CACHE_BUDGET, batch_bytes)) if pooling else None
    pending: dict[int, tuple[Request, Grid]] = {}
    hits: list[bool | None] = [None] * len(plan)
    coord_lps: list[float] = []
    extra = {}
    coords: list[int] | None = None

    def settle() -> None:
        """The pooled steps' greedy answers, decoded together, and their clicks."""
        found = pool.decode()
        keys = list(found)
        answers = read_answers(
            viz, [pending[k][0] for k in keys], [pending[k][1] for k in keys], [found[k] for k in keys], opts
        )
        for key, (_, click) in zip(keys, answers, strict=True):
            hits[key] = click is not None and bool(hit(click.x, click.y))
            del pending[key]

    for first in range(0, len(plan), batch):
        images, requests, prepared = ready if first == 0 and ready is not None else batch_of(first, batch)
        inputs = prepared.inputs
        a = prepared.answer_starts[0]
        n = inputs["input_ids"].shape[1] - a
        if any(s != a for s in prepared.answer_starts) or n < 1 or inputs["input_ids"].shape[1] != length:
            raise LavError("the forced answer tokenised differently across the steps; please report it")
        answer = inputs["input_ids"][0, -n:].tolist()
        if coords is None:
            rows = read_click(viz, requests[0], grid, answer, opts.answer_rules or viz.answer_rules).rows
            coords = sorted({*rows.x, *rows.y})
            if not coords:
                raise LavError("the answer's coordinate tokens were not found; cannot score its probability")
            extra = {"logits_to_keep": n + 1} if keeps_logits(viz.model) else {}
        if pool is not None and not pool.fits(batch_bytes):
            settle()
        # With a cache that can be cut back, the forward keeps it: the steps whose greedy answer
        # differs from the forced one decode on from it (pooled, within the budget).
        forward = viz.model(**inputs, use_cache=pool is not None, **extra)
        logits = forward.logits[:, -(n + 1) :].float()
        logp = torch.log_softmax(logits[:, :n], dim=-1)
        ids = inputs["input_ids"][:, -n:]
        token_lp = logp.gather(-1, ids[..., None])[..., 0]
        coord_lps.extend(token_lp[:, coords].sum(-1).double().cpu().tolist())
        greedy = logits.argmax(-1)
        differs = torch.cat([greedy[:, :n] != ids, ~torch.isin(greedy[:, n:].cpu(), ends).to(ids.device)], 1)
        todo = []
        for i, d in enumerate(differs.any(-1).tolist()):
            if d:
                todo.append(i)
            else:
                hits[first + i] = bool(hit(res.click.x, res.click.y))
        keys = [first + i for i in todo]
        pooled = (
            bool(todo) and pool is not None and pool.add(keys, inputs, cache_of(forward), a, greedy, todo)
        )
        del forward  # the pool keeps a copy of the rows it decodes on
        if pooled:
            pending.update({first + i: (requests[i], prepared.grids[i]) for i in todo})
        elif todo:  # a cache that cannot be cut back (linear attention): ask afresh
            answers = ask(viz, res, [images[i] for i in todo], analysis, None, n + EXTRA_TOKENS)
            for i, (_, click) in zip(todo, answers, strict=True):
                hits[first + i] = click is not None and bool(hit(click.x, click.y))
    if pending:
        settle()
    return [(lp, bool(h), len(coords or ())) for lp, h in zip(coord_lps, hits, strict=True)], batch


def read_answers(
    viz: Visualizer,
    requests: Sequence[Request],
    grids: Sequence[Grid],
    answers: Sequence[Sequence[int]],
    opts: AnalysisOptions,
) -> list[tuple[str, Click | None]]:
    """Each answer (token ids before the end token) and its click in its image's pixels (None when it
    has none)."""
    out = []
    for request, grid, tokens in zip(requests, grids, answers, strict=True):
        if not tokens:
            out.append(("", None))
            continue
        answer = read_click(viz, request, grid, list(tokens), opts.answer_rules or viz.answer_rules)
        out.append((answer.text, answer.click))
    return out


def ask(
    viz: Visualizer,
    res: Result,
    images: Sequence[Image.Image],
    analysis: AnalysisOptions | None,
    response: str | None = None,
    max_new_tokens: int | None = None,
) -> list[tuple[str, Click | None]]:
    """``res``'s instruction on each of ``images``: the greedy answer (or the forced ``response``) and
    its click in that image's pixels (None when it has none). Call under `_running`."""
    opts = _prompt_options(viz, analysis)
    max_new = max_new_tokens or opts.max_new_tokens or 64
    requests = _requests(res, images, opts, response)
    prepared = prepare(viz, requests, 0 if response is not None else max_new)
    if response is not None:
        ids = prepared.inputs["input_ids"]
    else:
        ids = viz.model.generate(
            **prepared.inputs,
            max_new_tokens=max_new,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=pad_id(viz),
        )
    ends = viz.end_ids()
    answers = [strip_end(ids[b, start:].tolist(), ends) for b, start in enumerate(prepared.answer_starts)]
    return read_answers(viz, requests, prepared.grids, answers, opts)


def zoom(
    viz: Visualizer,
    res: Result,
    checks: CheckOptions | None = None,
    analysis: AnalysisOptions | None = None,
    hit: Hit | None = None,
    maps: Sequence[str] | None = None,
    response: str | None = None,
) -> dict[str, Any]:
    """Each map's zoom: crop ``1/zoom_factor`` of each side around its peak, ask again (one batch),
    and the click mapped back to original pixels. ``hit``: whether a click is on the target (None: no
    hit is recorded); ``response``: force this answer on every crop instead of generating (tests).
    Returns plain JSON: ``factor`` and per map ``crop`` [x0, y0, x1, y1], ``response``, ``click``
    {x, y} in original pixels (or null) and ``hit``."""
    checks = checks or CheckOptions(zoom=True)
    names = map_names(res, maps)
    image = res.image.convert("RGB")
    boxes = [
        C.crop_box(C.peak_centre(res.maps[n].values, res.image_size), res.image_size, checks.zoom_factor)
        for n in names
    ]
    with _running(viz, res):
        answers = ask(viz, res, [image.crop(b) for b in boxes], analysis, response)
    out: dict[str, Any] = {}
    for name, box, (text, click) in zip(names, boxes, answers, strict=True):
        point = None if click is None else from_crop((click.x, click.y), box)
        out[name] = {
            "crop": list(box),
            "response": text,
            "click": None if point is None else {"x": point[0], "y": point[1]},
            "hit": None if hit is None else (point is not None and bool(hit(*point))),
        }
    return {"factor": checks.zoom_factor, "maps": out}


def from_crop(point: tuple[float, float], box: tuple[int, int, int, int]) -> tuple[float, float]:
    """A point in a crop's pixels -> the original image's pixels (the crop's offset added)."""
    return point[0] + box[0], point[1] + box[1]


def attach(
    viz: Visualizer,
    res: Result,
    checks: CheckOptions,
    analysis: AnalysisOptions | None = None,
    hit: Hit | None = None,
    target: str | None = None,
    maps: Sequence[str] | None = None,
) -> Result:
    """``res`` (and its base run, if any) with the checks ``checks`` asks for in ``res.faithfulness`` /
    ``res.zoom``. ``hit``: the target of the clicks (default: `cell_box_hit` of each run's own click
    for the curves, none for the zoom)."""
    for run in (res, res.base):
        if run is None:
            continue
        if checks.faithfulness:
            run.faithfulness = faithfulness(viz, run, checks, analysis, hit, maps, target)
        if checks.zoom:
            run.zoom = zoom(viz, run, checks, analysis, hit, maps)
    return res


def record_checks(
    viz: Visualizer, res: Result, checks: CheckOptions, analysis: AnalysisOptions | None, hit: Hit | None
) -> dict[str, Any]:
    """The checks of one evaluation sample as record fields: ``faithfulness`` and ``zoom`` of ``res``
    and, under ``base``, of its base run. ``hit``: the sample's target (None: it has none, and the
    checks are skipped). A check that fails on this sample is recorded as skipped, with why."""
    out: dict[str, Any] = {"faithfulness": None, "zoom": None, "base": None}
    runs = [("", res)] + ([("base", res.base)] if res.base is not None else [])
    for who, run in runs:
        fields: dict[str, Any] = {}
        if checks.faithfulness:
            fields["faithfulness"] = (
                {"skipped": "the sample has no target box"}
                if hit is None
                else _or_skipped(lambda run=run: faithfulness(viz, run, checks, analysis, hit))
            )
        if checks.zoom:
            fields["zoom"] = (
                {"skipped": "the sample has no target box", "maps": {}}
                if hit is None
                else _or_skipped(lambda run=run: zoom(viz, run, checks, analysis, hit))
            )
        if who:
            out["base"] = fields
        else:
            out.update(fields)
    return out


def _or_skipped(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        out = fn()
    except LavError as exc:
        return {"skipped": " ".join(str(exc).split())}
    out.pop("seconds", None)  # records are a function of the run: no wall-clock times in them
    return out

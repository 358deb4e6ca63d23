"""`Visualizer`: a model and its processor, ready to analyse screenshots one by one or in batches.

`analyze_many` validates the items, then runs the stages of `lav.stages` (prepare -> run ->
read_click -> make_maps) batch by batch, under the model's lock and with the model put back as it
was found; `analyze` is the same for one item.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from .agreement import agreement
from .capture.recorder import model_lock
from .checks import check_item, check_options, check_prompt_text, special_tokens
from .confidence import TokenScores, with_confidence
from .coords import DEFAULT_RULES, AnswerRules
from .errors import BatchError, InputError, LavError
from .inputs import DEFAULT_MAX_PIXELS, load_image
from .methods import MapMethod, Needs, Selection, chosen, resolve_heads, with_required
from .methods.heads import HeadSpec
from .models import ModelParts, inspect_model, resolve_layers, unwrap
from .options import DEFAULT_MAX_NEW_TOKENS, AnalysisOptions, LayerArg, options_from
from .placement import input_device
from .presets import Preset
from .result import Result
from .stages import Answer, Prepared, Request, forced_ids, make_maps, prepare, read_click, run

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "ITEM_KEYS", "LayerArg", "Visualizer"]

#: Keys an item of `Visualizer.analyze_many` may carry; the rest are options of the whole call.
ITEM_KEYS = ("image", "instruction", "response", "system", "template", "coords")


@contextmanager
def _as_found(model: nn.Module) -> Iterator[None]:
    """Eval mode (dropout off: the maps are of the model as it answers) for the duration only.

    Every module's own ``training`` flag is put back afterwards, also after an exception, so a
    training loop that calls `analyze` carries on exactly as it was.
    """
    flags = [(m, m.training) for m in model.modules()]
    try:
        # Already in eval mode (inference, every batch of `lav eval`): no second walk to switch it.
        if any(training for _, training in flags):
            model.eval()
        yield
    finally:
        for m, training in flags:
            if m.training != training:
                m.training = training


class Visualizer:
    """A loaded model (optionally with a LoRA adapter) and its processor, ready to `analyze`.

    Build it with `lav.load`, or directly from objects you already hold: the model is left as it is
    (device, dtype, training flag, attention implementation); `analyze` switches what it needs for
    the duration of a call and puts it back. One model may be shared by threads: calls on it run
    one at a time.
    """

    def __init__(
        self,
        model: nn.Module,
        processor,
        model_name: str = "model",
        adapter_name: str | None = None,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.model = model
        self.processor = processor
        self.parts: ModelParts = inspect_model(model)
        self.model_name = model_name
        if adapter_name is None and self.has_adapter:
            # A PeftModel handed over directly: name its active adapter.
            adapter_name = str(getattr(model, "active_adapter", None) or "adapter")
        self.adapter_name = adapter_name
        self.max_image_pixels = max_image_pixels
        # What a preset (`lav.presets`) sets: request defaults, the processor's resize bounds
        # ((min, max) pixels, None: its own) and how answers refuse. `lav.load` fills them.
        self.preset: Preset | None = None
        self.image_pixels: tuple[int, int] | None = None
        #: What refuses in this model's answers (a preset sets it; `analyze(answer_rules=)` overrides).
        self.answer_rules: AnswerRules = DEFAULT_RULES

    def __repr__(self) -> str:
        adapter = f", adapter={self.adapter_name!r}" if self.adapter_name else ""
        return f"Visualizer({self.model_name!r}{adapter}, family={self.parts.family})"

    @property
    def has_adapter(self) -> bool:
        return hasattr(self.model, "disable_adapter")

    @property
    def device(self) -> torch.device:
        """Where inputs go: the input embeddings' (execution) device, also under a device map."""
        return input_device(unwrap(self.model))

    def to_device(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Inputs on the model's input device, floating ones in its dtype (a quantized base's
        packed integer weights do not count)."""
        device = self.device
        dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float32)
        out = {}
        for key, value in inputs.items():
            value = value.to(device)
            out[key] = value.to(dtype) if value.is_floating_point() else value
        return out

    def end_ids(self) -> set[int]:
        tok = self.processor.tokenizer
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ends = {tok.eos_token_id, tok.pad_token_id}
        ends.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        ends.discard(None)
        return ends

    # ------------------------------------------------------------------------------------------
    def analyze(
        self,
        image: str | Path | Image.Image,
        instruction: str,
        response: str | None = None,
        *,
        edge_layers: LayerArg = (-2, -1),
        focus_layers: LayerArg = -1,
        compare_base: bool = False,
        max_new_tokens: int | None = None,
        system: str | None = None,
        template: str | None = None,
        coords: str | None = None,
        maps: Sequence[str] | None = None,
        focus_heads: HeadSpec = None,
        progress: Callable[[str], None] | None = None,
        answer_rules: AnswerRules | None = None,
        options: AnalysisOptions | None = None,
    ) -> Result:
        """Where the model looks when it answers ``instruction`` on ``image``.

        ``response``: force this answer instead of generating (one forward pass).
        ``edge_layers``: vision blocks (negative indices, ``"all"``); ``focus_layers``: full-attention
        decoder layers. ``template``: user text for fine-tunes trained on another format, with
        ``{instruction}`` where the instruction goes. ``coords``: the coordinate convention
        (``relative-1000``, ``absolute-resized``, ``normalized-1``); default by model family.
        ``compare_base``: also run with the LoRA adapter disabled and keep it as ``result.base``.
        ``maps``: names of the map methods to run (default: the cheap ones, see `lav.methods`).
        ``focus_heads``: ``(layer, head)`` pairs (or ``"L:H L:H"``) for the ``focus_selected`` map,
        e.g. the best heads of a `lav eval` ranking (`lav.methods.heads_from_ranking`).
        ``progress``: called with each stage as it starts (see `analyze_many`).
        ``answer_rules``: the refusal phrases and sentinels (`lav.AnswerRules`; None: the Visualizer's
        ``answer_rules``). The click is read from the final answer, after any reasoning.
        ``system``, ``template``, ``coords`` and ``max_new_tokens`` left at None take the preset's
        values (`lav.load`'s ``preset``), else the model's defaults (``max_new_tokens`` 64).
        ``options``: all of these at once, as one `lav.AnalysisOptions` (then leave the keywords out).
        """
        opts = options_from(
            options,
            {
                "edge_layers": edge_layers,
                "focus_layers": focus_layers,
                "compare_base": compare_base,
                "max_new_tokens": max_new_tokens,
                "system": system,
                "template": template,
                "coords": coords,
                "maps": maps,
                "focus_heads": focus_heads,
                "answer_rules": answer_rules,
            },
        )
        item = {"image": image, "instruction": instruction, "response": response}
        return self.analyze_many([item], batch_size=1, progress=progress, options=opts)[0]

    def analyze_many(
        self,
        items: Iterable[tuple[Any, str] | Mapping[str, Any]],
        batch_size: int = 8,
        *,
        edge_layers: LayerArg = (-2, -1),
        focus_layers: LayerArg = -1,
        compare_base: bool = False,
        max_new_tokens: int | None = None,
        maps: Sequence[str] | None = None,
        focus_heads: HeadSpec = None,
        progress: Callable[[str], None] | None = None,
        answer_rules: AnswerRules | None = None,
        options: AnalysisOptions | None = None,
    ) -> list[Result]:
        """One `Result` per item, as `analyze` would give one by one, computed in batches.

        ``items``: ``(image, instruction)`` pairs or dicts with the keys of `analyze`'s per-item
        arguments (``image``, ``instruction``, ``response``, ``system``, ``template``, ``coords``).
        Items with a forced response and items to generate run in separate batches; order is kept.
        ``progress``: called with each stage as it starts: ``"preparing"``, ``"generating"`` (or
        ``"forward"`` for forced answers), ``"maps"``; prefixed ``"base: "`` in the pass with the adapter
        disabled. A callback that raises stops the analysis, and the model is put back as it was.
        ``answer_rules``: as in `analyze`. ``options``: as in `analyze`; its ``system``, ``template``
        and ``coords`` are the defaults of items that give none.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        opts = options_from(
            options,
            {
                "edge_layers": edge_layers,
                "focus_layers": focus_layers,
                "compare_base": compare_base,
                "max_new_tokens": max_new_tokens,
                "maps": maps,
                "focus_heads": focus_heads,
                "answer_rules": answer_rules,
            },
        )
        if opts.compare_base and not self.has_adapter:
            raise InputError("compare_base needs a LoRA adapter: load the model with adapter=...")
        rules = self.answer_rules if opts.answer_rules is None else opts.answer_rules
        if not isinstance(rules, AnswerRules):
            raise InputError(f"answer_rules must be a lav.AnswerRules, got {type(rules).__name__}")
        methods = chosen(opts.maps, self.parts)
        raw_items = list(items)
        if not raw_items:
            return []
        plain = [_item_dict(i, n) for n, i in enumerate(raw_items)]
        for n, d in enumerate(plain):
            with _naming_item(n, len(plain)):
                # The options were checked when built; an item's own text and convention here.
                check_item(d["instruction"], d.get("response"))
                check_options(system=d.get("system"), template=d.get("template"), coords=d.get("coords"))
        opts = opts.for_preset(self.preset)
        plain = [self._with_defaults(d, opts) for d in plain]
        selection = Selection(
            resolve_layers(opts.edge_layers, len(self.parts.vision_attention), "vision blocks"),
            resolve_layers(
                opts.focus_layers, len(self.parts.decoder_attention), "full-attention decoder layers"
            ),
            resolve_heads(opts.focus_heads, self.parts),
        )
        methods = with_required(methods, opts.given(), opts.maps is not None)
        max_new_tokens = opts.max_new_tokens
        compare_base = opts.compare_base
        tok = self.processor.tokenizer
        requests = []
        for n, d in enumerate(plain):
            with _naming_item(n, len(plain)):
                for key in ("instruction", "system", "template"):
                    if d.get(key) is not None:
                        check_prompt_text(d[key], key, tok)
                if d.get("response") is not None:
                    # Box and point markers are how Qwen2-VL writes coordinates: an answer may hold them.
                    check_prompt_text(d["response"], "forced response", tok, allow=_answer_markers(tok))
                img = load_image(d["image"], max_pixels=self.max_image_pixels)
            img.info = {}  # our own copy: keep only pixels, so a saved result loads back equal
            requests.append(
                Request(
                    img,
                    d["instruction"],
                    d.get("response"),
                    d.get("system"),
                    d.get("template"),
                    d.get("coords"),
                )
            )

        needs = Needs()
        for method in methods:
            needs = needs | method.needs(selection)
        results: list[Result | None] = [None] * len(requests)
        order = [i for i, r in enumerate(requests) if r.response is not None] + [
            i for i, r in enumerate(requests) if r.response is None
        ]
        with model_lock(self.model), _as_found(self.model):
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                forced = [i for i in chunk if requests[i].response is not None]
                generated = [i for i in chunk if requests[i].response is None]
                for group in (forced, generated):
                    if not group:
                        continue
                    batch = [requests[i] for i in group]
                    try:
                        out = self._batch(
                            batch, methods, selection, needs, max_new_tokens, True, progress, rules
                        )
                        if compare_base:
                            with self.model.disable_adapter():
                                base = self._batch(
                                    batch,
                                    methods,
                                    selection,
                                    needs,
                                    max_new_tokens,
                                    False,
                                    _prefixed(progress),
                                    rules,
                                )
                            for res, b in zip(out, base, strict=True):
                                res.base = b
                    except LavError as exc:
                        finished = {i: r for i, r in enumerate(results) if r is not None}
                        if not finished:
                            raise
                        # Minutes of finished batches must not be lost with the one that failed.
                        raise BatchError(
                            f"items {', '.join(map(str, sorted(group)))} failed ({exc}); the "
                            f"{len(finished)} items that finished are in this error's .finished",
                            finished,
                            sorted(group),
                        ) from exc
                    for i, res in zip(group, out, strict=True):
                        results[i] = res
        return [r for r in results if r is not None]

    @staticmethod
    def _with_defaults(item: dict[str, Any], options: AnalysisOptions) -> dict[str, Any]:
        """``item`` with the options' (preset-filled) system prompt, template and convention where it
        gives none."""
        for key in ("system", "template", "coords"):
            if item.get(key) is None:
                item[key] = getattr(options, key)
        return item

    def _batch(
        self,
        requests: Sequence[Request],
        methods: Sequence[MapMethod],
        selection: Selection,
        needs: Needs,
        max_new_tokens: int,
        adapter_enabled: bool,
        progress: Callable[[str], None] | None = None,
        rules: AnswerRules | None = None,
    ) -> list[Result]:
        say = progress or (lambda stage: None)
        say("preparing")
        t0 = time.perf_counter()
        prepared = prepare(self, requests, 0 if requests[0].response is not None else max_new_tokens)
        t_prepare = time.perf_counter() - t0
        t1 = time.perf_counter()
        # A forced batch's clicks are read before its forward (part of the maps stage's time).
        early = _forced_clicks(self, prepared, rules)
        t_early = time.perf_counter() - t1
        rows_at = None
        if early is not None:
            rows_at = {
                s - 1 + i for a, s in zip(early, prepared.answer_starts, strict=True) for i in a.rows.rows
            }
        say("forward" if prepared.forced else "generating")
        ran = run(self, prepared, needs, max_new_tokens, rows_at=rows_at)
        say("maps")
        t1 = time.perf_counter()
        answers = (
            early
            if early is not None
            else [
                read_click(self, r, g, ids, rules)
                for r, g, ids in zip(requests, prepared.grids, ran.answers, strict=True)
            ]
        )
        answers = [
            _scored(self, a, g, r, s)
            for a, g, r, s in zip(
                answers, prepared.grids, requests, ran.scores or [None] * len(answers), strict=True
            )
        ]
        maps = make_maps(self, prepared, ran, answers, methods, selection)
        t_maps = time.perf_counter() - t1 + t_early
        n = len(requests)
        step = "forward" if prepared.forced else "generate"
        out = []
        for b, (r, g, answer, item_maps) in enumerate(
            zip(requests, prepared.grids, answers, maps, strict=True)
        ):
            tokens = [answer.text[a:c] for a, c in answer.offsets]
            agreed = None
            if prepared.forced and ran.scores is not None:
                coordinates = (*answer.rows.x, *answer.rows.y)
                agreed = agreement(
                    ran.scores[b], ran.answers[b], tokens, coordinates, self.processor.tokenizer
                )
            out.append(
                Result(
                    model=self.model_name,
                    adapter=self.adapter_name,
                    adapter_enabled=adapter_enabled and self.adapter_name is not None,
                    family=self.parts.family,
                    instruction=r.instruction,
                    response=answer.text,
                    forced_response=prepared.forced,
                    image=r.image,
                    resized_size=(g.w * self.parts.patch, g.h * self.parts.patch),
                    grid={"t": g.t, "h": g.h, "w": g.w, "merge": self.parts.merge, "patch": self.parts.patch},
                    click=answer.click,
                    click_error=answer.click_error,
                    coords_convention=answer.convention,
                    answer_span=answer.answer_span,
                    refused=answer.refused,
                    answer_tokens=tokens,
                    attention_backend=ran.rec.backend,
                    received_method=sorted(ran.rec.methods),
                    # A batch's times are shared by its items: each gets its share.
                    timings={"prepare": t_prepare / n, step: ran.seconds / n, "maps": t_maps / n},
                    maps=item_maps,
                    agreement=agreed,
                )
            )
        return out


def _forced_clicks(viz: Visualizer, prepared: Prepared, rules: AnswerRules | None) -> list[Answer] | None:
    """A forced batch's answers read before its forward (their ids are the inputs'), so the forward
    records only the decoder rows the maps read; None for a generated batch, or when an answer
    cannot be read (it then fails after the forward, with the same error as before)."""
    if not prepared.forced:
        return None
    try:
        return [
            read_click(viz, r, g, ids, rules)
            for r, g, ids in zip(prepared.requests, prepared.grids, forced_ids(viz, prepared), strict=True)
        ]
    except LavError:
        return None


def _scored(viz: Visualizer, answer: Answer, grid, request: Request, scores: TokenScores | None) -> Answer:
    """``answer`` with its click's digit confidence and alternatives (`lav.confidence`)."""
    if answer.click is None or scores is None:
        return answer
    tok = viz.processor.tokenizer
    resized = (grid.w * viz.parts.patch, grid.h * viz.parts.patch)
    click = with_confidence(
        answer.click,
        answer.text,
        answer.offsets,
        scores,
        lambda i: tok.decode([i], skip_special_tokens=True),
        resized,
        request.image.size,
    )
    return replace(answer, click=click)


def _prefixed(progress: Callable[[str], None] | None) -> Callable[[str], None] | None:
    return None if progress is None else (lambda stage: progress(f"base: {stage}"))


@contextmanager
def _naming_item(n: int, count: int) -> Iterator[None]:
    """A `LavError` raised inside names item ``n`` of the batch (the same class, the same message)."""
    try:
        yield
    except LavError as exc:
        if count == 1 or str(exc).startswith("item "):
            raise
        try:
            named = type(exc)(f"item {n}: {exc}")
        except TypeError:  # a subclass with other arguments: keep it as it is
            raise exc from None
        raise named from exc


def _item_dict(item: Any, n: int) -> dict[str, Any]:
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - set(ITEM_KEYS))
        if unknown:
            raise InputError(
                f"item {n} has key(s) {unknown}; an item may have {', '.join(ITEM_KEYS)} "
                "(layers, compare_base and max_new_tokens are options of analyze_many itself)"
            )
        if "image" not in item or "instruction" not in item:
            raise InputError(f"item {n} needs 'image' and 'instruction'")
        return dict(item)
    if isinstance(item, tuple) and len(item) == 2:
        return {"image": item[0], "instruction": item[1]}
    raise InputError(
        f"item {n} is a {type(item).__name__}; pass (image, instruction) pairs or dicts with the keys "
        f"{', '.join(ITEM_KEYS)}"
    )


def _answer_markers(tok) -> set[str]:
    return {t for t in special_tokens(tok) if any(w in t for w in ("box_", "object_ref", "point", "quad"))}

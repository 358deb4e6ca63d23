"""Analysis in stages with a batch dimension: prepare -> run -> maps -> click -> `Result`.

- `prepare` builds one left-padded batch of model inputs from requests (image, instruction, an
  optional forced response) with the model's own processor and chat template;
- `run` does one `generate` (or one forward for forced responses) over the batch with capture on;
- `make_maps` reduces the recording to each item's maps with the chosen methods (`lav.methods`);
- `read_click` parses each answer into a click in original-image pixels.

`Visualizer.analyze` is their composition for one item, `Visualizer.analyze_many` for many.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from .capture import Recording, capture
from .capture.recorder import model_lock
from .checks import check_length, check_prompt_text, context_length, special_tokens, validate_request
from .coords import Click, explain_missing, number_tokens, parse_answer, resolve_convention, to_click
from .errors import InputError, LavError
from .geometry import Grid, grids_from_thw
from .inputs import DEFAULT_MAX_PIXELS, load_image
from .methods import AnswerRows, Item, MapMethod, Needs, Selection, chosen
from .models import ModelParts, inspect_model, resolve_layers
from .result import Map, Result

LayerArg = int | Sequence[int] | str | None

#: Keys an item of `Visualizer.analyze_many` may carry; the rest are options of the whole call.
ITEM_KEYS = ("image", "instruction", "response", "system", "template", "coords")


@dataclass(frozen=True)
class Request:
    """One item to analyse: an upright RGB image, the instruction and an optional forced answer."""

    image: Image.Image
    instruction: str
    response: str | None = None
    system: str | None = None
    template: str | None = None
    coords: str | None = None


@dataclass
class Prepared:
    """Model inputs of a batch (left-padded, on the model's device) and where each answer starts.

    ``answer_starts[b]``: position of item b's first answer token in the padded sequence; with a
    generated answer every item's answer starts at the padded prompt length.
    """

    requests: list[Request]
    inputs: dict[str, torch.Tensor]
    answer_starts: list[int]
    grids: list[Grid]
    forced: bool


@dataclass
class Ran:
    """What one run gave: the recording and each item's answer tokens (end of turn stripped)."""

    rec: Recording
    answers: list[list[int]]
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Stages


def prompt_text(processor, instruction: str, system: str | None, template: str | None) -> str:
    """The chat-template text of one user turn with one image, ready for the answer."""
    user_text = instruction if template is None else template.replace("{instruction}", instruction)
    messages = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user_text}]})
    try:
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except (ValueError, TypeError) as exc:
        raise LavError(
            f"the processor has no usable chat template ({exc}); pass a processor that has one"
        ) from exc


def _pad_left(encoded: list[dict[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """Join single-item processor outputs into one batch, left-padding the token-wise tensors."""
    length = max(e["input_ids"].shape[1] for e in encoded)
    out: dict[str, torch.Tensor] = {}
    for key in encoded[0]:
        values = [e[key] for e in encoded]
        if key in ("pixel_values", "image_grid_thw"):
            out[key] = torch.cat(values, dim=0)
            continue
        if values[0].dim() != 2 or values[0].shape[1] != encoded[0]["input_ids"].shape[1]:
            raise LavError(
                f"the processor returned {key!r} of shape {tuple(values[0].shape)}, which lav cannot "
                "batch; analyse one item at a time (batch_size=1) and please report the processor"
            )
        fill = pad_id if key == "input_ids" else 0
        out[key] = torch.stack(
            [torch.cat([torch.full((length - v.shape[1],), fill, dtype=v.dtype), v[0]]) for v in values]
        )
    return out


def prepare(viz: Visualizer, requests: Sequence[Request], max_new_tokens: int = 0) -> Prepared:
    """Left-padded batch inputs for ``requests`` (all forced, or all generated).

    Each prompt (plus ``max_new_tokens`` when generating) must fit the model's context.
    """
    forced = requests[0].response is not None
    if any((r.response is not None) != forced for r in requests):
        raise LavError("a batch mixes forced and generated answers; prepare them as two batches")
    processor, tok = viz.processor, viz.processor.tokenizer
    limit = context_length(getattr(viz.model, "config", None))
    encoded, prompt_lengths = [], []
    for r in requests:
        text = prompt_text(processor, r.instruction, r.system, r.template)
        full = text + (r.response or "")
        enc = dict(processor(text=[full], images=[r.image], return_tensors="pt"))
        ids = enc["input_ids"][0]
        check_length(int(ids.shape[0]) + (0 if forced else max_new_tokens), limit, "the prompt")
        if forced:
            prompt_lengths.append(_prompt_length(tok, text, ids, viz.parts.image_token_id))
        encoded.append({k: v for k, v in enc.items() if isinstance(v, torch.Tensor)})
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    inputs = _pad_left(encoded, pad)
    length = inputs["input_ids"].shape[1]
    if forced:
        starts = [
            length - (e["input_ids"].shape[1] - p) for e, p in zip(encoded, prompt_lengths, strict=True)
        ]
    else:
        starts = [length] * len(requests)
    grids = grids_from_thw(inputs["image_grid_thw"], viz.parts.merge)
    return Prepared(list(requests), viz.to_device(inputs), starts, grids, forced)


def _prompt_length(tok, text: str, full_ids: torch.Tensor, image_token_id: int) -> int:
    """Tokens of the prompt alone inside ``full_ids`` (prompt + forced answer, image pads expanded).

    The text tokenizer sees one image pad where the processor put one per image token; the prompt's
    length is its own token count plus that expansion. Checked token by token, so a tokenizer that
    merges the answer with the prompt's last token is refused, not mislocated.
    """
    ids = tok(text)["input_ids"]  # as the processor calls it (its defaults, special tokens included)
    pads_text = sum(1 for t in ids if t == image_token_id)
    pads_full = int((full_ids == image_token_id).sum())
    expanded: list[int] = []
    per_pad = (pads_full // pads_text) if pads_text else 0
    for t in ids:
        expanded.extend([t] * per_pad if t == image_token_id else [t])
    n = len(expanded)
    if pads_text != 1 or n >= full_ids.shape[0] or full_ids[:n].tolist() != expanded:
        raise LavError(
            "the tokenizer merges the response with the prompt's last token; cannot locate the answer"
        )
    return n


def run(viz: Visualizer, prepared: Prepared, needs: Needs, max_new_tokens: int) -> Ran:
    """One generate (or forward) over the batch with capture on; each item's answer token ids."""
    inputs = prepared.inputs
    tok = viz.processor.tokenizer
    rows_from = min(prepared.answer_starts) - 1
    t0 = time.perf_counter()
    with (
        torch.inference_mode(),
        capture(
            viz.model,
            vision_blocks=needs.vision_blocks,
            decoder_layers=needs.decoder_layers,
            rows_from=rows_from,
        ) as rec,
    ):
        if prepared.forced:
            viz.model(**inputs, use_cache=False)
            ids = inputs["input_ids"]
        else:
            ids = viz.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            )
    seconds = time.perf_counter() - t0
    ends = viz.end_ids()
    answers = [_strip_end(ids[b, start:].tolist(), ends) for b, start in enumerate(prepared.answer_starts)]
    return Ran(rec, answers, seconds)


@dataclass(frozen=True)
class Answer:
    """One item's answer: text, token spans, the click (or why there is none) and the focus rows."""

    text: str
    offsets: list[tuple[int, int]]
    click: Click | None
    click_error: str | None
    convention: str | None
    rows: AnswerRows


def read_click(viz: Visualizer, request: Request, grid: Grid, ids: list[int]) -> Answer:
    """Parse one answer into a click in original-image pixels and the rows its digits sit on."""
    if not ids:
        raise LavError(
            "the model answered nothing (it ended at once); check the chat template or the adapter"
        )
    text, offsets = _decode_with_offsets(viz.processor.tokenizer, ids)
    resized = (grid.w * viz.parts.patch, grid.h * viz.parts.patch)
    parsed = parse_answer(text)
    if parsed is None:
        rows = AnswerRows(tuple(range(len(ids))), (), (), "all answer tokens (the answer has no coordinates)")
        return Answer(text, offsets, None, explain_missing(text), None, rows)
    convention = resolve_convention(parsed, viz.parts.spec.coords, request.coords)
    click = to_click(parsed, convention, resized, request.image.size)
    spans = number_tokens(offsets, parsed)
    x_rows, y_rows = tuple(spans["x"]), tuple(spans["y"])
    rows = AnswerRows(tuple(sorted({*x_rows, *y_rows})), x_rows, y_rows, "coordinate digits")
    return Answer(text, offsets, click, None, convention, rows)


def make_maps(
    viz: Visualizer,
    prepared: Prepared,
    ran: Ran,
    answers: Sequence[Answer],
    methods: Sequence[MapMethod],
    selection: Selection,
) -> list[dict[str, Map]]:
    """Each item's maps by name, from one recording."""
    image_token = viz.parts.image_token_id
    ids = prepared.inputs["input_ids"].cpu()
    out = []
    for b, answer in enumerate(answers):
        item = Item(
            rec=ran.rec,
            parts=viz.parts,
            row=b,
            grids=prepared.grids,
            image=b,
            image_positions=(ids[b] == image_token).nonzero().flatten(),
            answer_start=prepared.answer_starts[b],
            answer=answer.rows,
        )
        maps: dict[str, Map] = {}
        for method in methods:
            for m in method.reduce(item, selection):
                if m.name in maps:
                    raise LavError(f"two map methods make a map called {m.name!r}")
                maps[m.name] = m
        out.append(maps)
    return out


# --------------------------------------------------------------------------------------------


@contextmanager
def _as_found(model: nn.Module) -> Iterator[None]:
    """Eval mode (dropout off: the maps are of the model as it answers) for the duration only.

    Every module's own ``training`` flag is put back afterwards, also after an exception, so a
    training loop that calls `analyze` carries on exactly as it was.
    """
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for m, training in flags:
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

    def __repr__(self) -> str:
        adapter = f", adapter={self.adapter_name!r}" if self.adapter_name else ""
        return f"Visualizer({self.model_name!r}{adapter}, family={self.parts.family})"

    @property
    def has_adapter(self) -> bool:
        return hasattr(self.model, "disable_adapter")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to_device(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Inputs on the model's device, floating ones in its dtype."""
        device = self.device
        dtype = next(self.model.parameters()).dtype
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
        max_new_tokens: int = 64,
        system: str | None = None,
        template: str | None = None,
        coords: str | None = None,
        maps: Sequence[str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Result:
        """Where the model looks when it answers ``instruction`` on ``image``.

        ``response``: force this answer instead of generating (one forward pass).
        ``edge_layers``: vision blocks (negative indices, ``"all"``); ``focus_layers``: full-attention
        decoder layers. ``template``: user text for fine-tunes trained on another format, with
        ``{instruction}`` where the instruction goes. ``coords``: the coordinate convention
        (``relative-1000``, ``absolute-resized``, ``normalized-1``); default by model family.
        ``compare_base``: also run with the LoRA adapter disabled and keep it as ``result.base``.
        ``maps``: names of the map methods to run (default: every registered one, see `lav.methods`).
        ``progress``: called with each stage as it starts (see `analyze_many`).
        """
        item = {
            "image": image,
            "instruction": instruction,
            "response": response,
            "system": system,
            "template": template,
            "coords": coords,
        }
        return self.analyze_many(
            [item],
            batch_size=1,
            edge_layers=edge_layers,
            focus_layers=focus_layers,
            compare_base=compare_base,
            max_new_tokens=max_new_tokens,
            maps=maps,
            progress=progress,
        )[0]

    def analyze_many(
        self,
        items: Iterable[tuple[Any, str] | Mapping[str, Any]],
        batch_size: int = 8,
        *,
        edge_layers: LayerArg = (-2, -1),
        focus_layers: LayerArg = -1,
        compare_base: bool = False,
        max_new_tokens: int = 64,
        maps: Sequence[str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> list[Result]:
        """One `Result` per item, as `analyze` would give one by one, computed in batches.

        ``items``: ``(image, instruction)`` pairs or dicts with the keys of `analyze`'s per-item
        arguments (``image``, ``instruction``, ``response``, ``system``, ``template``, ``coords``).
        Items with a forced response and items to generate run in separate batches; order is kept.
        ``progress``: called with each stage as it starts: ``"preparing"``, ``"generating"`` (or
        ``"forward"`` for forced answers), ``"maps"``; prefixed ``"base: "`` in the pass with the adapter
        disabled. A callback that raises stops the analysis, and the model is put back as it was.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(compare_base, bool):
            raise InputError(f"compare_base must be True or False, got {compare_base!r}")
        if compare_base and not self.has_adapter:
            raise InputError("compare_base needs a LoRA adapter: load the model with adapter=...")
        methods = chosen(maps, self.parts)
        raw_items = list(items)
        if not raw_items:
            return []
        plain = [_item_dict(i, n) for n, i in enumerate(raw_items)]
        for d in plain:
            validate_request(
                d["instruction"],
                d.get("response"),
                system=d.get("system"),
                template=d.get("template"),
                max_new_tokens=max_new_tokens,
                edge_layers=edge_layers,
                focus_layers=focus_layers,
                coords=d.get("coords"),
            )
        selection = Selection(
            resolve_layers(edge_layers, len(self.parts.vision_attention), "vision blocks"),
            resolve_layers(focus_layers, len(self.parts.decoder_attention), "full-attention decoder layers"),
        )
        tok = self.processor.tokenizer
        requests = []
        for d in plain:
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
                    out = self._batch(batch, methods, selection, needs, max_new_tokens, True, progress)
                    if compare_base:
                        with self.model.disable_adapter():
                            base = self._batch(
                                batch, methods, selection, needs, max_new_tokens, False, _prefixed(progress)
                            )
                        for res, b in zip(out, base, strict=True):
                            res.base = b
                    for i, res in zip(group, out, strict=True):
                        results[i] = res
        return [r for r in results if r is not None]

    def _batch(
        self,
        requests: Sequence[Request],
        methods: Sequence[MapMethod],
        selection: Selection,
        needs: Needs,
        max_new_tokens: int,
        adapter_enabled: bool,
        progress: Callable[[str], None] | None = None,
    ) -> list[Result]:
        say = progress or (lambda stage: None)
        say("preparing")
        t0 = time.perf_counter()
        prepared = prepare(self, requests, 0 if requests[0].response is not None else max_new_tokens)
        t_prepare = time.perf_counter() - t0
        say("forward" if prepared.forced else "generating")
        ran = run(self, prepared, needs, max_new_tokens)
        say("maps")
        t1 = time.perf_counter()
        answers = [
            read_click(self, r, g, ids)
            for r, g, ids in zip(requests, prepared.grids, ran.answers, strict=True)
        ]
        maps = make_maps(self, prepared, ran, answers, methods, selection)
        t_maps = time.perf_counter() - t1
        n = len(requests)
        step = "forward" if prepared.forced else "generate"
        out = []
        for r, g, answer, item_maps in zip(requests, prepared.grids, answers, maps, strict=True):
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
                    answer_tokens=[answer.text[a:b] for a, b in answer.offsets],
                    attention_backend=ran.rec.backend,
                    received_method=sorted(ran.rec.methods),
                    # A batch's times are shared by its items: each gets its share.
                    timings={"prepare": t_prepare / n, step: ran.seconds / n, "maps": t_maps / n},
                    maps=item_maps,
                )
            )
        return out


def _prefixed(progress: Callable[[str], None] | None) -> Callable[[str], None] | None:
    return None if progress is None else (lambda stage: progress(f"base: {stage}"))


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


def _strip_end(ids: list[int], ends: set[int]) -> list[int]:
    """Drop the end-of-turn token and anything after it (padding)."""
    for i, token in enumerate(ids):
        if token in ends:
            return ids[:i]
    return ids


def _decode_with_offsets(tok, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """Decoded answer and each token's character span in it, by decoding growing prefixes.

    Works for any tokenizer (byte-level BPE included), unlike re-tokenising the text, which may
    split it differently from what the model generated.
    """
    offsets, prev = [], 0
    for i in range(len(ids)):
        cur = len(tok.decode(ids[: i + 1], skip_special_tokens=True))
        offsets.append((prev, cur))
        prev = cur
    return tok.decode(ids, skip_special_tokens=True), offsets

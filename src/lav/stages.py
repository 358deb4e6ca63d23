"""The stages of an analysis, each with a batch dimension: prepare -> run -> read_click -> make_maps.

- `prepare` builds one left-padded batch of model inputs from requests (image, instruction, an
  optional forced response) with the model's own processor and chat template;
- `run` does one `generate` (or one forward for forced responses) over the batch with capture on;
- `read_click` parses each answer into a click in original-image pixels;
- `make_maps` reduces the recording to each item's maps with the chosen methods (`lav.methods`).

`lav.Visualizer.analyze_many` composes them; `analyze` is the composition for one item.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from .capture import Recording, capture
from .checks import check_length, context_length
from .confidence import TokenScores, forced_scores
from .coords import (
    AnswerRules,
    Click,
    explain_missing,
    number_tokens,
    oriented,
    parse_answer,
    resolve_convention,
    to_click,
    tokens_for_spans,
)
from .errors import LavError
from .geometry import Grid, grids_from_thw
from .geometry.pixels import smart_resize
from .methods import AnswerRows, Item, MapMethod, Needs, Selection
from .methods.forcing import with_answers
from .presets import fill, needs_size
from .result import Map
from .scoring import forced_logits, scoring_steps

if TYPE_CHECKING:
    from .analysis import Visualizer


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
    #: Each item's answer positions scored from the pass's own logits (`lav.confidence`): the digit
    #: confidence, and for a forced answer the engines' agreement (`lav.agreement`).
    scores: list[TokenScores] | None = None


# --------------------------------------------------------------------------------------------
# Stages


def prompt_text(
    processor,
    instruction: str,
    system: str | None,
    template: str | None,
    size: tuple[int, int] | None = None,
) -> str:
    """The chat-template text of one user turn with one image, ready for the answer: `prompt_messages`
    through the processor's chat template."""
    messages = prompt_messages(instruction, system, template, size)
    try:
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except (ValueError, TypeError) as exc:
        raise LavError(
            f"the processor has no usable chat template ({exc}); pass a processor that has one"
        ) from exc


def prompt_messages(
    instruction: str, system: str | None, template: str | None, size: tuple[int, int] | None = None
) -> list[dict[str, Any]]:
    """The chat messages of one user turn with one image (``{"type": "image"}`` where it goes).

    ``template``: the user text with ``{instruction}``; its ``{image}`` marks where the image goes
    (without it the image comes first). ``size``: the resized image's (width, height), put in for
    ``{width}`` / ``{height}`` in the system prompt and the template (see `lav.presets`).
    """
    user_text = template or "{instruction}"
    if "{image}" not in user_text:
        user_text = "{image}" + user_text
    # Split before filling in: an instruction that happens to contain "{image}" stays text.
    before, _, after = (fill(part, instruction, size) for part in user_text.partition("{image}"))
    content: list[dict[str, str]] = [{"type": "text", "text": before}] if before else []
    content.append({"type": "image"})
    if after:
        content.append({"type": "text", "text": after})
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": fill(system, None, size)}]})
    messages.append({"role": "user", "content": content})
    return messages


def pixel_bounds(viz: Visualizer) -> tuple[int, int]:
    """(min_pixels, max_pixels) the processor resizes into: ``viz.image_pixels`` when set (a preset's or
    the user's), else the image processor's own (``min_pixels`` / ``max_pixels`` or ``size``)."""
    if viz.image_pixels is not None:
        return viz.image_pixels
    ip = getattr(viz.processor, "image_processor", None)
    size = getattr(ip, "size", None)
    get = size.get if isinstance(size, dict) else (lambda key: getattr(size, key, None))
    low = getattr(ip, "min_pixels", None) or get("shortest_edge")
    high = getattr(ip, "max_pixels", None) or get("longest_edge")
    if not isinstance(low, int) or not isinstance(high, int):
        raise LavError(
            "the image processor states no min/max pixels (size shortest_edge / longest_edge); "
            "pass image_pixels=(min, max) (--pixels MIN:MAX)"
        )
    return low, high


def _resized_size(viz: Visualizer, image: Image.Image) -> tuple[int, int]:
    """(width, height) of ``image`` after the processor's ``smart_resize`` (`pixel_bounds`)."""
    low, high = pixel_bounds(viz)
    factor = viz.parts.patch * viz.parts.merge
    h, w = smart_resize(image.height, image.width, factor, low, high)
    return w, h


def _pad_left(encoded: list[dict[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """Join single-item processor outputs into one batch, left-padding the token-wise tensors."""
    length = max(e["input_ids"].shape[1] for e in encoded)
    out: dict[str, torch.Tensor] = {}
    for key in encoded[0]:
        values = [e[key] for e in encoded]
        if key in ("pixel_values", "image_grid_thw"):
            out[key] = torch.cat(values, dim=0)
            continue
        _check_token_wise(key, values[0], encoded[0]["input_ids"].shape[1])
        fill = pad_id if key == "input_ids" else 0
        out[key] = torch.stack(
            [torch.cat([torch.full((length - v.shape[1],), fill, dtype=v.dtype), v[0]]) for v in values]
        )
    return out


def _check_token_wise(key: str, value: torch.Tensor, length: int) -> None:
    if value.dim() != 2 or value.shape[1] != length:
        raise LavError(
            f"the processor returned {key!r} of shape {tuple(value.shape)}, which lav cannot "
            "batch; analyse one item at a time (batch_size=1) and please report the processor"
        )


def _whole(enc: dict[str, Any]) -> dict[str, torch.Tensor]:
    """One processor output of equal-length rows as the batch it already is (what `_split` and
    `_pad_left` would join back, without copying the pixels twice)."""
    tensors = {key: v for key, v in enc.items() if isinstance(v, torch.Tensor)}
    for key, value in tensors.items():
        if key not in ("pixel_values", "image_grid_thw"):
            _check_token_wise(key, value, tensors["input_ids"].shape[1])
    return tensors


def _split(enc: dict[str, Any], k: int) -> list[dict[str, torch.Tensor]]:
    """One processor output for ``k`` images (left-padded rows) as ``k`` single-item outputs:
    ``pixel_values`` (patches of every image, dim) cut by each image's t*h*w, every other tensor by row."""
    tensors = {key: v for key, v in enc.items() if isinstance(v, torch.Tensor)}
    pixels = tensors["pixel_values"].split([int(n) for n in tensors["image_grid_thw"].prod(-1)])
    return [
        {key: pixels[i] if key == "pixel_values" else v[i : i + 1] for key, v in tensors.items()}
        for i in range(k)
    ]


def prepare(viz: Visualizer, requests: Sequence[Request], max_new_tokens: int = 0) -> Prepared:
    """Left-padded batch inputs for ``requests`` (all forced, or all generated).

    Each prompt (plus ``max_new_tokens`` when generating) must fit the model's context.
    """
    forced = requests[0].response is not None
    if any((r.response is not None) != forced for r in requests):
        raise LavError("a batch mixes forced and generated answers; prepare them as two batches")
    processor, tok = viz.processor, viz.processor.tokenizer
    limit = context_length(getattr(viz.model, "config", None))
    # The processor's own resize bounds unless a preset or the user set others (`size` is the
    # keyword both transformers 4.57 and 5 take at call time).
    resize = {} if viz.image_pixels is None else {"size": _size_kwarg(viz.image_pixels)}
    # One processor call per image mode (the image processor infers the channel layout from a call's
    # first image), the tokenizer left-padding its rows: each row is what one call per request gives,
    # left-padded (the processor's own overhead per call was most of `prepare`'s time: eval batches
    # of different screens, the faithfulness pass's masked copies of one).
    # A tokenizer without a pad token cannot pad: one call per request, padded in `_pad_left` with
    # the end-of-sequence token (`pad_id`), as generate pads.
    pads = tok.pad_token_id is not None
    groups: dict[object, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault(r.image.mode if pads else i, []).append(i)
    encoded: list[dict[str, torch.Tensor]] = [{} for _ in requests]
    answer_lengths = [0] * len(requests)  # forced answers' tokens (the end of the unpadded row)
    prompt_ids: dict[str, list[int]] = {}  # per prompt text (a batch's rows often share theirs)
    for rows in groups.values():
        texts, sizes = [], []
        for i in rows:
            r = requests[i]
            sizes.append(_resized_size(viz, r.image) if needs_size(r.system, r.template) else None)
            texts.append(prompt_text(processor, r.instruction, r.system, r.template, sizes[-1]))
        full = [t + (requests[i].response or "") for t, i in zip(texts, rows, strict=True)]
        images = [requests[i].image for i in rows]
        enc = dict(
            processor(
                text=full, images=images, padding=pads, padding_side="left", return_tensors="pt", **resize
            )
        )
        for j, i in enumerate(rows):
            ids = enc["input_ids"][j][enc["attention_mask"][j].bool()]  # the row without its padding
            if sizes[j] is not None:
                _check_size(sizes[j], enc["image_grid_thw"][j], viz.parts.patch)
            check_length(int(ids.shape[0]) + (0 if forced else max_new_tokens), limit, "prompt")
            if forced:
                # As the processor tokenises it (its defaults, special tokens included).
                if texts[j] not in prompt_ids:
                    prompt_ids[texts[j]] = tok(texts[j])["input_ids"]
                prompt = _prompt_length(prompt_ids[texts[j]], ids, viz.parts.image_token_id)
                answer_lengths[i] = int(ids.shape[0]) - prompt
        if len(groups) > 1:
            for i, one in zip(rows, _split(enc, len(rows)), strict=True):
                encoded[i] = one
    # One call made the whole batch, in order: its tensors are the batch (nothing to split and pad).
    inputs = _whole(enc) if len(groups) == 1 else _pad_left(encoded, pad_id(viz))
    length = inputs["input_ids"].shape[1]
    # Left padding: every row ends where the batch does.
    starts = [length - a for a in answer_lengths] if forced else [length] * len(requests)
    grids = grids_from_thw(inputs["image_grid_thw"], viz.parts.merge)
    return Prepared(list(requests), viz.to_device(inputs), starts, grids, forced)


def _size_kwarg(pixels: tuple[int, int]) -> dict[str, int]:
    return {"shortest_edge": int(pixels[0]), "longest_edge": int(pixels[1])}


def _check_size(size: tuple[int, int], thw: torch.Tensor, patch: int) -> None:
    """The size the prompt states must be the size the processor made (else the model is told a lie)."""
    made = (int(thw[2]) * patch, int(thw[1]) * patch)
    if made != tuple(size):
        raise LavError(
            f"the prompt states the resized image as {size[0]}x{size[1]} but the processor made it "
            f"{made[0]}x{made[1]}; its resize differs from smart_resize: please report the processor"
        )


def _prompt_length(ids: list[int], full_ids: torch.Tensor, image_token_id: int) -> int:
    """Tokens of the prompt alone (``ids``, the text tokenizer's) inside ``full_ids`` (prompt +
    forced answer, image pads expanded).

    The text tokenizer sees one image pad where the processor put one per image token; the prompt's
    length is its own token count plus that expansion. Checked token by token, so a tokenizer that
    merges the answer with the prompt's last token is refused, not mislocated.
    """
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


def forced_ids(viz: Visualizer, prepared: Prepared) -> list[list[int]]:
    """Each item's forced answer token ids (end of turn stripped), known before the forward."""
    ids, ends = prepared.inputs["input_ids"], viz.end_ids()
    return [strip_end(ids[b, start:].tolist(), ends) for b, start in enumerate(prepared.answer_starts)]


def run(
    viz: Visualizer,
    prepared: Prepared,
    needs: Needs,
    max_new_tokens: int,
    rows_at: Collection[int] | None = None,
) -> Ran:
    """One generate (or forward) over the batch with capture on; each item's answer token ids.

    ``rows_at``: the only absolute query positions whose decoder rows are recorded (None: every
    answer position; see `lav.capture.capture`)."""
    inputs = prepared.inputs
    rows_from = min(prepared.answer_starts) - 1
    t0 = time.perf_counter()
    with (
        torch.inference_mode(),
        capture(
            viz.model,
            vision_blocks=needs.vision_blocks,
            decoder_layers=needs.decoder_layers,
            rows_from=rows_from,
            hidden_layers=needs.hidden_layers,
            parts=viz.parts,
            rows_at=rows_at,
        ) as rec,
    ):
        starts = prepared.answer_starts
        # Logits from the first answer's position on (left padding puts every answer at the end).
        first = min(starts) - 1
        if prepared.forced:
            logits = forced_logits(viz.model, inputs, first)
            ids = inputs["input_ids"]
        else:
            # Each step's raw logits are scored as generate makes them (no extra pass, one step
            # alive at a time): the digit confidence.
            with scoring_steps(viz.model, starts[0], inputs["input_ids"].shape[0]) as scorer:
                out = viz.model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=pad_id(viz),
                    # Nothing kept per step, whatever the checkpoint's generation_config says.
                    return_dict_in_generate=True,
                    output_logits=False,
                    output_scores=False,
                )
            ids = out.sequences
        if prepared.forced:
            answers = forced_ids(viz, prepared)
        else:
            ends = viz.end_ids()
            answers = [strip_end(ids[b, start:].tolist(), ends) for b, start in enumerate(starts)]
        lengths = [len(a) for a in answers]
        if prepared.forced:
            scores = forced_scores(logits, ids, starts, lengths, first)
        else:
            scores = scorer.finish(ids, lengths)
    seconds = time.perf_counter() - t0
    return Ran(rec, answers, seconds, scores=scores)


@dataclass(frozen=True)
class Answer:
    """One item's answer: text, token spans, the click (or why there is none) and the focus rows.

    ``answer_span``: the [start, end) characters of ``text`` read as the final answer (None when
    nothing was found); ``refused``: the answer is a refusal (``click_error`` says which).
    """

    text: str
    offsets: list[tuple[int, int]]
    click: Click | None
    click_error: str | None
    convention: str | None
    rows: AnswerRows
    answer_span: tuple[int, int] | None = None
    refused: bool = False


def read_click(
    viz: Visualizer, request: Request, grid: Grid, ids: list[int], rules: AnswerRules | None = None
) -> Answer:
    """Parse one answer into a click in original-image pixels and the rows its digits sit on.

    The click and the rows come from the final answer (`lav.coords.parse_answer`), never from
    coordinates named in the reasoning before it; ``rules`` say what refuses (None: the defaults).
    """
    if not ids:
        raise LavError(
            "the model answered nothing (it ended at once); check the chat template or the adapter"
        )
    text, offsets = _decode_with_offsets(viz.processor.tokenizer, ids)
    resized = (grid.w * viz.parts.patch, grid.h * viz.parts.patch)
    parsed = parse_answer(text, rules)
    if parsed is None:
        rows = AnswerRows(tuple(range(len(ids))), (), (), "all answer tokens (the answer has no coordinates)")
        return Answer(text, offsets, None, explain_missing(text, rules), None, rows)
    if parsed.refusal is not None:
        # The decision to refuse is spelt by the sentinel's numbers, or by the refusing phrase.
        spans = [*parsed.x_spans, *parsed.y_spans] or [parsed.refusal_span or parsed.answer_span]
        chosen = tuple(tokens_for_spans(offsets, spans)) or tuple(range(len(ids)))
        rows = AnswerRows(chosen, (), (), "the refusal's tokens")
        return Answer(text, offsets, None, parsed.refusal, None, rows, parsed.answer_span, True)
    convention = resolve_convention(parsed, viz.parts.spec.coords, request.coords)
    click = to_click(parsed, convention, resized, request.image.size)
    spans = number_tokens(offsets, oriented(parsed, convention))
    x_rows, y_rows = tuple(spans["x"]), tuple(spans["y"])
    rows = AnswerRows(tuple(sorted({*x_rows, *y_rows})), x_rows, y_rows, "coordinate digits")
    return Answer(text, offsets, click, None, convention, rows, parsed.answer_span)


def pad_id(viz: Visualizer) -> int:
    """The token that pads a batch: the tokenizer's pad token, else its end-of-sequence token."""
    tok = viz.processor.tokenizer
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def items(
    viz: Visualizer,
    prepared: Prepared,
    ran: Ran,
    answers: Sequence[Answer],
    extras: dict[str, list[Any] | None] | None = None,
) -> list[Item]:
    """Each batch item's view (`lav.methods.Item`) of ``ran``'s recording, with its geometry."""
    image_token = viz.parts.image_token_id
    ids = prepared.inputs["input_ids"].cpu()
    mask = prepared.inputs.get("attention_mask")
    out = []
    for b, answer in enumerate(answers):
        start = 0 if mask is None else int(mask[b].nonzero()[0].item())
        out.append(
            Item(
                rec=ran.rec,
                parts=viz.parts,
                row=b,
                grids=prepared.grids,
                image_index=b,
                image_positions=(ids[b] == image_token).nonzero().flatten(),
                answer_start=prepared.answer_starts[b],
                answer=answer.rows,
                start=start,
                extra={name: values[b] for name, values in (extras or {}).items() if values is not None},
            )
        )
    return out


class BatchRunner:
    """One batch as a `lav.methods.Runner`: what a method's `MapMethod.extra_pass` may run again."""

    def __init__(self, viz: Visualizer, prepared: Prepared, ran: Ran, answers: Sequence[Answer]):
        self.model = viz.model
        self.parts = viz.parts
        self.requests: Sequence[Request] = prepared.requests
        self.inputs = prepared.inputs
        self.grids: Sequence[Grid] = prepared.grids
        self.answer_ids: Sequence[Sequence[int]] = ran.answers
        self.answers: Sequence[AnswerRows] = [a.rows for a in answers]
        self._viz, self._prepared, self._answers = viz, prepared, answers

    def forced_inputs(self) -> tuple[dict[str, torch.Tensor], list[int]]:
        if self._prepared.forced:
            return self._prepared.inputs, self._prepared.answer_starts
        return with_answers(self._prepared.inputs, self.answer_ids, pad_id(self._viz))

    def rerun(
        self, requests: Sequence[Request], forced_answers: Sequence[Sequence[int]], needs: Needs
    ) -> list[Item]:
        """``requests`` without responses: their prompts, then ``forced_answers`` as token ids (never
        re-tokenised from text), one forward with capture on."""
        prepared = prepare(self._viz, requests, 0)
        inputs, starts = with_answers(prepared.inputs, forced_answers, pad_id(self._viz))
        prepared = replace(prepared, inputs=inputs, answer_starts=starts, forced=True)
        return items(self._viz, prepared, run(self._viz, prepared, needs, 0), self._answers)


def make_maps(
    viz: Visualizer,
    prepared: Prepared,
    ran: Ran,
    answers: Sequence[Answer],
    methods: Sequence[MapMethod],
    selection: Selection,
) -> list[dict[str, Map]]:
    """Each item's maps by name, from one recording."""
    # Methods that need more model work (another forward, a backward) do it here, under the lock.
    runner = BatchRunner(viz, prepared, ran, answers)
    extras = {m.name: m.extra_pass(runner, selection) for m in methods}
    out = []
    for item in items(viz, prepared, ran, answers, extras):
        maps: dict[str, Map] = {}
        for method in methods:
            for m in method.reduce(item, selection):
                if m.name in maps:
                    raise LavError(f"two map methods make a map called {m.name!r}")
                maps[m.name] = m
        out.append(maps)
    return out


# --------------------------------------------------------------------------------------------


def strip_end(ids: list[int], ends: set[int]) -> list[int]:
    """Drop the end-of-turn token and anything after it (padding)."""
    for i, token in enumerate(ids):
        if token in ends:
            return ids[:i]
    return ids


#: Tokens per block of `_decode_with_offsets`: each token's prefix is decoded from its block's start.
DECODE_BLOCK = 32


def _decode_with_offsets(tok, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """Decoded answer and each token's character span in it: the lengths of its growing prefixes'
    decodes.

    Works for any tokenizer (byte-level BPE included), unlike re-tokenising the text, which may
    split it differently from what the model generated. Linear in the answer's length: a prefix is
    the decoded text up to its block's start plus the decode of the block's tokens up to it, and each
    block is checked at its end against the whole prefix's decode (a decoder that changes text across
    the block's start, such as a stripped leading space or a clean-up of " ," that straddles it, fails
    the check, and that block's prefixes are decoded whole). A block starts where the text decoded so
    far ends on a whole character.
    """
    plain = _plain_decode(tok)
    decode = plain or (lambda prefix: tok.decode(prefix, skip_special_tokens=True))
    # For transformers' decode, prefixes as views of one array: the tokenizer turns each into a list
    # with one ``tolist``; a list is checked id by id in Python first.
    source = ids if plain is not None else np.asarray(ids, dtype=np.int64)
    ends: list[int] = []
    start, head = 0, ""  # the block's first token, and the decode of every token before it
    whole = ""  # the decode of every token up to the block's end (the answer's, after the last block)
    while len(ends) < len(ids):
        stop = min(len(ends) + DECODE_BLOCK, len(ids))
        tail = [decode(source[start : j + 1]) for j in range(len(ends), stop)]
        whole = decode(source[:stop])
        if head + tail[-1] == whole:
            ends.extend(len(head) + len(t) for t in tail)
        else:
            ends.extend(len(decode(source[: j + 1])) for j in range(len(ends), stop))
        if not whole.endswith("\ufffd"):  # else the next block goes on from this one's start
            start, head = stop, whole
    spans = list(zip([0, *ends[:-1]], ends, strict=True))
    return whole, spans


def _plain_decode(tok) -> Callable[[list[int]], str] | None:
    """``tok.decode(ids, skip_special_tokens=True)`` computed by its `tokenizers` backend alone, where
    transformers' decode adds nothing to it (a fast tokenizer with transformers' own ``decode`` and
    ``_decode`` that does not clean up spaces: 4.57 and 5 then return the backend's text as it is);
    None for any other tokenizer. transformers' wrapper converts and checks the ids of each call in
    Python, which over the calls of a 512-token answer (one or more per token) cost more than the
    backend's decoding."""
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

    backend = getattr(tok, "backend_tokenizer", None)
    if (
        backend is None
        or getattr(tok, "clean_up_tokenization_spaces", True)
        or type(tok).decode is not PreTrainedTokenizerBase.decode
        or type(tok)._decode is not PreTrainedTokenizerFast._decode
    ):
        return None
    return lambda ids: backend.decode(ids, skip_special_tokens=True)

"""One analysis: prompt -> generate (or a forced response) -> maps -> `Result`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from .capture import capture
from .coords import explain_missing, number_tokens, parse_answer, resolve_convention, to_click
from .errors import InputError, LavError
from .geometry import grids_from_thw
from .inputs import DEFAULT_MAX_PIXELS, load_image
from .maps import edge_maps, focus_maps
from .models import ModelParts, inspect_model, resolve_layers
from .result import Result

LayerArg = int | Sequence[int] | str | None


@dataclass(frozen=True)
class Prompt:
    """Model inputs for one image + instruction, and where the answer starts."""

    inputs: dict[str, torch.Tensor]
    answer_start: int


class Visualizer:
    """A loaded model (optionally with a LoRA adapter) and its processor, ready to `analyze`.

    Build it with `lav.load`, or directly from objects you already hold.
    """

    def __init__(
        self,
        model: nn.Module,
        processor,
        model_name: str = "model",
        adapter_name: str | None = None,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.model = model.eval()  # dropout off: the maps are of the model as it answers
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
    ) -> Result:
        """Where the model looks when it answers ``instruction`` on ``image``.

        ``response``: force this answer instead of generating (one forward pass).
        ``edge_layers``: vision blocks (negative indices, ``"all"``); ``focus_layers``: full-attention
        decoder layers. ``template``: user text for fine-tunes trained on another format, with
        ``{instruction}`` where the instruction goes. ``coords``: the coordinate convention
        (``relative-1000``, ``absolute-resized``, ``normalized-1``); default by model family.
        ``compare_base``: also run with the LoRA adapter disabled and keep it as ``result.base``.
        """
        if not isinstance(instruction, str) or not instruction.strip():
            raise InputError("the instruction is empty; say what to click, e.g. 'Click the Save button'")
        if compare_base and not self.has_adapter:
            raise InputError("compare_base needs a LoRA adapter: load the model with adapter=...")
        if max_new_tokens < 1:
            raise InputError("max_new_tokens must be at least 1")
        img = load_image(image, max_pixels=self.max_image_pixels)
        blocks = resolve_layers(edge_layers, len(self.parts.vision_attention), "vision blocks")
        layers = resolve_layers(
            focus_layers, len(self.parts.decoder_attention), "full-attention decoder layers"
        )
        args = dict(
            img=img,
            instruction=instruction,
            response=response,
            blocks=blocks,
            layers=layers,
            max_new_tokens=max_new_tokens,
            system=system,
            template=template,
            coords=coords,
        )
        result = self._run(**args, adapter_enabled=True)
        if compare_base:
            with self.model.disable_adapter():
                result.base = self._run(**args, adapter_enabled=False)
        return result

    # ------------------------------------------------------------------------------------------
    def prompt(
        self,
        img: Image.Image,
        instruction: str,
        system: str | None,
        template: str | None,
        response: str | None,
    ) -> Prompt:
        """Build the model inputs with the model's own chat template."""
        user_text = instruction
        if template is not None:
            if "{instruction}" not in template:
                raise InputError("the template must contain '{instruction}' where the instruction goes")
            user_text = template.replace("{instruction}", instruction)
        messages = []
        if system:
            messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
        messages.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user_text}]})
        try:
            text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except (ValueError, TypeError) as exc:
            raise LavError(
                f"the processor has no usable chat template ({exc}); pass a processor that has one"
            ) from exc
        prompt_inputs = self.processor(text=[text], images=[img], return_tensors="pt")
        answer_start = prompt_inputs["input_ids"].shape[1]
        if response is None:
            return Prompt(dict(prompt_inputs), answer_start)
        if not response.strip():
            raise InputError("the forced response is empty; omit it to let the model generate")
        full = self.processor(text=[text + response], images=[img], return_tensors="pt")
        if not torch.equal(full["input_ids"][0, :answer_start], prompt_inputs["input_ids"][0]):
            raise LavError(
                "the tokenizer merges the response with the prompt's last token; cannot locate the answer"
            )
        return Prompt(dict(full), answer_start)

    def _model_inputs(self, prompt: Prompt) -> dict[str, torch.Tensor]:
        device = self.device
        dtype = next(self.model.parameters()).dtype
        out = {}
        for key, value in prompt.inputs.items():
            if not isinstance(value, torch.Tensor):
                continue
            value = value.to(device)
            out[key] = value.to(dtype) if value.is_floating_point() else value
        return out

    def _end_ids(self) -> set[int]:
        tok = self.processor.tokenizer
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ends = {tok.eos_token_id, tok.pad_token_id}
        ends.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        ends.discard(None)
        return ends

    def _run(
        self,
        img,
        instruction,
        response,
        blocks,
        layers,
        max_new_tokens,
        system,
        template,
        coords,
        adapter_enabled,
    ) -> Result:
        timings: dict[str, float] = {}
        tok = self.processor.tokenizer
        prompt = self.prompt(img, instruction, system, template, response)
        inputs = self._model_inputs(prompt)
        start = prompt.answer_start
        t0 = time.perf_counter()
        with (
            torch.inference_mode(),
            capture(self.model, vision_blocks=blocks, decoder_layers=layers, rows_from=start - 1) as rec,
        ):
            if response is None:
                out = self.model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                )
                answer_ids = out[0, start:].tolist()
            else:
                self.model(**inputs, use_cache=False)
                answer_ids = inputs["input_ids"][0, start:].tolist()
        timings["generate" if response is None else "forward"] = time.perf_counter() - t0
        answer_ids = _strip_end(answer_ids, self._end_ids())
        if not answer_ids:
            raise LavError(
                "the model answered nothing (it ended at once); check the chat template or the adapter"
            )
        text, offsets = _decode_with_offsets(tok, answer_ids)

        t1 = time.perf_counter()
        grid_thw = inputs["image_grid_thw"]
        grids = grids_from_thw(grid_thw, self.parts.merge)
        g = grids[0]
        resized = (g.w * self.parts.patch, g.h * self.parts.patch)
        parsed = parse_answer(text)
        click = convention = None
        click_error = None
        x_rows: list[int] = []
        y_rows: list[int] = []
        if parsed is None:
            click_error = explain_missing(text)
            rows = list(range(len(answer_ids)))
            focus_tokens = "all answer tokens (the answer has no coordinates)"
        else:
            convention = resolve_convention(parsed, self.parts.spec.coords, coords)
            click = to_click(parsed, convention, resized, img.size)
            spans = number_tokens(offsets, parsed)
            x_rows, y_rows = spans["x"], spans["y"]
            rows = sorted(set(x_rows) | set(y_rows))
            focus_tokens = "coordinate digits"
        edge = edge_maps(rec, grids)
        focus = focus_maps(
            rec,
            grids,
            inputs["input_ids"].cpu(),
            self.parts.image_token_id,
            start,
            rows,
            x_rows,
            y_rows,
        )
        timings["maps"] = time.perf_counter() - t1
        return Result(
            model=self.model_name,
            adapter=self.adapter_name,
            instruction=instruction,
            response=text,
            image=img,
            resized_size=resized,
            grid=(g.t, g.h, g.w),
            merge=self.parts.merge,
            patch=self.parts.patch,
            family=self.parts.family,
            click=click,
            click_error=click_error,
            convention=convention,
            edge_maps=edge,
            focus_maps=focus,
            focus_tokens=focus_tokens,
            answer_tokens=[text[a:b] for a, b in offsets],
            windowed_blocks=tuple(b for b in blocks if self.parts.is_windowed(b)),
            backend=rec.backend,
            method=sorted(rec.methods),
            timings=timings,
            forced=response is not None,
            adapter_enabled=adapter_enabled and self.adapter_name is not None,
        )


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

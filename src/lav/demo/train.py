"""Train the demo's base model and its LoRA adapter from scratch: ``python -m lav.demo.train``.

The model is a tiny `Qwen3VLForConditionalGeneration` (the real class) with the project's
character-level tokenizer and chat template. It answers "(x, y)" on Qwen3-VL's 0-1000 scale.

**The demo model's attention is taught, not emergent.** Next-token training alone stays on a
plateau at this size and budget (see TRAINING.md), so the loss has two parts:

- cross-entropy on the answer tokens (the digits, the punctuation, ``<|im_end|>``);
- an attention loss on the queries that produce the coordinate digits (the query before each digit),
  in the last `SUPERVISED_LAYERS` decoder layers, every head: cross-entropy between the attention row
  and the target's image tokens, weighted by how much of the target's box each token's cell covers.

So the decision focus that `lav` shows in those layers is the pattern this loss put there; the
other layers and the vision tower's self-attention (the edge map) are not supervised.

The adapter is a PEFT LoRA on the decoder, trained by the same losses on instructions that name
colours the base model never reads (`screens.NEW_COLOURS`).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers

from ..checkpoint import build_processor, save_checkpoint
from ..testing import tiny_config
from . import screens as S

FAMILY = "qwen3_vl"
#: Decoder layers (negative indices) whose digit queries' attention is supervised.
SUPERVISED_LAYERS = (-1,)
#: Where `python -m lav.demo.train` writes (and the package ships) the model and the adapter.
WEIGHTS = Path(__file__).parent / "weights"

_TEXT = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    # 16 rotary pairs per head: 6 temporal, 5 height, 5 width (interleaved as in Qwen3-VL).
    "rope_parameters": {
        "rope_type": "default",
        "mrope_section": [6, 5, 5],
        "rope_theta": 10000.0,
        "mrope_interleaved": True,
    },
    "rope_scaling": {"rope_type": "default", "mrope_section": [6, 5, 5], "mrope_interleaved": True},
    "max_position_embeddings": 1024,
}
_VISION = {
    "depth": 2,
    "hidden_size": 96,
    "intermediate_size": 192,
    "num_heads": 4,
    "out_hidden_size": 128,
    "num_position_embeddings": 64,
    "deepstack_visual_indexes": [0],
}
LORA = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    # Decoder only: the vision tower (and so the edge map) stays the base model's.
    "target_modules": r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
}


@dataclass
class Config:
    """One training run; the defaults are the shipped model's."""

    seed: int = 0
    batch: int = 16
    base_steps: int = 2000
    base_lr: float = 2e-3
    adapter_steps: int = 400
    adapter_lr: float = 2e-3
    #: Share of the adapter's batches that are base-task screens (so it keeps the base task).
    adapter_replay: float = 0.3
    warmup: int = 100
    attn_weight: float = 1.0
    #: Weight of the position probe (0 = off): a linear head, thrown away after training, that
    #: reads each image token's (row, column) from the residual stream entering the last layer.
    probe_weight: float = 1.0
    #: Weight of the edge loss (0 = off): the share of the attention that the vision blocks' patches
    #: *receive* (lav's edge map) which lands on widget patches, pushed up.
    edge_weight: float = 0.0
    eval_every: int = 250
    eval_screens: int = 48
    #: One thread: on a shared 2-core machine two threads per process thrash (measured 3-10x slower).
    threads: int = 1


def processor():
    """The demo's processor: every screen is exactly `screens.WIDTH` x `screens.HEIGHT` pixels."""
    pixels = S.WIDTH * S.HEIGHT
    return build_processor(FAMILY, min_pixels=pixels, max_pixels=pixels)


def build_model(seed: int = 0) -> transformers.Qwen3VLForConditionalGeneration:
    """A freshly initialised demo model (eager attention, so training can read its attention)."""
    config = tiny_config(FAMILY, text=_TEXT, vision=_VISION)
    torch.manual_seed(seed)
    model = transformers.Qwen3VLForConditionalGeneration(config)
    _init_position_grid(model.model.visual.pos_embed.weight)
    model.set_attn_implementation("eager")
    return model


@torch.no_grad()
def _init_position_grid(weight: torch.Tensor) -> None:
    """Start the vision tower's learned position table as a smooth 2-D code of (row, column).

    The decoder reads *where* the target is from the image tokens it attends to, and the only
    absolute position they carry comes from this table (the rotary embeddings touch scores, not
    values). A random start at std 0.02 leaves that signal buried under the patch features; a
    sine/cosine code of unit size makes it readable from the first step. It stays trainable.
    """
    n, dim = weight.shape
    side = int(n**0.5)
    i, j = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    u = (i.flatten().float() / (side - 1))[:, None]
    v = (j.flatten().float() / (side - 1))[:, None]
    freqs = torch.arange(1, 5).float()[None] * math.pi
    code = torch.cat(
        [torch.sin(u * freqs), torch.cos(u * freqs), torch.sin(v * freqs), torch.cos(v * freqs), u, v], 1
    )
    weight.zero_()
    weight[:, : code.shape[1]] = code


# ---------------------------------------------------------------------------------------------
def _messages(instruction: str, answer: str | None = None) -> list[dict]:
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
    if answer is not None:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return msgs


def cell_weights(box: tuple[int, int, int, int]) -> torch.Tensor:
    """(ROWS * COLS,) share of ``box``'s area in each merged-token cell, raster order (sums to 1)."""
    x0, y0, x1, y1 = box
    w = torch.zeros(S.ROWS, S.COLS)
    for r in range(S.ROWS):
        for c in range(S.COLS):
            ox = max(0, min(x1, (c + 1) * S.CELL) - max(x0, c * S.CELL))
            oy = max(0, min(y1, (r + 1) * S.CELL) - max(y0, r * S.CELL))
            w[r, c] = ox * oy
    return (w / w.sum()).flatten()


def make_batch(proc, items: Sequence[S.Screen]) -> dict[str, torch.Tensor]:
    """Model inputs + ``labels`` (answer and ``<|im_end|>``), ``digit_rows`` (B, D) query positions
    that produce digits (-1 = none) and ``target`` (B, n_image_tokens) attention targets."""
    tok = proc.tokenizer
    texts = [proc.apply_chat_template(_messages(s.instruction, s.answer), tokenize=False) for s in items]
    enc = proc(text=texts, images=[s.image for s in items], return_tensors="pt", padding=True)
    ids = enc["input_ids"]
    head = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    digits = set(tok.convert_tokens_to_ids(list("0123456789")))
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    labels = torch.full_like(ids, -100)
    rows = []
    for b in range(len(items)):
        seq = ids[b].tolist()
        start = next(
            i + len(head) for i in range(len(seq) - len(head), -1, -1) if seq[i : i + len(head)] == head
        )
        end = seq.index(im_end, start)
        labels[b, start : end + 1] = ids[b, start : end + 1]
        rows.append([p - 1 for p in range(start, end) if seq[p] in digits])
    width = max(len(r) for r in rows)
    digit_rows = torch.tensor([r + [-1] * (width - len(r)) for r in rows])
    enc = dict(enc)
    enc["labels"] = labels
    enc["digit_rows"] = digit_rows
    enc["target"] = torch.stack([cell_weights(s.box) for s in items])
    return enc


def widget_patches(screen: S.Screen, patch: int = 16, merge: int = 2) -> torch.Tensor:
    """(n_patches,) bool: patches that overlap a widget, in the vision tower's block-major order
    (the merge x merge patches of one image token are consecutive)."""
    h, w = S.HEIGHT // patch, S.WIDTH // patch
    mask = torch.zeros(h, w, dtype=torch.bool)
    for x0, y0, x1, y1 in screen.widget_boxes:
        mask[y0 // patch : (y1 - 1) // patch + 1, x0 // patch : (x1 - 1) // patch + 1] = True
    return mask.view(h // merge, merge, w // merge, merge).permute(0, 2, 1, 3).flatten()


class _VisionScores:
    """Re-computes each vision block's attention probabilities from the inputs its attention module
    receives (post-rotary q and k, per image), so a loss can reach them; eager `output_attentions`
    records the vision modules' outputs, not their probabilities (transformers 5.24)."""

    def __init__(self, model):
        from transformers.models.qwen3_vl.modeling_qwen3_vl import apply_rotary_pos_emb_vision

        self._rope = apply_rotary_pos_emb_vision
        self.received: list[list[torch.Tensor]] = []  # per block, per image: (n,) mean over heads
        self._handles = [
            block.attn.register_forward_pre_hook(self._hook, with_kwargs=True)
            for block in _visual(model).blocks
        ]

    def _hook(self, module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        cu = kwargs["cu_seqlens"]
        cos, sin = kwargs["position_embeddings"]
        n = hidden.shape[0]
        q, k, _ = module.qkv(hidden).reshape(n, 3, module.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        q, k = self._rope(q, k, cos, sin)
        per_image = []
        for a, b in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
            qi, ki = q[a:b].transpose(0, 1), k[a:b].transpose(0, 1)  # [head, n, d]
            p = torch.softmax(qi @ ki.transpose(1, 2) * module.scaling, dim=-1)  # [head, query, key]
            per_image.append(p.sum(1).mean(0))
        self.received.append(per_image)

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def _visual(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model.visual


def losses(model, batch: dict[str, torch.Tensor], image_token_id: int, probe=None) -> dict[str, torch.Tensor]:
    """Answer cross-entropy per token (``ce``), attention loss (``attn``), probe loss (``probe``)
    and teacher-forced accuracy of each digit slot (``acc``: x hundreds, tens, units, y ...)."""
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "digit_rows", "target", "widgets")}
    scores = _VisionScores(model) if "widgets" in batch else None
    try:
        out = model(**inputs, output_attentions=True, output_hidden_states=probe is not None, use_cache=False)
    finally:
        if scores is not None:
            scores.close()
    logits = out.logits[:, :-1]
    labels = batch["labels"][:, 1:]
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
    )
    ids = batch["input_ids"]
    rows = batch["digit_rows"]
    target = batch["target"]
    attn_loss = ce.new_zeros(())
    n = 0
    for layer in SUPERVISED_LAYERS:
        attn = out.attentions[layer]  # [batch, head, query_pos, key_pos]
        for b in range(ids.shape[0]):
            r = rows[b][rows[b] >= 0]
            img = (ids[b] == image_token_id).nonzero().flatten()
            p = attn[b][:, r][:, :, img]  # (H, R, n_img)
            attn_loss = attn_loss - (target[b] * torch.log(p + 1e-6)).sum(-1).mean()
            n += 1
    result = {"ce": ce, "attn": attn_loss / max(n, 1)}
    if scores is not None:
        widgets = batch["widgets"]
        shares = [r[widgets[i]].sum() / r.sum() for block in scores.received for i, r in enumerate(block)]
        result["edge"] = -torch.log(torch.stack(shares)).mean()
    with torch.no_grad():
        slots = rows[:, :6].clamp(min=0)
        pred = out.logits.gather(1, slots[..., None].expand(-1, -1, out.logits.shape[-1])).argmax(-1)
        want = ids.gather(1, slots + 1)
        result["acc"] = ((pred == want) & (rows[:, :6] >= 0)).float().mean(0)
    if probe is not None:
        h = out.hidden_states[-2][ids == image_token_id]  # (B * n_img, hidden), raster per image
        cells = torch.arange(h.shape[0]) % (S.ROWS * S.COLS)
        logits = probe(h)
        result["probe"] = torch.nn.functional.cross_entropy(logits[:, : S.ROWS], cells // S.COLS) + (
            torch.nn.functional.cross_entropy(logits[:, S.ROWS :], cells % S.COLS)
        )
    return result


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


# ---------------------------------------------------------------------------------------------
_ANSWER = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)")


@torch.no_grad()
def predict(model, proc, items: Sequence[S.Screen], batch: int = 32) -> list[tuple[float, float] | None]:
    """Greedy clicks in image pixels (None where the answer has no "(x, y)")."""
    tok = proc.tokenizer
    side = tok.padding_side
    tok.padding_side = "left"
    model.eval()
    clicks: list[tuple[float, float] | None] = []
    try:
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            texts = [
                proc.apply_chat_template(_messages(s.instruction), add_generation_prompt=True, tokenize=False)
                for s in chunk
            ]
            enc = proc(text=texts, images=[s.image for s in chunk], return_tensors="pt", padding=True)
            out = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
            for row in out[:, enc["input_ids"].shape[1] :]:
                m = _ANSWER.search(tok.decode(row, skip_special_tokens=True))
                clicks.append(
                    None if m is None else (int(m[1]) / 1000 * S.WIDTH, int(m[2]) / 1000 * S.HEIGHT)
                )
    finally:
        tok.padding_side = side
    return clicks


def hit_rate(model, proc, items: Sequence[S.Screen]) -> float:
    """Share of ``items`` whose predicted click falls inside the target's box."""
    clicks = predict(model, proc, items)
    return sum(c is not None and s.contains(*c) for c, s in zip(clicks, items, strict=True)) / len(items)


def _train(
    model,
    proc,
    sample: Callable[[int], S.Screen],
    steps: int,
    lr: float,
    cfg: Config,
    log: Callable[[dict], None],
    evaluate: Callable[[], dict] | None = None,
    checkpoint: Callable[[], object] | None = None,
) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    probe = None
    if cfg.probe_weight > 0:
        probe = torch.nn.Linear(model.config.text_config.hidden_size, S.ROWS + S.COLS)
        params = params + list(probe.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s, steps, min(cfg.warmup, steps)))
    image_token_id = model.config.image_token_id
    t0 = time.perf_counter()
    counter = 0
    for step in range(steps):
        model.train()
        items = [sample(counter + i) for i in range(cfg.batch)]
        counter += cfg.batch
        batch = make_batch(proc, items)
        if cfg.edge_weight > 0:
            batch["widgets"] = torch.stack([widget_patches(s) for s in items])
        parts = losses(model, batch, image_token_id, probe)
        ce, attn = parts["ce"], parts["attn"]
        loss = ce + cfg.attn_weight * attn
        if probe is not None:
            loss = loss + cfg.probe_weight * parts["probe"]
        if "edge" in parts:
            loss = loss + cfg.edge_weight * parts["edge"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 20 == 0 or step == steps - 1:
            record = {k: round(v.item(), 4) for k, v in parts.items() if v.dim() == 0}
            record["acc"] = [round(a, 2) for a in parts["acc"].tolist()]
            log(
                {
                    "step": step,
                    **record,
                    "lr": sched.get_last_lr()[0],
                    "s": round(time.perf_counter() - t0, 1),
                }
            )
        if evaluate is not None and cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            log({"step": step, **evaluate()})
            if checkpoint is not None:
                checkpoint()


def train_base(
    cfg: Config, log: Callable[[dict], None] = print, model=None, proc=None, folder: Path | None = None
):
    """The base model, trained on `screens` task ``"base"``; returns (model, processor).
    With ``folder``, the model is saved there at every evaluation too."""
    proc = proc or processor()
    model = model or build_model(cfg.seed)
    rng_offset = cfg.seed * 1_000_000
    held = S.held_out(cfg.eval_screens, "base")

    def sample(i: int) -> S.Screen:
        return S.make_screen(rng_offset + i, "base")

    ckpt = None if folder is None else (lambda: save(model, proc, folder))
    _train(
        model,
        proc,
        sample,
        cfg.base_steps,
        cfg.base_lr,
        cfg,
        log,
        lambda: {"base_hit": hit_rate(model, proc, held)},
        ckpt,
    )
    return model, proc


def train_adapter(base, proc, cfg: Config, log: Callable[[dict], None] = print):
    """A PEFT LoRA on ``base`` for task ``"adapter"`` (new colour words); returns the PeftModel."""
    import peft

    for p in base.parameters():
        p.requires_grad_(False)
    torch.manual_seed(cfg.seed + 1)
    model = peft.get_peft_model(base, peft.LoraConfig(**LORA))
    held = S.held_out(cfg.eval_screens, "adapter")
    held_base = S.held_out(cfg.eval_screens, "base")
    rng_offset = cfg.seed * 1_000_000 + 500_000

    def sample(i: int) -> S.Screen:
        task = "base" if (i * 0.6180339887) % 1.0 < cfg.adapter_replay else "adapter"
        return S.make_screen(rng_offset + i, task)

    def evaluate() -> dict:
        return {
            "adapter_hit": hit_rate(model, proc, held),
            "adapter_on_base_hit": hit_rate(model, proc, held_base),
        }

    _train(model, proc, sample, cfg.adapter_steps, cfg.adapter_lr, cfg, log, evaluate)
    return model


def save(model, proc, folder: Path) -> Path:
    """The base model as a standard HF folder (sdpa attention: training's eager is only for reading it)."""
    model.set_attn_implementation("sdpa")
    try:
        return save_checkpoint(model, proc, folder)
    finally:
        model.set_attn_implementation("eager")


def save_adapter(model, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    # The folder is found next to the base model, not by name on the hub.
    cfg_file = folder / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["base_model_name_or_path"] = "lav-demo-base"
    cfg_file.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    # PEFT's generated model card is a template of placeholders; the demo's README says it all.
    (folder / "README.md").unlink(missing_ok=True)
    return folder


#: Held-out indices searched for the bundled screenshot (bench/demo_eval.py uses 0.., the tests 5000..).
BUNDLE_START = 9000


def bundle_screenshot(model, proc, folder: Path, start: int = BUNDLE_START, tries: int = 200) -> dict:
    """Pick the bundled screenshot: the first held-out adapter-task screen from ``start`` on where the
    adapter clicks inside the target and the base model (adapter disabled) does not. Writes
    ``screen.png`` and ``screen.json`` (seed, task, instruction, box, a second instruction)."""
    for i in range(start, start + tries):
        screen = S.held_out(1, "adapter", start=i)[0]
        (with_adapter,) = predict(model, proc, [screen])
        with model.disable_adapter():
            (without,) = predict(model, proc, [screen])
        if (
            with_adapter is not None
            and screen.contains(*with_adapter)
            and not (without is not None and screen.contains(*without))
        ):
            break
    else:
        raise RuntimeError(f"no held-out screen in {tries} where the adapter hits and the base misses")
    folder.mkdir(parents=True, exist_ok=True)
    screen.image.save(folder / "screen.png")
    other = next(f"Click the {c} {k}" for c, k, _ in screen.shapes[1:] if c in S.BASE_COLOURS)
    info = {
        "seed": screen.seed,
        "task": screen.task,
        "instruction": screen.instruction,
        "box": list(screen.box),
        "other_instruction": other,
        "note": "A held-out synthetic screen (lav.demo.screens.make_screen(seed, task)); box is the target's (x0, y0, x1, y1) in pixels.",
    }
    (folder / "screen.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lav.demo.train", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=WEIGHTS, help=f"where base/ and adapter/ go (default: {WEIGHTS})"
    )
    parser.add_argument("--log", type=Path, help="also append the progress (JSON lines) to this file")
    parser.add_argument(
        "--bundle", type=Path, help="also pick the bundled screenshot and write it into this folder"
    )
    parser.add_argument("--skip-base", action="store_true", help="train only the adapter, on OUT/base")
    for name, value in asdict(Config()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    cfg = Config(**{k: getattr(args, k) for k in asdict(Config())})
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _run(args, cfg)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, cfg: Config) -> int:
    def log(record: dict) -> None:
        line = json.dumps(record)
        print(line, flush=True)
        if args.log:
            with open(args.log, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    t0 = time.perf_counter()
    log({"config": asdict(cfg)})
    if args.skip_base:
        base = transformers.Qwen3VLForConditionalGeneration.from_pretrained(
            args.out / "base", attn_implementation="eager"
        )
        proc = transformers.AutoProcessor.from_pretrained(args.out / "base")
    else:
        base, proc = train_base(cfg, log, folder=args.out / "base")
        save(base, proc, args.out / "base")
        log({"phase": "base done", "minutes": round((time.perf_counter() - t0) / 60, 1)})
    adapter = train_adapter(base, proc, cfg, log)
    save_adapter(adapter, args.out / "adapter")
    log({"phase": "adapter done", "minutes": round((time.perf_counter() - t0) / 60, 1)})
    if args.bundle is not None:
        log({"bundled": bundle_screenshot(adapter, proc, args.bundle)})
    return 0


if __name__ == "__main__":
    sys.exit(main())

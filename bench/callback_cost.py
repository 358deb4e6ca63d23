"""The cost of one `LavCallback` invocation against one training step, on the demo model with a LoRA.

A training step: forward + backward + AdamW step of the demo's base model with a fresh LoRA (the
demo's settings) on ``--batch`` demo screens. An invocation: `LavCallback.run` on ``--probe``
held-out screens (generate, the focus of every decoder layer, scoring, the step's folder; the base
model's pass on the first call only, so the first and the later calls are timed apart). Prints the
medians and the share of training time the callback adds at ``--every`` steps.

    python bench/callback_cost.py                        # CPU, the shipped demo model
    python bench/callback_cost.py --device cuda --probe 32 --every 200
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from types import SimpleNamespace

import peft
import torch
import transformers
from transformers import TrainerState

from lav.demo import screens as S
from lav.demo.assets import BASE
from lav.demo.batches import make_batch, processor
from lav.demo.model import LORA
from lav.integrations import LavCallback


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8, help="training batch (screens)")
    ap.add_argument("--probe", type=int, default=8, help="probe samples")
    ap.add_argument("--steps", type=int, default=5, help="training steps timed")
    ap.add_argument("--calls", type=int, default=3, help="callback invocations timed")
    ap.add_argument("--every", type=int, default=200, help="every_n_steps, for the overhead share")
    args = ap.parse_args()

    proc = processor()
    model = transformers.AutoModelForImageTextToText.from_pretrained(BASE, dtype=torch.float32)
    model = peft.get_peft_model(model.to(args.device), peft.LoraConfig(**LORA))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    data = [S.make_screen(i, "adapter") for i in range(args.batch)]
    batch = make_batch(proc, data)
    batch = {k: v.to(args.device) for k, v in batch.items() if k not in ("digit_rows", "target")}

    def step() -> float:
        t0 = time.perf_counter()
        model.train()
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    step()  # warm-up
    steps = [step() for _ in range(args.steps)]
    probe = [{"image": s.image, "instruction": s.instruction, "bbox": s.box} for s in S.held_out(args.probe)]
    with tempfile.TemporaryDirectory() as out:
        cb = LavCallback(proc, probe, every_n_steps=args.every, batch_size=8)
        calls = []
        for n in range(args.calls + 1):
            state = TrainerState()
            state.global_step = n + 1
            t0 = time.perf_counter()
            cb.run(SimpleNamespace(output_dir=out, report_to=[]), state, model)
            calls.append(time.perf_counter() - t0)
    first, later = calls[0], statistics.median(calls[1:])
    per_step = statistics.median(steps)
    print(f"training step (batch {args.batch}): median {per_step:.3f}s")
    print(
        f"callback, {args.probe} probe samples: first call {first:.2f}s (with the base pass), later {later:.2f}s"
    )
    print(
        f"one later call = {later / per_step:.1f} training steps; every {args.every} steps: +{100 * later / (per_step * args.every):.2f}% time"
    )


if __name__ == "__main__":
    main()

"""A tiny real `transformers.Trainer` run: the demo's base model with a fresh PEFT LoRA on demo screens."""

from __future__ import annotations

from pathlib import Path

import peft
import torch
import transformers

from lav.demo import screens as S
from lav.demo.assets import BASE
from lav.demo.batches import make_batch, processor
from lav.demo.model import LORA
from tests.deps import require


def probe_items(n: int = 3) -> list[dict]:
    """``n`` held-out screens: the adapter's task last, the base task (which the model knows) first."""
    screens = S.held_out(n - 1, "base") + S.held_out(1, "adapter")
    return [{"image": s.image, "instruction": s.instruction, "bbox": s.box} for s in screens]


def lora_model(dropout: float = 0.0) -> peft.PeftModel:
    model = transformers.AutoModelForImageTextToText.from_pretrained(BASE, dtype=torch.float32)
    model.set_attn_implementation("eager")  # as the demo trains; the callback must leave it so
    torch.manual_seed(1)
    return peft.get_peft_model(model, peft.LoraConfig(**{**LORA, "lora_dropout": dropout}))


class Collate:
    def __init__(self, proc):
        self.proc = proc

    def __call__(self, items):
        batch = make_batch(self.proc, items)
        batch.pop("digit_rows")
        batch.pop("target")
        return batch


def train(
    out: Path,
    callbacks=(),
    steps: int = 4,
    report_to=("none",),
    dropout: float = 0.0,
    save_steps: int | None = None,
    lr: float = 5e-3,
) -> transformers.Trainer:
    """Train ``steps`` optimizer steps (batch 2, CPU, seed 0) and return the trainer."""
    # transformers.trainer imports `datasets`: make install puts one that fits the oldest overlay's
    # huggingface_hub into .oldest too, so both passes run this.
    Trainer = require(
        "transformers.trainer", "make install (the train extra, and datasets in .oldest for 4.57)"
    ).Trainer
    proc = processor()
    model = lora_model(dropout)
    data = [S.make_screen(seed, "adapter") for seed in range(16)]
    args = transformers.TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=2,
        max_steps=steps,
        learning_rate=lr,
        logging_steps=1,
        report_to=list(report_to),
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        use_cpu=True,
        seed=0,
        data_seed=0,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=data, data_collator=Collate(proc), callbacks=list(callbacks)
    )
    trainer.train()
    return trainer

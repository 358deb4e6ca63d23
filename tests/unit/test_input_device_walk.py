"""`lav.placement.input_device` remembers where the input embeddings sit (a name, not a walk per
batch) and still reads every accelerate hook on them or above them at each call, walks again when
the embeddings are replaced, and never keeps a model alive."""

from __future__ import annotations

import gc
import weakref
from types import SimpleNamespace

import torch

from lav.placement import input_device
from lav.testing import tiny_model


def _hook(device: str) -> SimpleNamespace:
    """What accelerate's ``AlignDevicesHook`` exposes to us: its execution device."""
    return SimpleNamespace(execution_device=device)


def _walk(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The embeddings and every module above them, nearest first, by a full walk written here."""
    embeddings = model.get_input_embeddings()
    names = dict(model.named_modules())
    name = next(n for n, m in names.items() if m is embeddings)
    return [embeddings] + [
        names[n] for n in sorted(names, key=len, reverse=True) if n == "" or name.startswith(n + ".")
    ]


def test_hooks_set_after_the_first_call_are_read_on_the_embeddings_and_every_module_above():
    model = tiny_model("qwen3_vl")
    assert input_device(model) == torch.device("cpu")  # remembered from here on
    chain = _walk(model)
    assert len(chain) >= 3  # embeddings, the language model, the root: not a degenerate check
    for module in chain:
        module._hf_hook = _hook("meta")
        assert input_device(model) == torch.device("meta")
        del module._hf_hook
    assert input_device(model) == torch.device("cpu")
    chain[1]._hf_hook = _hook("meta")
    chain[-1]._hf_hook = SimpleNamespace(hooks=[_hook("cpu")])  # accelerate's SequentialHook on the root
    assert input_device(model) == torch.device("meta")  # the nearest hook to the embeddings


def test_embeddings_moved_elsewhere_are_found_again():
    model = tiny_model("qwen3_vl")
    assert input_device(model) == torch.device("cpu")
    old = model.get_input_embeddings()
    model.extra = torch.nn.Sequential(torch.nn.Embedding(old.num_embeddings, old.embedding_dim))
    model.get_input_embeddings = lambda: model.extra[0]  # the old name now leads to other weights
    model.extra._hf_hook = _hook("meta")
    assert input_device(model) == torch.device("meta")


def test_the_remembered_name_does_not_keep_the_model_alive():
    model = tiny_model("qwen3_vl")
    input_device(model)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None

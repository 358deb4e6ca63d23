"""`lav eval`: GUI-grounding benchmarks read into one `Sample` shape, scored as the official scripts do.

``load_dataset(path)`` reads ScreenSpot (v1, v2), ScreenSpot-Pro, OSWorld-G, UI-Vision, JSON Lines
and Hugging Face datasets (format detected from the files); ``in_target`` scores a click;
``write_demo_benchmark`` writes the offline demo benchmark (`lav demo-data`); ``prompt_for`` gives the
prompt `lav eval` builds for a sample, for another engine (vLLM) to answer (``examples/vllm_generate.py``).
"""

from __future__ import annotations

from .datasets import FORMATS, detect_format, load_dataset
from .demo_data import write_demo_benchmark
from .samples import Dataset, Sample, in_target

__all__ = [
    "FORMATS",
    "Dataset",
    "Sample",
    "detect_format",
    "in_target",
    "load_dataset",
    "write_demo_benchmark",
]

# --- the evaluation engine (issue 8): loaded on first use, since it imports the analysis stack ---
# name -> module that defines it (PEP 562).
_LAZY = {
    "evaluate": "lav.eval.engine",  # run a dataset through a Visualizer, resumably
    "Evaluation": "lav.eval.engine",
    "merge": "lav.eval.engine",  # join the parts of a sharded run
    "shard_of": "lav.eval.engine",
    "summarize": "lav.eval.stats",  # the summary from the records (torch-free)
    "wilson": "lav.eval.stats",
    "mcnemar_exact": "lav.eval.stats",
    "flips": "lav.eval.stats",
    "eval_page": "lav.eval.report",
    "build_report": "lav.eval.report",  # eval_page's former name
    "read_records": "lav.eval.log",
    "prompt_for": "lav.eval.prompts",  # the prompt lav eval gives a sample, for another engine
    "prompter": "lav.eval.prompts",
    "Prompter": "lav.eval.prompts",
    "Prompt": "lav.eval.prompts",
}
__all__ += sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lav.eval' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value

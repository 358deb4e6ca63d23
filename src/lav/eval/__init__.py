"""`lav eval`: GUI-grounding benchmarks read into one `Sample` shape, scored as the official scripts do.

``load_dataset(path)`` reads ScreenSpot (v1, v2), ScreenSpot-Pro, OSWorld-G, UI-Vision, JSON Lines
and Hugging Face datasets (format detected from the files); ``in_target`` scores a click;
``write_demo_benchmark`` writes the offline demo benchmark (`lav demo-data`).
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

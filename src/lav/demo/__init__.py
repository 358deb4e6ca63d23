"""lav's own demo: synthetic screenshots, a tiny Qwen3-VL grounding model with a LoRA adapter that
ship inside the package, run by `lav demo` (`lav.cli.demo`; see README.md here; how it was trained: TRAINING.md).

`lav.demo.assets` says where the shipped files are; `lav.demo.screens` makes the screenshots;
`python -m lav.demo.train` reproduces the model and the adapter: the loop and the command line in
`train`, the batches in `batches`, the losses in `losses`, the model and its LoRA in `model`.
"""

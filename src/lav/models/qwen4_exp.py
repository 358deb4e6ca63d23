"""Qwen4-Exp = Qwen3.5-MoE whose softmax layers are *indexed* (QSA) attention (transformers 5.24).

A QSA indexer picks, for every query, a budget of key blocks (plus the incomplete tail block) and
the layer attends only over those tokens. transformers folds that selection into the 4-D mask
*before* calling the attention function, so the recorded rows are the attention the model computed:
exactly zero on keys the indexer dropped. Beside them the decoder has Gated DeltaNet
(``linear_attention``) layers without an attention map, hyper-connections, gated attention output and
per-layer n-gram embeddings; the vision tower uses an "axial" 2-D RoPE (the recorder reads q/k after
it). Checkpoints ship Qwen3-VL's processor. No source we can read documents the grounding scale:
we assume Qwen3-VL's 0-1000 relative one (``--coords`` overrides).
"""

from __future__ import annotations

from .qwen3_5_moe import SPEC as QWEN3_5_MOE
from .spec import INDEXED_ATTENTION, LINEAR_ATTENTION

#: The tiny model's QSA indexer: blocks of 4 keys, 2 of them per query (+ the tail), so a prompt
#: with an image of a few dozen tokens has part of the image dropped by every query.
TINY_INDEXER = {
    "indexer_n_heads": 2,
    "indexer_kv_heads": 1,  # the only value transformers 5.24 accepts
    "indexer_head_dim": 16,
    "indexer_budget": 8,
    "indexer_compress_ratio": 4,
}

SPEC = QWEN3_5_MOE.derive(
    family="qwen4_exp",
    title="Qwen4-Exp",
    model_types=("qwen4_exp",),
    vision_attention=("Qwen4ExpVisionAttention",),
    text_attention=("Qwen4ExpTextAttention",),
    # transformers renames a config's "full_attention" entries to "indexed_attention" on load.
    layer_kinds=(INDEXED_ATTENTION, LINEAR_ATTENTION),
    tiny=QWEN3_5_MOE.tiny.derive(
        "Qwen4ExpConfig",
        text={
            **TINY_INDEXER,
            "layer_types": [LINEAR_ATTENTION, INDEXED_ATTENTION, LINEAR_ATTENTION, INDEXED_ATTENTION],
            "hc_count": 2,
            "hc_lowrank": 8,
            # n-gram embeddings on the first (linear) layer, with a small hashed vocabulary.
            "ple_layer_ids": [1],
            "heads_per_ngram": 2,
            "ngram_vocab_size_base": 257,
            "split_ngram_parts": 1,
        },
    ),
)

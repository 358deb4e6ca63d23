"""What capture holds at its largest moment, from the shapes alone: `lav plan`'s capture estimate.

Derived from what the recorder and `colsums` allocate (measured against torch's CPU allocator in
``tests/e2e/test_plan_journey.py``, `lav plan` against a measured run at two sizes):

- per recorded vision block, its received attention, kept to the end of the run: ``(H, N)`` float32;
- while one block's call runs: the forward's row log-sum-exp ``(H, N)`` float32 and one head group's
  pass (`colsums.HEAD_GROUP_BYTES` decides the group's size ``G``). The worst pass is the folded
  one (it runs after the weighted one for nearly flat heads, or alone for steep ones): the folded
  queries and keys, the kernel's output and the dense copy the kernel makes of the stride-0 value,
  each ``(G, N, F)`` float32 with ``F`` the head size plus one, padded to a multiple of 8; the
  weighted pass alone (trained models: every head of the README's real-size run) needs about half;
  a model in another dtype than float32 adds the group's queries and keys in float32;
- where no fused op is checked (devices other than CPU and CUDA) and for float64 models, the exact
  chunked method instead: one chunk of scores (`colsums.CHUNK_BYTES`) and its softmax;
- on the CPU, torch's flash kernel's per-thread scratch: a query block by a key block of scores
  plus a query block of output, per thread (`torch.get_num_threads`);
- per recorded decoder layer, one attention row per answer token ``(H_text, K)`` float32 and the
  keys the mask let through (bool), kept; while a layer's call runs, its keys in float32 repeated
  to the query heads and one step's scores and softmax.

The vision records stay while the decoder records, so the peak is the vision records plus the
larger of one vision call's working set and the decoder's records and working set. It is what
capture adds at most on top of the run without it; less where the vision tower's own peak (its MLP)
lies above the attention call's level.
"""

from __future__ import annotations

from dataclasses import dataclass

from .colsums import CHUNK_BYTES, FUSED_DEVICE_TYPES, HEAD_GROUP_BYTES

_F32 = 4


def head_group(heads: int, n: int, head_dim: int) -> int:
    """Heads per group of the fused pass at ``n`` patches (as `colsums._received_fused` groups them)."""
    return min(heads, max(1, HEAD_GROUP_BYTES // (n * (head_dim + 8) * _F32)))


def cpu_kernel_scratch(n: int, width: int, threads: int) -> int:
    """Bytes torch's CPU flash-attention kernel allocates for its per-thread blocks (float32): a
    query block (256 rows from 768 up, 64 from 192, else 32) by a key block (512, or all keys) of
    scores, the block's running max and sum, and its output."""
    q_block = 256 if n >= 768 else 64 if n >= 192 else 32
    kv_block = min(512, n)
    return threads * (q_block * kv_block + 2 * q_block + q_block * width) * _F32


@dataclass(frozen=True)
class CaptureMemory:
    """Bytes of capture's peak and its parts (`capture_memory`)."""

    vision_records: int  # received attention of every recorded block, kept to the end
    vision_call: int  # one block's call: the forward's log-sum-exp and one head group's pass
    decoder: int  # the decoder's rows (kept) and one layer's call

    @property
    def peak(self) -> int:
        return self.vision_records + max(self.vision_call, self.decoder)


def capture_memory(
    patches: int,
    heads: int,
    head_dim: int,
    blocks: int = 2,
    *,
    text_heads: int = 0,
    text_kv_heads: int | None = None,
    text_head_dim: int = 0,
    keys: int = 0,
    answer_tokens: int = 0,
    decoder_layers: int = 1,
    device_type: str = "cpu",
    threads: int = 1,
    float32: bool = True,
    float64: bool = False,
) -> CaptureMemory:
    """Capture's peak for one screenshot of ``patches`` vision patches, ``blocks`` recorded vision
    blocks of ``heads`` heads of ``head_dim``, and ``decoder_layers`` recorded decoder layers of
    ``text_heads`` query heads (``text_kv_heads`` key heads) of ``text_head_dim`` over ``keys`` keys,
    one row per ``answer_tokens``. ``float32``: the model runs in float32 (else its queries and keys
    are copied to float32 per head group). ``threads``: torch's CPU threads (CPU only). Devices
    without a fused op lav checks, and float64 models, take the exact chunks instead."""
    n = patches
    kept = blocks * heads * n * _F32
    if device_type in FUSED_DEVICE_TYPES and float64 is False:
        group = head_group(heads, n, head_dim)
        folded = head_dim + 1 + (-(head_dim + 1)) % 8
        call = heads * n * _F32  # the forward's log-sum-exp
        call += 4 * group * n * folded * _F32 + group * n * _F32  # the folded pass and its log-sum-exp
        if not float32:
            call += 2 * group * n * head_dim * _F32
        if device_type == "cpu":
            call += cpu_kernel_scratch(n, folded, threads)
    else:
        # The exact chunks (`colsums.received_chunked`): one chunk of scores and its softmax, and
        # q and k in the computing dtype.
        size = 8 if float64 else _F32
        chunk = min(CHUNK_BYTES, heads * n * n * size)
        call = 2 * chunk + (0 if float32 or float64 else 2 * heads * n * head_dim * size)
    decoder = 0
    if decoder_layers and keys and text_heads:
        kv = text_kv_heads or text_heads
        rows = decoder_layers * answer_tokens * (text_heads * keys * _F32 + keys)
        work = 2 * text_heads * keys * _F32  # one step's scores and softmax
        if kv < text_heads:
            work += text_heads * keys * text_head_dim * _F32  # keys repeated to the query heads
        if not float32:
            work += kv * keys * text_head_dim * _F32
        decoder = rows + work
    return CaptureMemory(kept, call, decoder)

"""Test-only builders shared by several test folders (not part of `lav`)."""

from __future__ import annotations

import torch

from lav.testing import IMAGE_TOKEN_ID, VISION_END_TOKEN_ID, VISION_START_TOKEN_ID


def image_inputs(
    config, grids: list[tuple[int, int, int]], text_before: int = 3, text_after: int = 4, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Model inputs for images of the given patch grids ``(t, h, w)``, without a processor.

    Random ``pixel_values`` and a prompt of random text tokens around each image's
    ``<vision_start> <image>*n <vision_end>`` span. Returns ``input_ids``, ``attention_mask``,
    ``pixel_values``, ``image_grid_thw`` and ``mm_token_type_ids`` (1 on image tokens). Real runs
    build inputs with the installed processor; this exists to place images of exact grids.
    """
    vcfg = config.vision_config
    merge = vcfg.spatial_merge_size
    dim = vcfg.in_channels * vcfg.temporal_patch_size * vcfg.patch_size**2
    gen = torch.Generator().manual_seed(seed)
    ids: list[int] = []
    for t, h, w in grids:
        ids += torch.randint(1, 200, (text_before,), generator=gen).tolist()
        ids += [VISION_START_TOKEN_ID] + [IMAGE_TOKEN_ID] * (t * h * w // merge**2) + [VISION_END_TOKEN_ID]
    ids += torch.randint(1, 200, (text_after,), generator=gen).tolist()
    input_ids = torch.tensor([ids])
    n = sum(t * h * w for t, h, w in grids)
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "pixel_values": torch.randn(n, dim, generator=gen),
        "image_grid_thw": torch.tensor(grids),
        "mm_token_type_ids": (input_ids == IMAGE_TOKEN_ID).long(),
    }

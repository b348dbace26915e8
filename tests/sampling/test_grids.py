"""Image grids: exact pixels after nearest upscaling, Figure 5's row/column layout, slerp endpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ddim.sampling.grids import (
    consistency_grid,
    consistency_grid_from_columns,
    interpolation_grid,
    save_image_grid,
    upscale_nearest,
)
from ddim.sampling import to_uint8


def test_save_image_grid_writes_exact_upscaled_pixels(tmp_path):
    images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    path = save_image_grid(images, tmp_path / "grid.png", nrow=3, upscale=4, padding=2)
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]
    grid = np.array(Image.open(path))
    pad, side = 8, 32  # padding scales with the upscale factor so the grid's proportions stay the same
    assert grid.shape == (2 * side + 3 * pad, 3 * side + 4 * pad, 3)
    # image 4 is row 1, column 1; every 4×4 block holds one source pixel in every channel
    tile = grid[pad + side + pad : pad + 2 * side + pad, pad + side + pad : pad + 2 * side + pad]
    expected = to_uint8(images[4, 0]).numpy().repeat(4, 0).repeat(4, 1)
    for channel in range(3):
        np.testing.assert_array_equal(tile[..., channel], expected)


def test_upscale_nearest_blocks():
    x = torch.arange(4).reshape(1, 1, 2, 2)
    assert upscale_nearest(x, 2)[0, 0].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    with pytest.raises(ValueError):
        upscale_nearest(x, 0)


def test_consistency_grid_is_row_major_one_row_per_latent():
    # image value encodes (x_T index r, S index c) as 10·r + c
    columns = [torch.tensor([10.0 * r + c for r in range(3)]).reshape(3, 1, 1, 1) for c in range(4)]
    grid = consistency_grid_from_columns(columns)
    assert grid.flatten().tolist() == [10.0 * r + c for r in range(3) for c in range(4)]
    rows = [[torch.full((1, 1, 1), 10.0 * r + c) for c in range(4)] for r in range(3)]
    assert torch.equal(consistency_grid(rows), grid)
    with pytest.raises(ValueError, match="same number"):
        consistency_grid([torch.zeros(2, 1, 1, 1), torch.zeros(3, 1, 1, 1)])


def test_interpolation_grid_runs_from_z0_to_z1_on_the_sphere_shell():
    generator = torch.Generator().manual_seed(1)
    z0, z1 = torch.randn(2, 3, 4, 4, generator=generator), torch.randn(2, 3, 4, 4, generator=generator)
    latents = interpolation_grid(z0, z1, num_points=5).reshape(2, 5, 3, 4, 4)
    torch.testing.assert_close(latents[:, 0], z0)
    torch.testing.assert_close(latents[:, -1], z1)
    # slerp between near-equal norms keeps the norm near them (linear interpolation would shrink it)
    mid = latents[:, 2].flatten(1).norm(dim=1)
    ends = (z0.flatten(1).norm(dim=1) + z1.flatten(1).norm(dim=1)) / 2
    assert torch.all((mid - ends).abs() / ends < 0.1)
    decoded = interpolation_grid(z0, z1, num_points=3, decode=lambda z: z * 0 + 1)
    assert decoded.shape == (6, 3, 4, 4) and torch.all(decoded == 1)

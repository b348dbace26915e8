"""The pixel-range boundary, the CelebA crop geometry, centre crops and flips."""

import torch
from PIL import Image

from ddim.data import from_model_range, to_model_range
from ddim.data.transforms import celeba_crop, center_crop_square, image_transform


def test_model_range_round_trip_and_clamp():
    x01 = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert torch.equal(to_model_range(x01), torch.tensor([-1.0, -0.5, 0.0, 1.0]))
    assert torch.equal(from_model_range(to_model_range(x01)), x01)
    # samples overshoot [-1, 1]; [0, 1] images must not
    assert torch.equal(from_model_range(torch.tensor([-1.5, 1.5])), torch.tensor([0.0, 1.0]))


def coordinate_image(width: int, height: int) -> Image.Image:
    """An RGB image whose pixel (x, y) is (x, y, 0): every pixel says where it came from."""
    xs = torch.arange(width).expand(height, width)
    ys = torch.arange(height).unsqueeze(1).expand(height, width)
    pixels = torch.stack([xs, ys, torch.zeros_like(xs)], dim=-1).to(torch.uint8)
    return Image.fromarray(pixels.numpy(), "RGB")


def test_celeba_crop_takes_the_official_box():
    image = coordinate_image(178, 218)  # CelebA's aligned size, width x height
    cropped = celeba_crop(image)
    assert cropped.size == (128, 128)
    assert cropped.getpixel((0, 0)) == (25, 57, 0)  # top 57, left 25
    assert cropped.getpixel((127, 127)) == (25 + 127, 57 + 127, 0)


def test_celeba_transform_shape_and_range():
    image = coordinate_image(178, 218)
    exact = image_transform(128, crop=celeba_crop)(image)
    assert exact.shape == (3, 128, 128)
    # no resize at 128: the first pixel is (25, 57, 0) in [-1, 1]
    assert torch.allclose(exact[:, 0, 0], torch.tensor([25, 57, 0]) / 255 * 2 - 1)
    small = image_transform(64, crop=celeba_crop)(image)
    assert small.shape == (3, 64, 64) and small.min() >= -1 and small.max() <= 1


def test_center_crop_square_keeps_the_middle():
    image = coordinate_image(60, 20)
    square = center_crop_square(image)
    assert square.size == (20, 20) and square.getpixel((0, 0)) == (20, 0, 0)
    assert center_crop_square(coordinate_image(20, 60)).getpixel((0, 0)) == (0, 20, 0)


def test_flip_mirrors_or_keeps():
    image = coordinate_image(8, 8)
    plain = image_transform(8)(image)
    flip = image_transform(8, flip=True)
    torch.manual_seed(0)
    outcomes = {"kept" if torch.equal(x, plain) else "flipped" if torch.equal(x, plain.flip(-1)) else "other"
                for x in (flip(image) for _ in range(32))}
    assert outcomes == {"kept", "flipped"}


def test_gray_images_become_rgb():
    gray = Image.new("L", (10, 10), color=255)
    x = image_transform(4)(gray)
    assert x.shape == (3, 4, 4) and torch.equal(x, torch.ones(3, 4, 4))

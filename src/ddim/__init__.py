"""ddim: Denoising Diffusion Implicit Models (Song, Meng & Ermon, ICLR 2021)."""

__version__ = "0.1.0"

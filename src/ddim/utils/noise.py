"""Counter-based per-sample noise made on the sampling device: element e of image i's noise at stream s is a pure
function of (seed, i, s, e), so image i is the same in any batch, order or process, and no Python loop runs over
images.

Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) maps a 128-bit counter and a
64-bit key to four 32-bit words. Here the counter is (j, i mod 2³², s, i >> 32) for block j < ⌈numel / 4⌉ and the
key is the seed's two 32-bit halves; Box–Muller turns each pair of words into two N(0, 1) values, which become
elements j, j + numel/4, j + numel/2 and j + 3·numel/4 of the image (contiguous writes). Everything is torch integer
and float ops, the 32-bit words held in int64 tensors (torch has no uint32 arithmetic for all ops), so CPU and GPU
give the same words exactly and the same normals up to the float rounding of log/sin/cos.

Streams: s = 0 is x_T, s = k + 1 the noise of the sampler's k-th step (counted from x_T, in the order `sample()`
asks for it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

NOISE_VERSION = "philox4x32-10-boxmuller-v1"  # part of every cache key of sampled images

MASK32 = 0xFFFFFFFF
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
PHILOX_ROUNDS = 10


def philox4x32(counter: Sequence[torch.Tensor | int], key: Sequence[int], rounds: int = PHILOX_ROUNDS,
               workspace: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Philox-4x32 on int64 tensors holding uint32 values: four counter words (broadcastable) and two key words,
    returned as four int64 tensors in [0, 2³²). `workspace`, a list the caller keeps (empty at first), holds six
    int64 buffers of the broadcast shape that later calls reuse instead of fresh memory (on a CPU, allocating fresh
    megabyte tensors costs more than the math); the returned words live in it until the next call.

    A round's 32×32 → 64-bit product m·c is one int64 multiply: it wraps modulo 2⁶⁴ (two's complement, on every
    backend torch has), so its low 64 bits, which are all of the unsigned product, come out exact; `>> 32` and a
    mask give the high word. The low words are left unmasked (their upper bits are garbage) because they are only
    XORed into the next round's high words, which are masked before they are multiplied: 10 ops a round."""
    words = torch.broadcast_tensors(*(torch.as_tensor(c, dtype=torch.int64) for c in counter))
    shape, device = words[0].shape, words[0].device
    if workspace is None:
        workspace = []
    if len(workspace) != 6 or workspace[0].shape != shape or workspace[0].device != device:
        workspace[:] = [torch.empty(shape, dtype=torch.int64, device=device) for _ in range(6)]
    c0, c1, c2, c3, product0, product2 = workspace
    for buffer, word in zip((c0, c1, c2, c3), words):
        buffer.copy_(word)
    k0, k1 = int(key[0]) & MASK32, int(key[1]) & MASK32
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + PHILOX_W0) & MASK32, (k1 + PHILOX_W1) & MASK32
        torch.mul(c0, PHILOX_M0, out=product0)  # c0, c2 < 2³² here
        torch.mul(c2, PHILOX_M1, out=product2)
        high2 = torch.bitwise_right_shift(product2, 32, out=c0).bitwise_xor_(c1).bitwise_xor_(k0)
        high0 = torch.bitwise_right_shift(product0, 32, out=c2).bitwise_xor_(c3).bitwise_xor_(k1)
        high2.bitwise_and_(MASK32)
        high0.bitwise_and_(MASK32)
        # (hi(m1·c2) ^ c1 ^ k0, lo(m1·c2), hi(m0·c0) ^ c3 ^ k1, lo(m0·c0)); the old c1, c3 become the products' buffers
        c0, c1, c2, c3, product0, product2 = high2, product2, high0, product0, c1, c3
    c1.bitwise_and_(MASK32)
    c3.bitwise_and_(MASK32)
    return [c0, c1, c2, c3]


def _uniform_(words: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The top 24 bits of each word as a float strictly inside (0, 1), exact in float32 (the word is clobbered)."""
    return torch.add(words.bitwise_right_shift_(8), 0.5, out=out).mul_(2.0**-24)


def counter_normals(seed: int, indices: torch.Tensor, stream: int, numel: int, dtype: torch.dtype = torch.float32,
                    workspace: list[torch.Tensor] | None = None) -> torch.Tensor:
    """[len(indices), numel] N(0, 1) values; row r depends only on (seed, indices[r], stream, numel). Philox call j
    (j < blocks = ⌈numel / 4⌉) gives words w0..w3, and Box–Muller makes two normals of each pair, written to
    elements j, blocks + j (from w0, w1) and 2·blocks + j, 3·blocks + j (from w2, w3): contiguous writes. The 24-bit
    uniforms truncate the tails at √(2 ln 2²⁵) ≈ 5.9 σ (probability 4·10⁻⁹ beyond)."""
    return counter_normals_streams(seed, indices, [stream], numel, dtype, workspace)[0]


def counter_normals_streams(seed: int, indices: torch.Tensor, streams: Sequence[int], numel: int,
                            dtype: torch.dtype = torch.float32,
                            workspace: list[torch.Tensor] | None = None) -> torch.Tensor:
    """[len(streams), len(indices), numel]: `counter_normals` of several streams in one pass, the same numbers. One
    pass is 155 tensor ops whatever its size, so drawing a block of steps at once divides the ops per step (on a GPU,
    kernel launches, which bound a step at small batches) by the block's length."""
    indices = indices.to(torch.int64)
    blocks = (numel + 3) // 4
    device = indices.device
    element = torch.arange(blocks, device=device, dtype=torch.int64)[None, None, :]
    image = indices[None, :, None]
    stream = torch.as_tensor(list(streams), dtype=torch.int64).to(device)[:, None, None]
    seed = int(seed)
    words = philox4x32((element, image.bitwise_and(MASK32), stream, image.bitwise_right_shift(32)),
                       (seed & MASK32, (seed >> 32) & MASK32), workspace=workspace)
    work = torch.float64 if dtype == torch.float64 else torch.float32
    out = torch.empty((len(stream), len(indices), 4, blocks), dtype=work, device=device)
    for pair in (0, 1):
        radius = _uniform_(words[2 * pair], out[:, :, 2 * pair]).log_().mul_(-2.0).sqrt_()
        angle = _uniform_(words[2 * pair + 1], out[:, :, 2 * pair + 1]).mul_(2.0 * math.pi)
        sine = torch.sin(angle)
        torch.cos(angle, out=angle).mul_(radius)
        radius.mul_(sine)
        # radius·sin θ lies in slot 2·pair and radius·cos θ in 2·pair + 1: the pair's two normals, in a fixed order
    return out.reshape(len(stream), len(indices), blocks * 4)[..., :numel].to(dtype)


class CounterNoise:
    """x_T and the sampler's step noise for the images `indices`, made on `device` by `counter_normals`.

    `latents()` is stream 0; the k-th call of the object (k = 0, 1, …, as `sample()` asks for step noise) is
    stream k + 1, so step k's noise is keyed by k and never by the batch. `num_step_streams`, when given, is how many
    steps may ask for noise (the trajectory's length): asking for more is an error, not a silent new stream.

    Step noise is drawn up to `block_elements` values at a time (as many whole steps as fit, at least one): the same
    numbers as one step at a time, with a fraction of the tensor ops per step. The default: 2²² on CUDA, where each
    op is a kernel launch and a small batch's step is launch-bound; 2¹⁶ elsewhere, where a larger block falls out of
    the CPU's caches (measured: 3.4× less host time per step at batch 1, and 37 % more at batch 256 with 2²²)."""

    def __init__(self, seed: int, indices: Sequence[int] | torch.Tensor, shape: Sequence[int],
                 device: torch.device | str = "cpu", num_step_streams: int | None = None,
                 block_elements: int | None = None) -> None:
        self.seed = int(seed)
        self.device = torch.device(device)
        self.indices = torch.as_tensor(list(indices) if not isinstance(indices, torch.Tensor) else indices,
                                       dtype=torch.int64).to(self.device)
        if (self.indices < 0).any():
            raise ValueError("CounterNoise: image indices must be >= 0")
        self.shape = tuple(int(s) for s in shape)
        self.num_step_streams = num_step_streams
        self.calls = 0
        self.block_elements = int(block_elements or (2**22 if self.device.type == "cuda" else 2**16))
        self._workspace: list[torch.Tensor] = []
        self._block: torch.Tensor | None = None  # [steps in the block, batch, numel]
        self._block_start = 0

    def draw(self, stream: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        numel = math.prod(self.shape)
        return counter_normals(self.seed, self.indices, stream, numel, dtype, self._workspace).reshape(-1, *self.shape)

    def latents(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """x_T ~ N(0, I), [len(indices), *shape]."""
        return self.draw(0, dtype)

    def step_noise(self, k: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """z of the k-th step (0-based, counted from x_T along the trajectory)."""
        if self.num_step_streams is not None and not 0 <= k < self.num_step_streams:
            raise ValueError(f"CounterNoise: step {k} is outside the trajectory's {self.num_step_streams} steps")
        work = torch.float64 if dtype == torch.float64 else torch.float32
        if (self._block is None or self._block.dtype != work
                or not self._block_start <= k < self._block_start + len(self._block)):
            numel = math.prod(self.shape)
            length = max(1, self.block_elements // max(1, len(self.indices) * numel))
            if self.num_step_streams is not None:
                length = min(length, self.num_step_streams - k)
            streams = range(k + 1, k + 1 + length)
            self._block = counter_normals_streams(self.seed, self.indices, streams, numel, work, self._workspace)
            self._block_start = k
        return self._block[k - self._block_start].reshape(-1, *self.shape).to(dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != len(self.indices) or tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"CounterNoise: asked for noise like {tuple(x.shape)}; made for "
                             f"{(len(self.indices), *self.shape)}")
        noise = self.step_noise(self.calls, x.dtype).to(x.device)
        self.calls += 1
        return noise

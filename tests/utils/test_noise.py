"""Counter-based noise: Philox-4x32-10 against its published answers and a plain-integer implementation, image i's
noise independent of batch and order, and the statistics of the normals."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ddim.utils.noise import MASK32, CounterNoise, counter_normals, philox4x32

# Random123's kat_vectors for philox4x32_10: (counter, key) -> output
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK32,) * 4, (MASK32,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def philox_reference(counter, key, rounds=10):
    """Philox-4x32 with Python integers, written from the paper's round function."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & MASK32, (k1 + 0xBB67AE85) & MASK32
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & MASK32
    return c0, c1, c2, c3


@pytest.mark.parametrize("counter, key, expected", PHILOX_KAT)
def test_philox_gives_the_published_answers(counter, key, expected):
    assert philox_reference(counter, key) == expected
    words = philox4x32([torch.tensor([c]) for c in counter], key)
    assert tuple(int(w) for w in words) == expected


def test_philox_matches_plain_integers_on_random_counters_and_reuses_its_workspace():
    rng = np.random.default_rng(0)
    counters = rng.integers(0, 2**32, size=(4, 300), dtype=np.uint64)
    key = (int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32)))
    workspace: list[torch.Tensor] = []
    buffers = []
    for _ in range(2):  # the second call runs in the first one's buffers
        words = philox4x32([torch.from_numpy(c.astype(np.int64)) for c in counters], key, workspace=workspace)
        got = torch.stack(words, dim=1).tolist()
        assert got == [list(philox_reference(tuple(int(v) for v in col), key)) for col in counters.T]
        buffers.append(sorted(b.data_ptr() for b in workspace))
        assert {w.data_ptr() for w in words} <= set(buffers[-1])
    assert buffers[0] == buffers[1]


@pytest.mark.parametrize("device", [
    "cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU"))])
def test_philox_products_past_the_int64_range_wrap_to_the_exact_unsigned_words(device):
    # counters near 2³² make the first round's m·c exceed 2⁶³ (and later rounds' often do): the int64 product must
    # wrap modulo 2⁶⁴ on the device, not saturate or trap
    counters = [torch.tensor([0xFFFFFFFF - v for v in range(50)]), torch.tensor([0xFFFFFFFE] * 50),
                torch.tensor([0x80000000 + v for v in range(50)]), torch.tensor([0xFFFFFFFF] * 50)]
    key = (0xFFFFFFFF, 0xFEDCBA98)
    words = torch.stack(philox4x32([c.to(device) for c in counters], key), dim=1).tolist()
    assert words == [list(philox_reference(tuple(int(c[n]) for c in counters), key)) for n in range(50)]


def test_image_i_gets_the_same_noise_in_any_batch_and_order():
    shape = (3, 5, 7)  # 105 elements: not a multiple of 4
    big = CounterNoise(11, range(8), shape)
    other = CounterNoise(11, [6, 2, 5], shape)
    alone = CounterNoise(11, [5], shape)
    assert torch.equal(big.latents()[[6, 2, 5]], other.latents())
    assert torch.equal(big.latents()[5:6], alone.latents())
    for k in range(3):
        assert torch.equal(big.step_noise(k)[[6, 2, 5]], other.step_noise(k))
    x = torch.zeros(3, *shape)
    assert torch.equal(other(x), big.step_noise(0)[[6, 2, 5]])  # the k-th call is step k
    assert torch.equal(other(x), big.step_noise(1)[[6, 2, 5]])


def test_drawing_steps_in_blocks_gives_the_same_numbers_in_fewer_passes(monkeypatch):
    import ddim.utils.noise as noise_module

    shape, indices, steps = (3, 5, 7), [4, 0, 9], 7
    numel = 105
    one_by_one = [counter_normals(11, torch.tensor(indices), k + 1, numel).reshape(3, *shape) for k in range(steps)]
    passes = []
    real = noise_module.philox4x32
    monkeypatch.setattr(noise_module, "philox4x32", lambda *a, **kw: passes.append(1) or real(*a, **kw))
    for block_elements, expected_passes in ((1, 7), (3 * numel * 3, 3), (2**22, 1)):  # 1, 3 and all 7 steps a pass
        passes.clear()
        noise = CounterNoise(11, indices, shape, num_step_streams=steps, block_elements=block_elements)
        for k in range(steps):
            assert torch.equal(noise.step_noise(k), one_by_one[k]), (block_elements, k)
        assert len(passes) == expected_passes
        assert torch.equal(noise.step_noise(1), one_by_one[1])  # going back redraws, the same numbers
        assert noise.step_noise(2, torch.float64).dtype == torch.float64
    torch.testing.assert_close(noise.step_noise(2, torch.float64), one_by_one[2].double(), rtol=0, atol=1e-6)


def test_step_noise_is_keyed_by_the_step_and_stops_at_the_trajectory_length():
    noise = CounterNoise(0, range(2), (4,), num_step_streams=2)
    x_T, z0, z1 = noise.latents(), noise(torch.zeros(2, 4)), noise(torch.zeros(2, 4))
    assert not torch.equal(x_T, z0) and not torch.equal(z0, z1)
    with pytest.raises(ValueError, match="outside the trajectory"):
        noise(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="made for"):
        CounterNoise(0, range(2), (4,))(torch.zeros(3, 4))


def test_high_index_and_seed_bits_are_used():
    base = counter_normals(0, torch.tensor([5]), 0, 64)
    assert not torch.equal(base, counter_normals(0, torch.tensor([5 + 2**32]), 0, 64))
    assert not torch.equal(base, counter_normals(2**32, torch.tensor([5]), 0, 64))


N_IMAGES, NUMEL = 64, 3 * 32 * 32  # 196,608 normals per stream


def _tolerance(n: int) -> float:
    return 5.0 / math.sqrt(n)  # five standard errors: a wrong generator fails, a right one passes ~always


def test_normals_have_mean_zero_variance_one_and_a_normal_distribution():
    z = counter_normals(0, torch.arange(N_IMAGES), 1, NUMEL, torch.float64).flatten()
    n = z.numel()
    assert abs(z.mean().item()) < _tolerance(n)
    assert abs(z.var().item() - 1) < 5 * math.sqrt(2 / n)
    assert abs(stats.skew(z.numpy())) < 5 * math.sqrt(6 / n)
    assert abs(stats.kurtosis(z.numpy())) < 5 * math.sqrt(24 / n)
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-3
    # the 4 words of a Philox call fill four slots of an image; each slot alone is N(0, 1) too
    per_slot = z.reshape(N_IMAGES, 4, NUMEL // 4).transpose(0, 1).reshape(4, -1)
    assert all(stats.kstest(s.numpy(), "norm").pvalue > 1e-4 for s in per_slot)


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def test_no_correlation_across_images_steps_elements_and_seeds():
    noise = CounterNoise(3, range(N_IMAGES), (NUMEL,))
    x_T, z0, z1 = noise.latents(), noise.step_noise(0), noise.step_noise(1)
    n = x_T.numel()
    pairs = {
        "image i vs i + 1": (x_T[:-1], x_T[1:]),
        "x_T vs step 0": (x_T, z0),
        "step 0 vs step 1": (z0, z1),
        "element e vs e + 1": (x_T[:, :-1], x_T[:, 1:]),
        "element e vs e + NUMEL/4 (a Box–Muller pair)": (x_T[:, : NUMEL // 4], x_T[:, NUMEL // 4 : NUMEL // 2]),
        "seed 3 vs seed 4": (x_T, CounterNoise(4, range(N_IMAGES), (NUMEL,)).latents()),
    }
    for name, (a, b) in pairs.items():
        assert abs(_correlation(a, b)) < _tolerance(a.numel()), name
    # squares too: Box–Muller pairs share a radius, which shows in |z|², not in z
    assert abs(_correlation(x_T[:, : NUMEL // 4] ** 2, x_T[:, NUMEL // 4 : NUMEL // 2] ** 2)) < _tolerance(n // 4)
    # one image's 3,072 values as a whole: the per-image means are N(0, 1/NUMEL)
    means = x_T.mean(1) * math.sqrt(NUMEL)
    assert stats.kstest(means.numpy(), "norm").pvalue > 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_gives_the_cpu_words_exactly_and_the_normals_to_float_rounding():
    indices = torch.arange(16)
    cpu = counter_normals(7, indices, 3, NUMEL)
    cuda = counter_normals(7, indices.cuda(), 3, NUMEL).cpu()
    torch.testing.assert_close(cuda, cpu, rtol=1e-5, atol=1e-5)
    words_cpu = philox4x32((torch.arange(1000), 1, 2, 3), (4, 5))
    words_cuda = philox4x32((torch.arange(1000, device="cuda"), 1, 2, 3), (4, 5))
    assert all(torch.equal(a, b.cpu()) for a, b in zip(words_cpu, words_cuda))

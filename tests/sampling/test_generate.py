"""The speed options of `eval` change rounding, not images: each against the fp32 eager path on the tiny U-Net;
and the cache key that keeps batches of an older noise generator out of a cell."""

import copy
import logging

import pytest
import torch

from ddim.diffusion import NoiseSchedule
from ddim.evaluation.pipeline.options import EvalOptions
from ddim.evaluation.pipeline.plan import CellPlan
from ddim.sampling import SamplerSettings, fast_model, generate
from ddim.models import UNet
from ddim.utils import noise as noise_module

SHAPE = (1, 8, 8)
SETTINGS = SamplerSettings(10, eta=0.5, clip_denoised=True)  # an untrained net: keep x̂0 in [−1, 1]
SCHEDULE = NoiseSchedule.linear()


@pytest.fixture(scope="module")
def model() -> UNet:
    torch.manual_seed(0)
    net = UNet(in_channels=1, out_ch=1, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0,
               resolution=8).eval().requires_grad_(False)
    return net


def images(net, bf16: bool = False, device: str = "cpu") -> torch.Tensor:
    return generate(net, SCHEDULE, SETTINGS, range(6), seed=1, shape=SHAPE, device=device, bf16=bf16).cpu()


@pytest.fixture(scope="module")
def reference(model) -> torch.Tensor:
    return images(model)


def fast(model, *args, **kwargs):
    return fast_model(copy.deepcopy(model), *args, **kwargs)  # channels_last converts the module it is given


@pytest.mark.slow
def test_the_network_moves_the_images(model, reference):
    # otherwise the comparisons below would only compare the noise with itself
    unit = generate(lambda x, t: torch.zeros_like(x), SCHEDULE, SETTINGS, range(6), seed=1, shape=SHAPE)
    assert (reference - unit).abs().mean() > 0.1


@pytest.mark.slow
def test_channels_last_matches_fp32_eager(model, reference):
    # the same float32 math in another memory order: convolution sums in another order, ~1e-6
    torch.testing.assert_close(images(fast(model, "cpu", channels_last=True)), reference, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_bf16_autocast_matches_fp32_eager_to_bf16_precision(model, reference):
    # bf16 keeps 8 bits of mantissa (relative rounding 2⁻⁹ ≈ 0.2 %); over the network and 10 steps the images, in
    # [−1, 1], move by ~2e-3 on average and ~5e-2 at worst (a pixel near the clipping edge): bounds with 2-3x margin
    for net in (model, fast(model, "cpu", channels_last=True)):
        error = (images(net, bf16=True) - reference).abs()
        assert error.mean() < 5e-3
        assert error.max() < 0.15


@pytest.mark.slow
def test_bf16_weights_give_plain_autocast_images_bit_for_bit(model):
    # autocast casts conv/linear weights to bf16 on every call; storing them in bf16 must change nothing
    assert torch.equal(images(fast(model, "cpu", bf16=True), bf16=True), images(model, bf16=True))


@pytest.mark.slow
def test_bf16_norm_weights_where_group_norm_runs_in_bf16_change_nothing(model, monkeypatch):
    # where the U-Net's GroupNorm takes its bf16 path (CUDA; here the CPU stands in), γ and β are stored in bf16
    # once instead of cast on every call: the same images, bit for bit
    monkeypatch.setattr("ddim.models.norm.AUTOCAST_FP32_GROUP_NORM", {"cuda", "cpu"})
    net = fast(model, "cpu", bf16=True)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.weight.dtype == m.bias.dtype == torch.bfloat16 for m in norms)
    assert torch.equal(images(net, bf16=True), images(model, bf16=True))
    monkeypatch.undo()
    # on the CPU autocast's own kernel takes fp32 γ and β, so they stay fp32 there
    norms = [m for m in fast(model, "cpu", bf16=True).modules() if isinstance(m, torch.nn.GroupNorm)]
    assert all(m.weight.dtype == torch.float32 for m in norms)


@pytest.mark.slow
def test_compile_matches_fp32_eager(model, reference):
    torch._dynamo.reset()
    # inductor fuses and reorders float32 ops: differences stay at float32 rounding
    torch.testing.assert_close(images(fast(model, "cpu", compile=True)), reference, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_cuda_graphs_off_cuda_are_ignored_with_a_log_line(model, reference, caplog):
    with caplog.at_level(logging.INFO, logger="ddim.sampling.speed"):
        net = fast_model(model, "cpu", cuda_graphs=True)
    assert net is model
    assert "only on CUDA" in caplog.text
    assert torch.equal(images(net), reference)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_graphs_and_bf16_on_a_gpu_match_eager(model, reference, monkeypatch):
    # cuDNN runs fp32 convolutions in TF32 (10-bit mantissa) by default: 2.6e-3 from the CPU's images after S = 10
    # on an H100. Without it, CPU and GPU noise agree to float rounding, so the images do too.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    gpu = copy.deepcopy(model).cuda()
    eager = images(gpu, device="cuda")
    torch.testing.assert_close(eager, reference, rtol=0, atol=1e-3)
    torch.testing.assert_close(images(fast_model(gpu, "cuda", cuda_graphs=True), device="cuda"), eager,
                               rtol=0, atol=1e-5)
    got = images(fast(gpu, "cuda", channels_last=True, cuda_graphs=True), bf16=True, device="cuda")
    assert (got - eager).abs().mean() < 5e-3 and (got - eager).abs().max() < 0.15


def test_cache_key_names_the_noise_generator(monkeypatch, tmp_path):
    plan = CellPlan(ckpt=str(tmp_path), sampler=SamplerSettings(3), out_dir=str(tmp_path), dataset={"name": "digits"},
                    extractor="digits-classifier", eval=EvalOptions(num_samples=4, batch_size=2))
    assert plan.image_key["noise"] == noise_module.NOISE_VERSION
    before = plan.work_dir("features")
    monkeypatch.setattr("ddim.evaluation.pipeline.plan.NOISE_VERSION", "another-generator")
    assert plan.work_dir("features") != before
    monkeypatch.undo()
    # speed options that change only rounding share cached batches; bf16 does not
    fast = plan.replace(eval=EvalOptions(num_samples=4, batch_size=2, compile=True, channels_last=True, cuda_graphs=True))
    assert fast.work_dir("features") == before
    assert plan.replace(eval=EvalOptions(num_samples=4, batch_size=2, bf16=True)).work_dir("features") != before

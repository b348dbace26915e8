"""One cell of the S × η grid: sample N images straight into the feature extractor, score them against the
training set, measure reconstruction (Table 2), and write metrics.json. Data-parallel over processes."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric import Fabric
from tqdm.auto import tqdm

from ddim.data import DATASET_INFO, build_dataset, from_model_range
from ddim.diffusion import NoiseSchedule
from ddim.diffusion.prediction import as_eps_model
from ddim.errors import InputError
from ddim.models import DEFAULT_SCHEDULE, read_checkpoint
from ddim.sampling import fast_model, generate, reconstruct, to_uint8
from ddim.sampling.search import other_model_warning
from ddim.utils import atomic_write_text, exclusive_lock, lock_holder

from ..metrics.features import build_feature_extractor, metric_name
from ..metrics.fidelity import inception_score, precision_recall
from ..metrics.statistics import FeatureStats, extract_layers, fid_from_stats, kid_from_features
from .intervals import score_intervals
from .plan import CellPlan
from .reference import cell_reference
from .store import done_indices, iter_chunks, read_chunks, save_chunk, write_samples

log = logging.getLogger(__name__)


def load_model(plan: CellPlan, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, NoiseSchedule, dict]:
    """The network in eval mode on `device` as an ε-model (an x0- or v-network's output converted: as_eps_model),
    its noise schedule, and what the checkpoint says about its data."""
    loaded = read_checkpoint(plan.ckpt, ema=plan.ema, trust_pickle=plan.trust_pickle)
    schedule = NoiseSchedule.from_config(loaded.schedule or DEFAULT_SCHEDULE)
    model = as_eps_model(loaded.model, schedule, loaded.model.config["prediction"]).to(device).eval()
    model.requires_grad_(False)
    data = dict((loaded.extra or {}).get("data") or {})
    return model, schedule, data


def image_shape(model: torch.nn.Module) -> tuple[int, int, int]:
    """(C, H, W) of the images the network takes, from its config."""
    config = model.config
    return (config["in_channels"], config["resolution"], config["resolution"])


def chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    """`items` in consecutive lists of at most `size`."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class CellBusy(RuntimeError):
    """Another process holds the cell's lock: it is evaluating this cell now."""


def run_shard(fabric: Fabric, plan: CellPlan) -> None:
    """This process's share: every world_size-th missing index, in batches, features (and MSEs) to disk."""
    model, schedule, _ = load_model(plan, fabric.device)
    shape = image_shape(model)
    model = fast_model(model, fabric.device, compile=plan.eval.compile, channels_last=plan.eval.channels_last,
                       cuda_graphs=plan.eval.cuda_graphs, bf16=plan.eval.bf16)
    logits = plan.fid.wants("isc")  # the Inception Score's class logits, stored beside the features
    extractor = build_feature_extractor(plan.extractor, plan.fid.weights, fabric.device, logits=logits)
    rank, world = fabric.global_rank, fabric.world_size

    sample_dir = plan.work_dir("features")
    todo = sorted(set(range(plan.eval.num_samples)) - done_indices(sample_dir))[rank::world]
    # every rank splits the same list: none may write a batch before all have read what is done
    fabric.barrier()
    for batch in tqdm(list(chunks(todo, plan.eval.batch_size)), desc=f"sampling {plan.sampler.label} S={plan.sampler.steps}",
                      disable=rank != 0, unit="batch"):
        start = time.perf_counter()
        images = to_uint8(generate(model, schedule, plan.sampler, batch, plan.seed, shape, fabric.device, plan.eval.bf16))
        layers = [layer.cpu().numpy() for layer in extract_layers(extractor, images)]  # float32, as made
        # each image's share of its batch's time: sampling throughput without start-up or reconstruction
        seconds = np.full(len(batch), (time.perf_counter() - start) / len(batch))
        arrays = {"images": images.permute(0, 2, 3, 1).cpu().numpy()} if plan.eval.save_samples else {}
        features = layers[0]
        if logits:
            arrays["logits"] = layers[1]
        save_chunk(sample_dir, batch, features=features, seconds=seconds, **arrays)

    if plan.recon_samples > 0:
        test = build_dataset(plan.dataset["name"], plan.dataset.get("root"), DATASET_INFO[plan.dataset["name"]]["test_split"],
                             plan.dataset["resolution"])
        recon_dir = plan.work_dir("reconstruction")
        todo = sorted(set(range(plan.recon_samples)) - done_indices(recon_dir))[rank::world]
        fabric.barrier()
        for batch in tqdm(list(chunks(todo, plan.eval.batch_size)), desc="reconstruction", disable=rank != 0, unit="batch"):
            x0 = torch.stack([test[i] for i in batch]).to(fabric.device)
            _, decoded = reconstruct(model, schedule, x0, plan.sampler.trajectory(schedule), plan.eval.bf16,
                                     plan.sampler.method)
            # Table 2's error: per-dimension MSE with images in [0, 1]
            mse = (from_model_range(decoded) - from_model_range(x0)).square().flatten(1).mean(1)
            save_chunk(recon_dir, batch, mse=mse.cpu().numpy().astype(np.float64))
    fabric.barrier()


def launch(plan: CellPlan) -> None:
    """Runs `run_shard` on `devices` processes (spawned, so it works inside a Hydra multirun) or inline."""
    strategy = "ddp_spawn" if plan.fabric.devices > 1 else "auto"
    fabric = Fabric(accelerator=plan.fabric.accelerator, devices=plan.fabric.devices, strategy=strategy)
    # Lightning walks launch arguments as collections and refuses frozen dataclasses: send plain dicts
    fabric.launch(_run_shard_from_dict, asdict(plan))


def _run_shard_from_dict(fabric: Fabric, plan: dict[str, Any]) -> None:
    run_shard(fabric, CellPlan.from_dict(plan))


def score(plan: CellPlan, reference: FeatureStats) -> dict[str, Any]:
    """The cell's metrics from its finished chunk files: FID (or FD) with its bootstrap interval and FD∞ where asked
    for (intervals.py), KID, Inception Score, precision and recall (fid.metrics), throughput and reconstruction
    MSE."""
    out = Path(plan.out_dir)
    work, num = plan.work_dir("features"), plan.eval.num_samples
    # KID and the resamples draw subsets, so they need the features whole (float32, as stored), read once; the FD
    # alone streams them chunk by chunk into running sums, O(D²) memory whatever N
    whole = plan.fid.wants("kid") or plan.fid.wants("prc") or plan.fid.bootstrap > 0 or plan.fid.extrapolate
    features = read_chunks(work, "features", num) if whole else None
    generated = FeatureStats()
    for rows in [features] if whole else (rows for _, rows in iter_chunks(work, "features", num)):
        generated.update(rows)
    result: dict[str, Any] = {"value": fid_from_stats(generated.mu, generated.sigma, reference.mu, reference.sigma)}
    # images/s of one process; the cell as a whole runs about `devices` times that
    result["images_per_second"] = 1.0 / read_chunks(work, "seconds", num).mean()
    if whole:
        result.update(score_intervals(plan, features, reference, result["value"]))
    if plan.fid.wants("kid"):
        size = min(plan.fid.kid_subset_size, len(features), reference.num_samples)
        result["kid_mean"], result["kid_std"] = kid_from_features(features, reference.features, plan.fid.kid_subsets, size)
    if plan.fid.wants("isc"):
        result["isc_mean"], result["isc_std"] = inception_score(read_chunks(work, "logits", num), plan.fid.isc_splits)
    if plan.fid.wants("prc"):
        result["precision"], result["recall"] = precision_recall(
            features, reference.features, plan.fid.prc_neighborhood, device=plan.fabric.main_device())
    if plan.recon_samples > 0:
        recon_dir = plan.work_dir("reconstruction")
        result["recon_mse"] = float(read_chunks(recon_dir, "mse", plan.recon_samples).mean())
    if plan.eval.save_samples:
        write_samples(out, read_chunks(plan.work_dir("features"), "images", plan.eval.num_samples))
    return result


def run_cell(plan: CellPlan) -> dict[str, Any]:
    """Runs the cell unless metrics.json already holds a finished run of the same key. One process at a time: a
    cell whose lock another process holds raises CellBusy at once (two sweeps on one folder share the work)."""
    lock = Path(plan.out_dir) / ".cell.lock"
    with exclusive_lock(lock) as mine:
        if not mine:
            raise CellBusy(f"{plan.out_dir}: this cell is being evaluated by another process "
                           f"({lock_holder(lock)}); its results will appear there")
        return _evaluate_unlocked(plan)


def _evaluate_unlocked(plan: CellPlan) -> dict[str, Any]:
    out = Path(plan.out_dir)
    metrics_path = out / "metrics.json"
    key = _jsonable(plan.key)
    if metrics_path.is_file():
        previous = json.loads(metrics_path.read_text())
        if previous.get("status") == "ok" and previous.get("key") == key:
            log.info("cell already finished: %s", metrics_path)
            return previous
    # everything that can be wrong is found here, before any sampling
    model, schedule, _ = load_model(plan)
    plan.sampler.validate(schedule)
    mismatch = other_model_warning(plan.sampler, plan.ckpt)
    if mismatch:
        log.warning(mismatch)
    shape = image_shape(model)
    if plan.dataset.get("resolution") != shape[1]:
        raise InputError(f"dataset resolution {plan.dataset.get('resolution')} does not match the model's {shape[1]}")
    extractor = build_feature_extractor(plan.extractor, plan.fid.weights, plan.fabric.main_device())
    reference, reference_format = cell_reference(plan, extractor, shape)
    if plan.recon_samples > 0:
        test_split = DATASET_INFO[plan.dataset["name"]]["test_split"]
        test = build_dataset(plan.dataset["name"], plan.dataset.get("root"), test_split, plan.dataset["resolution"])
        plan.recon_samples = min(plan.recon_samples, len(test))
    del model, extractor

    start = time.perf_counter()
    launch(plan)
    seconds = time.perf_counter() - start
    result = score(plan, reference)
    metrics = {
        "status": "ok", "dataset": plan.dataset["name"], "steps": plan.sampler.steps, "eta": plan.sampler.eta,
        "skip": plan.sampler.skip, "method": plan.sampler.method, "metric": metric_name(plan.extractor), **result,
        "recon_mse": result.get("recon_mse"), "seed": plan.seed, "num_samples": plan.eval.num_samples,
        "reference_num_samples": reference.num_samples, "recon_samples": plan.recon_samples, "ema": plan.ema,
        "nfe": plan.sampler.nfe(schedule), "timesteps": plan.sampler.trajectory(schedule),
        # where the paired differences at the end of the sweep find this cell's features and the reference's
        "features_dir": plan.work_dir("features").name,
        "reference_stats": str(reference.path) if reference.path else None,
        **({"reference_format": reference_format} if reference_format else {}),
        "seconds": round(seconds, 3),
        "devices": plan.fabric.devices, "ckpt": plan.ckpt, "key": key,
    }
    atomic_write_text(metrics_path, json.dumps(metrics, indent=2))
    return metrics


def write_failure(out_dir: str | Path, settings: dict[str, Any], error: BaseException) -> dict[str, Any]:
    """A failed cell still leaves metrics.json, so the table marks it instead of silently missing it."""
    metrics = {"status": "failed", "error": f"{type(error).__name__}: {error}", "value": None, "recon_mse": None,
               **settings}
    atomic_write_text(Path(out_dir) / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


__all__ = ["CellBusy", "CellPlan", "run_cell", "launch", "load_model", "run_shard", "score", "write_failure"]

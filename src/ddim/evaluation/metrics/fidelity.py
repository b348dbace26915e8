"""The metrics papers report beside FID, on features a cell already stored, through torch-fidelity's own formulas:
Inception Score (Salimans et al. 2016) from class logits, and improved precision and recall (Kynkäänniemi et al.
2019) from the same features the Fréchet distance uses. Nothing here samples or extracts."""

from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

# rows of one block of pairwise distances: 2,048 × 50,000 float32 is 0.4 GB (torch-fidelity's 10,000: 2 GB)
PRC_BLOCK_ROWS = 2048


def _tensor(values: np.ndarray | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    tensor = values if torch.is_tensor(values) else torch.from_numpy(np.ascontiguousarray(values))
    return tensor.to(device=device, dtype=torch.float32)


def equal_sized(generated: np.ndarray, real: np.ndarray, seed: int = 2020) -> tuple[np.ndarray, np.ndarray]:
    """Both sets at the smaller one's size, the larger one by a fixed random subset: the k-NN radii shrink as a set
    grows, so precision and recall compare sets of equal size (as Kynkäänniemi et al.'s 50,000 against 50,000)."""
    size = min(len(generated), len(real))
    rng = np.random.RandomState(seed)
    pick = lambda a: a if len(a) == size else a[np.sort(rng.choice(len(a), size, replace=False))]  # noqa: E731
    return pick(generated), pick(real)


def precision_recall(generated: np.ndarray, real: np.ndarray, neighborhood: int = 3, seed: int = 2020,
                     device: torch.device | str = "cpu") -> tuple[float, float]:
    """(precision, recall): the share of generated samples inside some real sample's k-NN ball, and of real samples
    inside some generated sample's (k = `neighborhood`, the paper's 3), by torch-fidelity's prc_features_to_metric
    in blocks of rows; the sets are first made equal in size (equal_sized)."""
    generated, real = equal_sized(np.asarray(generated), np.asarray(real), seed)
    if len(generated) <= neighborhood:
        raise ValueError(f"precision/recall with k = {neighborhood} needs more than {neighborhood} samples a side; "
                         f"got {len(generated)}")
    out = prc_features_to_metric(_tensor(generated, device), _tensor(real, device), prc_neighborhood=neighborhood,
                                 prc_batch_size=PRC_BLOCK_ROWS, save_cpu_ram=True, verbose=False)
    return float(out[KEY_METRIC_PRECISION]), float(out[KEY_METRIC_RECALL])


def inception_score(logits: np.ndarray | torch.Tensor, splits: int = 10, seed: int = 2020) -> tuple[float, float]:
    """(mean, std) over `splits` parts of exp(E KL(p(y|x) ‖ p(y))), from class logits, by torch-fidelity's
    isc_features_to_metric (its shuffle and float64). On Inception's 1,008 logits it is the Inception Score; on the
    digits classifier's 10 it is the same score for that classifier, at most 10."""
    tensor = logits if torch.is_tensor(logits) else torch.from_numpy(np.asarray(logits))
    if tensor.dim() != 2 or len(tensor) < splits:
        raise ValueError(f"the score needs [N, classes] logits with N >= splits={splits}; got {tuple(tensor.shape)}")
    out = isc_features_to_metric(tensor.cpu(), splits=splits, shuffle=True, rng_seed=seed)
    return float(out[KEY_METRIC_ISC_MEAN]), float(out[KEY_METRIC_ISC_STD])


__all__ = ["PRC_BLOCK_ROWS", "equal_sized", "inception_score", "precision_recall"]

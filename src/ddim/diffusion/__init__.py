"""The paper's math on plain tensors: no Lightning, Hydra, wandb or torchvision here.

Notation (code name → paper symbol, Song et al. 2021 write α for the cumulative product):

    betas                 β_t, t = 1..T, stored at network index t − 1
    alphas_cumprod[i]     ᾱ at network index i = t − 1 (α_t in the paper); ᾱ := 1 before index 0
    T                     number of training diffusion steps (1000)
    timesteps             τ_1 < … < τ_S, increasing network indices; sampling walks them backwards
    t, t_prev             an index on τ and the one before it (−1 before the first)
    eps                   ε̂ = ε_θ(x_t, t), the network's noise prediction
    prediction            what the network outputs: eps, x0 or v (prediction.py turns each into ε̂ and x̂0)
    x0_pred               x̂0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t
    eta                   η of eq. 16; 0 is DDIM, 1 is DDPM
    method                an η = 0 ODE solver in SOLVERS (solvers.py, pndm_dpmpp.py): ddim, plms, pndm, dpmpp_2m,
                          dpmpp_2s, dpm_2s, dpm_3, heun
    nfe                   network evaluations per image, which differ from S for plms, pndm and heun
    X0Clip                what a step does to x̂0: clip to [−1, 1] or dynamic thresholding, re-deriving ε̂ or not
    variance="sigma_hat"  σ̂, DDPM's ancestral step with β̂ = 1 − ᾱ_t/ᾱ_prev (Table 1's last row)
"""

from .interpolate import slerp
from .losses import LOSS_WEIGHTINGS, loss_weights, signal_to_noise
from .prediction import PREDICTIONS, X0Clip, as_eps_model, dynamic_threshold, eps_x0_from_output, prediction_target
from .sampling import (
    VARIANCES,
    SampleStep,
    ddim_sigma,
    ddim_step,
    ddpm_posterior_variance,
    ddpm_sigma_hat_step,
    encode,
    randn_like,
    sample,
)
from .solvers import (
    METHODS,
    SOLVERS,
    Solver,
    check_method,
    dpm_2s_sample,
    dpm_3_sample,
    dpmpp_2m_sample,
    heun_encode,
    heun_sample,
    nfe,
    plms_sample,
)
from .schedule import SCHEDULE_NAMES, NoiseSchedule, eps_from_x0, q_sample, x0_from_eps
from .trajectory import SKIP_TYPES, check_steps, check_timesteps, make_timesteps, timestep_pairs

__all__ = [
    "PREDICTIONS", "X0Clip", "as_eps_model", "dynamic_threshold", "eps_x0_from_output", "prediction_target",
    "LOSS_WEIGHTINGS", "METHODS", "SOLVERS", "SCHEDULE_NAMES", "SKIP_TYPES", "VARIANCES", "NoiseSchedule", "SampleStep",
    "Solver", "check_method", "check_steps", "check_timesteps", "ddim_sigma", "ddim_step", "ddpm_posterior_variance",
    "ddpm_sigma_hat_step", "dpm_2s_sample", "dpm_3_sample", "dpmpp_2m_sample", "encode", "eps_from_x0", "heun_encode", "heun_sample",
    "loss_weights", "make_timesteps", "nfe", "plms_sample", "q_sample", "randn_like", "sample", "signal_to_noise",
    "slerp", "timestep_pairs", "x0_from_eps",
]

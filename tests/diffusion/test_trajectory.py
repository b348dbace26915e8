import numpy as np
import pytest

from ddim.diffusion import NoiseSchedule, check_timesteps, make_timesteps, timestep_pairs


@pytest.mark.parametrize("steps", [10, 20, 50, 100, 1000])
def test_paper_step_counts_give_exactly_S_uniform_steps(steps):
    timesteps = make_timesteps(1000, steps, "uniform")
    assert timesteps == list(range(0, 1000, 1000 // steps))
    assert len(timesteps) == steps


def test_uniform_ten_steps_starts_at_900_not_999():
    assert make_timesteps(1000, 10) == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]


@pytest.mark.parametrize("steps", [3, 7, 30, 333, 999])
def test_uniform_gives_exactly_S_steps_when_S_does_not_divide_T(steps):
    timesteps = make_timesteps(1000, steps)
    assert len(timesteps) == steps == len(set(timesteps))
    stride = 1000 // steps
    assert timesteps[-1] == (steps - 1) * stride < 1000
    assert np.all(np.diff(timesteps) == stride)


@pytest.mark.parametrize("steps", [10, 20, 50, 100, 1000])
def test_quad_matches_the_official_formula_with_repeats_dropped(steps):
    official = [int(s) for s in np.linspace(0, np.sqrt(1000 * 0.8), steps) ** 2]
    timesteps = make_timesteps(1000, steps, "quad")
    assert timesteps == sorted(set(official))
    assert timesteps[0] == 0 and timesteps[-1] == 800


def test_quad_reports_true_number_of_evaluations():
    # S = 100 on the quad trajectory repeats low indices (0, 0, 0, 0, 1, ...): fewer network evaluations than S
    nfe = len(make_timesteps(1000, 100, "quad"))
    assert nfe == len(set(int(s) for s in np.linspace(0, np.sqrt(800), 100) ** 2)) < 100
    assert len(make_timesteps(1000, 10, "quad")) == 10


def test_trailing_ends_at_last_index():
    assert make_timesteps(1000, 10, "trailing") == list(range(99, 1000, 100))


@pytest.mark.parametrize("steps", [0, -1, 1001, 2.5, True])
def test_bad_step_counts_are_one_clear_line(steps):
    with pytest.raises(ValueError, match=r"steps=.*expected an integer number of sampling steps between 1 and T=1000"):
        make_timesteps(1000, steps)


def test_unknown_skip_is_one_clear_line():
    with pytest.raises(ValueError, match=r"unknown skip type 'linear'; expected one of uniform, quad, trailing"):
        make_timesteps(1000, 10, "linear")


def test_pairs_walk_backwards_and_end_before_first_index():
    assert timestep_pairs([0, 500, 900]) == [(900, 500), (500, 0), (0, -1)]


SCHEDULE = NoiseSchedule.linear()
LOG_SIGMA = 0.5 * np.log((1 - SCHEDULE.alphas_cumprod.numpy()) / SCHEDULE.alphas_cumprod.numpy())  # −λ per index


@pytest.mark.parametrize("steps", [2, 5, 10, 50, 1000])
def test_linspace_is_rounded_linspace_over_both_ends(steps):
    assert make_timesteps(1000, steps, "linspace") == sorted(set(np.linspace(0, 999, steps).round().astype(int)))


@pytest.mark.parametrize("steps", [5, 10, 20])
def test_linspace_equals_diffusers_ddim_linspace_spacing(steps):
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", timestep_spacing="linspace")
    scheduler.set_timesteps(steps)
    assert make_timesteps(1000, steps, "linspace") == sorted(scheduler.timesteps.tolist())


def _nearest_in(grid, targets):
    return sorted({int(np.argmin(np.abs(grid - v))) for v in targets})


@pytest.mark.parametrize("steps", [3, 5, 10, 25, 50])
def test_logsnr_is_uniform_in_lambda_moved_to_the_nearest_index(steps):
    expected = _nearest_in(LOG_SIGMA, np.linspace(LOG_SIGMA[-1], LOG_SIGMA[0], steps))
    timesteps = make_timesteps(1000, steps, "logsnr", SCHEDULE.alphas_cumprod)
    assert timesteps == expected and timesteps[0] == 0 and timesteps[-1] == 999
    if steps <= 10:  # few points are far apart in λ: every one lands on its own index
        assert len(timesteps) == steps


@pytest.mark.parametrize("steps", [3, 5, 10, 25, 50])
def test_edm_is_karras_rho_7_in_sigma_moved_to_the_nearest_index_in_log_sigma(steps):
    sigma = np.exp(LOG_SIGMA)
    ramp = np.linspace(0, 1, steps)
    karras = (sigma[-1] ** (1 / 7) + ramp * (sigma[0] ** (1 / 7) - sigma[-1] ** (1 / 7))) ** 7
    timesteps = make_timesteps(1000, steps, "edm", SCHEDULE.alphas_cumprod)
    assert timesteps == _nearest_in(LOG_SIGMA, np.log(karras))
    assert timesteps[0] == 0 and timesteps[-1] == 999


@pytest.mark.parametrize("skip, option", [("logsnr", "use_lu_lambdas"), ("edm", "use_karras_sigmas")])
@pytest.mark.parametrize("steps", [5, 10, 20])
def test_logsnr_and_edm_match_diffusers_dpm_solver_spacings(skip, option, steps):
    # diffusers interpolates t linearly in log σ and rounds: the same index as the nearest in log σ
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear",
                                                      **{option: True})
    scheduler.set_timesteps(steps)
    assert make_timesteps(1000, steps, skip, SCHEDULE.alphas_cumprod) == sorted(set(scheduler.timesteps.tolist()))


def test_schedule_spacings_need_the_schedule():
    with pytest.raises(ValueError, match=r"skip='edm' is defined through ᾱ; pass the schedule's alphas_cumprod"):
        make_timesteps(1000, 10, "edm")


@pytest.mark.parametrize("timesteps", [[], [5, 3], [0, 0, 1], [-1, 4], [0, 1000], [0, 2.5], ["a"], "0,1", [True]])
def test_bad_explicit_timesteps_are_one_clear_line(timesteps):
    with pytest.raises(ValueError, match=r"^timesteps=.*; expected a strictly increasing list of network indices in "
                                         r"0\.\.999$"):
        check_timesteps(timesteps, 1000)
    assert check_timesteps((0, 10.0, np.int64(20)), 1000) == [0, 10, 20]

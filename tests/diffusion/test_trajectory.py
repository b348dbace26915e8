import numpy as np
import pytest

from ddim.diffusion import make_timesteps, timestep_pairs


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

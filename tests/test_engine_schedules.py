"""Which noise levels a run actually visits, recorded from the scheduler during real engine runs.

Every executed step must do real work: run at its own timestep and noise level (sigma), strictly
below the step before, for every scheduler at every denoise and start step. The expected levels are
computed here from SD1.5's published noise schedule (scaled-linear betas 0.00085..0.012 over 1000
timesteps) and Karras et al.'s formula, not from the scheduler code under test.
"""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from sketchpad.core.params import GenerationParams
from sketchpad.core.registry import SCHEDULERS

DENOISES = (0.01, 0.02, 0.05, 0.1, 0.3, 0.5, 0.75, 1.0)
STEP_COUNTS = (1, 4, 10, 20, 50)


def sd15_sigmas() -> np.ndarray:
    """sigma(t) = sqrt((1 - alpha_bar_t) / alpha_bar_t) for t = 0..999 (SD1.5's training schedule)."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    alpha_bar = np.cumprod(1 - betas)
    return ((1 - alpha_bar) / alpha_bar) ** 0.5


SIGMA = sd15_sigmas()


def sigma_at(t: float) -> float:
    """The training schedule's sigma at a (possibly fractional) timestep, linear in log sigma."""
    low = min(int(math.floor(t)), 998)
    frac = t - low
    return float(np.exp((1 - frac) * np.log(SIGMA[low]) + frac * np.log(SIGMA[low + 1])))


def karras(n: int, rho: float = 7.0) -> np.ndarray:
    """Karras et al. (2022), eq. 5: n noise levels from sigma_max down to sigma_min."""
    lo, hi = SIGMA[0] ** (1 / rho), SIGMA[-1] ** (1 / rho)
    return (hi + np.arange(n) / (n - 1) * (lo - hi)) ** rho


class Recorder:
    """What each scheduler.step call ran: the timestep and the noise level it stepped from."""

    def __init__(self):
        self.unet_timesteps: list[float] = []
        self.steps: list[tuple[float, float]] = []  # (timestep, sigma)
        self.noised_at: list[float] = []

    def install(self, monkeypatch, unet, fake_unet: bool):
        from sketchpad.backends.local.samplers import _SCHEDULERS

        for cls in {cls for cls, _ in _SCHEDULERS.values()}:
            monkeypatch.setattr(cls, "step", self._recording_step(cls.step))
            monkeypatch.setattr(cls, "add_noise", self._recording_add_noise(cls.add_noise))
        real_forward = unet.forward

        def forward(sample, timestep, *args, **kwargs):
            self.unet_timesteps.append(float(timestep))
            if fake_unet:  # which levels run does not depend on the UNet's answer; this keeps the sweep fast
                return (torch.zeros_like(sample),)
            return real_forward(sample, timestep, *args, **kwargs)

        monkeypatch.setattr(unet, "forward", forward)

    def _recording_step(self, step):
        recorder = self

        def recording(scheduler, model_output, timestep, sample, *args, **kwargs):
            out = step(scheduler, model_output, timestep, sample, *args, **kwargs)
            sigmas = getattr(scheduler, "sigmas", None)
            if sigmas is not None:  # sigma schedulers: the level this step started from
                sigma = float(sigmas[scheduler.step_index - 1])
            else:  # alpha schedulers index their table by the timestep itself
                alpha = float(scheduler.alphas_cumprod[int(timestep)])
                sigma = ((1 - alpha) / alpha) ** 0.5
            recorder.steps.append((float(timestep), sigma))
            return out

        return recording

    def _recording_add_noise(self, add_noise):
        recorder = self

        def recording(scheduler, original, noise, timesteps, *args, **kwargs):
            recorder.noised_at.append(float(timesteps[0]))
            return add_noise(scheduler, original, noise, timesteps, *args, **kwargs)

        return recording

    def clear(self):
        self.unet_timesteps.clear()
        self.steps.clear()
        self.noised_at.clear()


@pytest.fixture
def recorder(engine, monkeypatch, request):
    made = Recorder()
    made.install(monkeypatch, engine.pipe.unet, fake_unet=getattr(request, "param", True))
    return made


def run(engine, recorder, scheduler, steps, **knob):
    recorder.clear()
    p = GenerationParams("a knight", steps=steps, seed=3, cfg=1.0, scheduler=scheduler, preview_method="none", **knob)
    result = engine.generate(p, Image.new("RGB", (32, 32), "white"))
    return result


def assert_every_step_does_real_work(recorder, result, scheduler, steps_wanted):
    timesteps = [t for t, _ in recorder.steps]
    sigmas = [s for _, s in recorder.steps]
    assert timesteps == recorder.unet_timesteps  # the UNet was told the timestep the scheduler stepped
    warm_up = scheduler in (None, "pndm") and steps_wanted > 1
    assert len(timesteps) == result.steps_run == steps_wanted + warm_up
    if warm_up:  # PLMS evaluates its second timestep twice by design (a Runge-Kutta-like start)
        assert timesteps[1] == timesteps[2]
        del timesteps[2], sigmas[2]
    assert all(b < a for a, b in zip(timesteps, timesteps[1:])), timesteps
    assert all(b < a for a, b in zip(sigmas, sigmas[1:])), sigmas
    assert all(s > 0 for s in sigmas)
    if recorder.noised_at:  # the sketch was noised to exactly the level the first step removes
        assert recorder.noised_at == [timesteps[0]]


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_denoise_runs_distinct_decreasing_levels(engine, recorder, scheduler):
    for steps in STEP_COUNTS:
        for denoise in DENOISES:
            result = run(engine, recorder, scheduler, steps, strength=denoise)
            assert_every_step_does_real_work(recorder, result, scheduler, steps)
            assert (recorder.noised_at == []) == (denoise == 1.0)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_start_step_runs_distinct_decreasing_levels(engine, recorder, scheduler):
    for steps in STEP_COUNTS:
        for start in sorted({0, 1, steps // 2, steps - 1}):
            result = run(engine, recorder, scheduler, steps, strength=None, start_at_step=start)
            assert_every_step_does_real_work(recorder, result, scheduler, steps - start)


@pytest.mark.parametrize("recorder", [False], indirect=True)  # the real UNet
def test_dpmpp_2m_at_denoise_001_runs_the_lowest_twenty_timesteps(engine, recorder):
    # 20 steps at d = 0.01 would need a 2000-step schedule; the longest whose steps stay distinct is
    # 999 steps (DPM++'s leading spacing), whose last 20 are timesteps 21..2. Before, all 20 ran at t = 1.
    result = run(engine, recorder, "dpmpp_2m", 20, strength=0.01)
    assert [t for t, _ in recorder.steps] == list(range(21, 1, -1))
    assert [s for _, s in recorder.steps] == pytest.approx([SIGMA[t] for t in range(21, 1, -1)], rel=1e-5)
    assert result.steps_run == 20


@pytest.mark.parametrize("recorder", [False], indirect=True)
def test_karras_at_low_denoise_runs_its_own_levels_at_their_exact_timesteps(engine, recorder):
    # 10 steps at d = 0.1: the last 10 of a 100-level Karras schedule. Rounded to whole timesteps they
    # ran as [4, 4, 3, 2, 2, 1, 1, 1, 0, 0]; now the UNet hears each level's fractional timestep.
    run(engine, recorder, "dpmpp_2m_karras", 10, strength=0.1)
    timesteps, sigmas = zip(*recorder.steps)
    assert list(sigmas) == pytest.approx(list(karras(100)[90:]), rel=1e-4)
    assert [sigma_at(t) for t in timesteps] == pytest.approx(list(sigmas), rel=1e-3)
    assert 4 < timesteps[0] < 5 and 0 <= timesteps[-1] < 0.01
    assert all(b < a for a, b in zip(timesteps, timesteps[1:]))


@pytest.mark.parametrize("recorder", [False], indirect=True)
def test_euler_at_denoise_001_runs_timesteps_20_to_1(engine, recorder):
    run(engine, recorder, "euler", 20, strength=0.01)
    assert [t for t, _ in recorder.steps] == [float(t) for t in range(20, 0, -1)]
    assert [s for _, s in recorder.steps] == pytest.approx([SIGMA[t] for t in range(20, 0, -1)], rel=1e-5)


@pytest.mark.parametrize("recorder", [False], indirect=True)
def test_half_denoise_runs_the_lower_half_of_a_double_length_schedule(engine, recorder):
    # DDIM, SD1.5's leading spacing with offset 1: a 20-step schedule is 951, 901, ..., 1; half of it
    result = run(engine, recorder, "ddim", 10, strength=0.5)
    assert [t for t, _ in recorder.steps] == [451.0, 401.0, 351.0, 301.0, 251.0, 201.0, 151.0, 101.0, 51.0, 1.0]
    assert result.steps_run == 10

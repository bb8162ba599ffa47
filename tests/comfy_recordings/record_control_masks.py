"""Record which executed steps ComfyUI's ControlNet steers for the percents Sketchpad sends.

For a grid of requests (every scheduler we map, several step counts, denoise values and start steps,
several ControlNet ranges) this builds Sketchpad's own graph (workflow.build_graph) and hands its
sampler node's inputs and its ControlNetApplyAdvanced percents to ComfyUI's own code: the KSampler /
KSamplerAdvanced node (so its denoise and start_at_step slicing of the sigmas), SD1.5's model
sampling built as ComfyUI builds it, the real sampler function (with a stand-in denoiser that only
notes the sigma of every model call), ControlNetApplyAdvanced, pre_run_control (percent_to_sigma) and
ControlNet.get_control's own range test. No weights are needed: the sampling path stops at the UNet.

Run it in ComfyUI's environment, from its source folder, with Sketchpad importable:

    cd /path/to/ComfyUI && PYTHONPATH=.:/path/to/sketchpad python /path/to/sketchpad/tests/comfy_recordings/record_control_masks.py COMMIT

It writes control_masks.json beside itself.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import torch

import comfy.cli_args

comfy.cli_args.args.cpu = True  # as the server runs here (--cpu); set before model_management looks for a GPU
import comfy.controlnet  # noqa: E402
import comfy.latent_formats  # noqa: E402
import comfy.model_base  # noqa: E402
import comfy.samplers  # noqa: E402
import comfy.supported_models  # noqa: E402
import nodes  # noqa: E402
# the client package imports websocket-client, which ComfyUI's environment lacks; the graph code never uses it
sys.modules.setdefault("websocket", types.ModuleType("websocket"))
from sketchpad.backends.comfy.workflow import COMFY_SAMPLERS, ServerControl, build_graph  # noqa: E402
from sketchpad.core.params import ControlSpec, GenerationParams  # noqa: E402
from sketchpad.core.schedule import plan_steps  # noqa: E402

HERE = Path(__file__).resolve().parent
STEPS = (1, 2, 4, 7, 20)
DENOISE = (1.0, 0.75, 0.5, 0.3, 0.05)
START_AT = ((4, 1), (4, 2), (4, 3), (7, 3), (20, 5), (20, 15), (20, 19))  # (steps, start_at_step)
RANGES = ((0.0, 1.0), (0.0, 0.5), (0.25, 0.75), (0.5, 1.0), (0.3, 0.31), (0.1, 0.9), (0.6, 0.65), (0.9, 1.0))


class _Steered(Exception):
    """get_control got past its range test: the ControlNet would run at this sigma."""


class _ProbeModel:
    @property
    def dtype(self):  # the first thing get_control reads once a sigma is in range
        raise _Steered()


class _SD15:
    """What the sampling path reads of a loaded SD1.5 checkpoint, with ComfyUI's own model sampling."""

    def __init__(self):
        config = comfy.supported_models.SD15(dict(comfy.supported_models.SD15.unet_config))
        self.model_sampling = comfy.model_base.model_sampling(config, comfy.model_base.ModelType.EPS)
        self.latent_format = comfy.latent_formats.SD15()


class _Patcher:
    def __init__(self):
        self.model = _SD15()
        self.load_device = torch.device("cpu")
        self.model_options = {}

    def get_model_object(self, name):
        return getattr(self.model, name)


class _NoteSigmas:
    """The denoiser the sampler function calls: notes each call's sigma, predicts a clean zero latent."""

    def __init__(self, base):
        self.inner_model = base
        self.calls = []

    def __call__(self, x, sigma, model_options=None, seed=None, **extra):
        self.calls.append(sigma.clone())
        return torch.zeros_like(x)


def comfy_run(sampler_node: dict) -> list[torch.Tensor]:
    """The sigma of every model call ComfyUI's sampler node makes, through its own code down to the UNet."""
    patcher = _Patcher()
    denoiser = _NoteSigmas(patcher.model)
    real_sample = comfy.samplers.sample

    def sample(model, noise, positive, negative, cfg, device, sampler, sigmas, model_options={}, latent_image=None,
               denoise_mask=None, callback=None, disable_pbar=False, seed=None):
        extra = {"model_options": model_options, "seed": seed}
        return sampler.sample(denoiser, sigmas, extra, None, noise, latent_image, denoise_mask, True)

    inputs = {k: v for k, v in sampler_node["inputs"].items() if k not in ("model", "positive", "negative", "latent_image")}
    node = nodes.KSampler() if sampler_node["class_type"] == "KSampler" else nodes.KSamplerAdvanced()
    comfy.samplers.sample = sample
    try:
        node.sample(model=patcher, positive=[], negative=[], latent_image={"samples": torch.zeros(1, 4, 2, 2)}, **inputs)
    finally:
        comfy.samplers.sample = real_sample
    return denoiser.calls


def comfy_mask(apply_node: dict | None, calls: list[torch.Tensor]) -> list[bool]:
    """Per model call: does ComfyUI's ControlNet, given these percents, steer it?"""
    if apply_node is None:
        return [False] * len(calls)
    controlnet = comfy.controlnet.ControlNet(None)
    controlnet.control_model, controlnet.control_model_wrapped = _ProbeModel(), None
    inputs = apply_node["inputs"]
    positive, _ = nodes.ControlNetApplyAdvanced().apply_controlnet(
        [[torch.zeros(1, 1, 1), {}]], [[torch.zeros(1, 1, 1), {}]], controlnet, torch.zeros(1, 16, 16, 3),
        inputs["strength"], inputs["start_percent"], inputs["end_percent"])
    cond = positive[0][1]
    comfy.samplers.pre_run_control(_SD15(), [cond])  # percent_to_sigma, as before every sampling run
    mask = []
    for sigma in calls:
        try:
            mask.append(cond["control"].get_control(torch.zeros(1, 4, 2, 2), sigma, None, 1, {}) is not None)
        except _Steered:
            mask.append(True)
    return mask


def cases():
    for scheduler in COMFY_SAMPLERS:
        for steps in STEPS:
            for denoise in DENOISE:
                yield scheduler, steps, {"strength": denoise}
        for steps, start in START_AT:
            yield scheduler, steps, {"strength": None, "start_at_step": start}


def _bits(mask: list[bool]) -> str:
    return "".join("1" if steered else "0" for steered in mask)


def main(commit: str) -> None:
    requests = []
    for scheduler, steps, how in cases():
        request = {"scheduler": scheduler, "steps": steps, **how, "sampler_node": None, "sigmas": None, "ranges": []}
        for start, end in RANGES:
            spec = ControlSpec("control.safetensors", 1.0, start, end)
            params = GenerationParams("", steps=steps, scheduler=scheduler, seed=1, control=spec, **how).validated()
            graph = build_graph(params, plan_steps(params), "model.safetensors", COMFY_SAMPLERS[scheduler], (16, 16),
                                "sketch.png", control=ServerControl("control.safetensors", lambda: "hint.png")).nodes
            calls = comfy_run(graph["6"])
            if any(sigma.numel() != 1 for sigma in calls):
                raise SystemExit("expected one latent per model call")
            # the same request always builds the same sampler node, whatever the range
            request["sampler_node"] = {"class_type": graph["6"]["class_type"], "inputs": {
                k: v for k, v in graph["6"]["inputs"].items() if not isinstance(v, list)}}
            request["sigmas"] = [float(f"{float(sigma):.8g}") for sigma in calls]
            apply = graph.get("22")
            # what the range would steer if sent as it is (the percents our fractions name): the mistake to avoid
            naive = {"inputs": {"strength": 1.0, "start_percent": start, "end_percent": end}}
            request["ranges"].append({
                "range": [start, end],
                "percents": None if apply is None else [apply["inputs"]["start_percent"], apply["inputs"]["end_percent"]],
                "steered": _bits(comfy_mask(apply, calls)),
                "steered_if_sent_as_is": _bits(comfy_mask(naive, calls)),
            })
        requests.append(request)
    text = json.dumps({"comfyui_commit": commit, "requests": requests}, separators=(",", ":"))
    (HERE / "control_masks.json").write_text(text.replace('{"scheduler"', '\n{"scheduler"') + "\n")
    print(f"{len(requests)} requests x {len(RANGES)} ranges written to {HERE / 'control_masks.json'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "unknown")

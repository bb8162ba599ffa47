"""The prompt graph ComfyUI runs for one request: pure functions of the request, tested alone.

Only built-in nodes: CheckpointLoaderSimple, one LoraLoader per LoRA (chained: each takes the model
and CLIP of the one before), CLIPTextEncode, LoadImage + VAEEncode (or EmptyLatentImage for
text-to-image), for "Keep my lines" ControlNetLoader + a second LoadImage (the inverted sketch) +
ControlNetApplyAdvanced between the prompts and the sampler (its range turned into the percents that
steer the same executed steps, control_range.py), KSampler or KSamplerAdvanced,
VAEDecode, and the output node
(SaveImageWebsocket where the server has it, else PreviewImage, whose files go to the server's
temp folder and not its output folder).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.errors import SketchpadError
from ...core.params import ControlSpec, GenerationParams
from ...core.schedule import StepPlan
from .control_range import control_percents

# Our scheduler names -> ComfyUI (sampler_name, scheduler). PNDM has no ComfyUI counterpart.
COMFY_SAMPLERS = {
    "ddim": ("ddim", "ddim_uniform"),
    "euler": ("euler", "normal"),
    "euler_a": ("euler_ancestral", "normal"),
    "dpmpp_2m": ("dpmpp_2m", "normal"),
    "dpmpp_2m_karras": ("dpmpp_2m", "karras"),
    "lcm": ("lcm", "sgm_uniform"),
}
DEFAULT_SCHEDULER = "euler"  # a server has no "model's own" scheduler; Euler is ComfyUI's default

SAMPLER_NODE = "6"
OUTPUT_NODE = "8"
FIRST_LORA_NODE = 10  # LoRA i is node str(10 + i)
CONTROL_LOADER, CONTROL_IMAGE, CONTROL_APPLY = "20", "21", "22"


@dataclass(frozen=True)
class ServerControl:
    """The ControlNet as the server runs it: its file there, the uploaded control picture, and the
    request's spec (strength, and the range as fractions of the steps that run)."""

    model: str
    image: str
    spec: ControlSpec


WEBSOCKET_OUTPUT = "SaveImageWebsocket"
FILE_OUTPUT = "PreviewImage"


@dataclass(frozen=True)
class Graph:
    nodes: dict  # the API-format prompt: node id -> {"class_type", "inputs"}
    sampler_node: str
    output_node: str
    output_class: str


def our_scheduler(params: GenerationParams) -> str:
    return params.scheduler or DEFAULT_SCHEDULER


def comfy_sampler(scheduler: str, samplers: list[str], schedulers: list[str]) -> tuple[str, str]:
    """ComfyUI's names for our scheduler, checked against what this server offers."""
    if scheduler not in COMFY_SAMPLERS:
        raise SketchpadError(
            f"the {scheduler} scheduler has no ComfyUI counterpart; on a server choose one of: "
            + ", ".join(COMFY_SAMPLERS)
        )
    sampler_name, schedule = COMFY_SAMPLERS[scheduler]
    if sampler_name not in samplers or schedule not in schedulers:
        usable = [ours for ours, (s, k) in COMFY_SAMPLERS.items() if s in samplers and k in schedulers]
        raise SketchpadError(
            f"this ComfyUI server cannot run the {scheduler} scheduler ({sampler_name}/{schedule}); "
            f"it can run: {', '.join(usable) or 'none of ours'}"
        )
    return sampler_name, schedule


def build_graph(
    params: GenerationParams,
    plan: StepPlan,
    checkpoint: str,
    sampler: tuple[str, str],
    size: tuple[int, int],
    image_name: str | None,
    output_class: str = WEBSOCKET_OUTPUT,
    loras: tuple[tuple[str, float], ...] = (),
    control: ServerControl | None = None,
) -> Graph:
    """The prompt for a validated request with a concrete seed and a plan that runs steps.

    `image_name` is the uploaded sketch; it is not used (and may be None) for text-to-image.
    `loras`: (server file name, weight) pairs; the weight goes to both the UNet and the text encoder,
    as the local engine fuses it. A weight of 0 changes nothing, so it adds no node.
    `control`: the ControlNet; at strength 0, or with a range that steers none of the steps that run,
    the graph has none of its nodes (exactly the picture without it).
    """
    if plan.run_steps == 0:
        raise ValueError("a plan that runs no steps needs no server")
    nodes = {"1": _node("CheckpointLoaderSimple", ckpt_name=checkpoint)}
    model, clip = ["1", 0], ["1", 1]
    for name, weight in (lora for lora in loras if lora[1] != 0):
        node_id = str(FIRST_LORA_NODE + len(nodes) - 1)
        nodes[node_id] = _node("LoraLoader", model=model, clip=clip, lora_name=name,
                               strength_model=float(weight), strength_clip=float(weight))
        model, clip = [node_id, 0], [node_id, 1]
    nodes.update({
        "2": _node("CLIPTextEncode", text=params.prompt, clip=clip),
        "3": _node("CLIPTextEncode", text=params.negative_prompt, clip=clip),
        "7": _node("VAEDecode", samples=[SAMPLER_NODE, 0], vae=["1", 2]),
        OUTPUT_NODE: _node(output_class, images=["7", 0]),
    })
    if plan.from_pure_noise:
        # Text-to-image: the sketch must not leak through SD1.5's non-zero terminal SNR.
        nodes["5"] = _node("EmptyLatentImage", width=size[0], height=size[1], batch_size=1)
    else:
        if image_name is None:
            raise ValueError("image-to-image needs the uploaded sketch")
        nodes["4"] = _node("LoadImage", image=image_name)
        nodes["5"] = _node("VAEEncode", pixels=["4", 0], vae=["1", 2])
    conditioning = (["2", 0], ["3", 0])
    percents = control_window(control.spec if control else None, params, plan, sampler)
    if percents is not None:
        nodes[CONTROL_LOADER] = _node("ControlNetLoader", control_net_name=control.model)
        nodes[CONTROL_IMAGE] = _node("LoadImage", image=control.image)
        nodes[CONTROL_APPLY] = _node(
            "ControlNetApplyAdvanced", positive=["2", 0], negative=["3", 0], control_net=[CONTROL_LOADER, 0],
            image=[CONTROL_IMAGE, 0], strength=float(control.spec.strength), start_percent=percents[0],
            end_percent=percents[1])
        conditioning = ([CONTROL_APPLY, 0], [CONTROL_APPLY, 1])
    nodes[SAMPLER_NODE] = _sampler_node(params, plan, sampler, model, conditioning)
    return Graph(nodes, SAMPLER_NODE, OUTPUT_NODE, output_class)


def control_window(spec: ControlSpec | None, params: GenerationParams, plan: StepPlan,
                   sampler: tuple[str, str]) -> tuple[float, float] | None:
    """ControlNetApplyAdvanced's (start_percent, end_percent) for this request's sampler node, or None
    when the ControlNet steers no step that runs (or has strength 0)."""
    if spec is None or spec.strength == 0:
        return None
    return control_percents(spec, _sampler_node(params, plan, sampler, None, (None, None)))


def _sampler_node(params: GenerationParams, plan: StepPlan, sampler: tuple[str, str], model: list,
                  conditioning: tuple[list, list]) -> dict:
    common = dict(
        model=model, positive=conditioning[0], negative=conditioning[1], latent_image=["5", 0],
        cfg=float(params.cfg), sampler_name=sampler[0], scheduler=sampler[1],
    )
    if plan.from_pure_noise:
        return _node("KSampler", seed=params.seed, steps=params.steps, denoise=1.0, **common)
    denoise = params.strength
    if denoise is not None and _ksampler_schedule(params.steps, denoise) == plan.schedule_steps:
        # KSampler builds int(steps / denoise) steps and runs the last `steps`: our plan exactly.
        return _node("KSampler", seed=params.seed, steps=params.steps, denoise=float(denoise), **common)
    # A start step, or a denoise so small that our plan caps the schedule: say the plan outright.
    return _node(
        "KSamplerAdvanced", add_noise="enable", noise_seed=params.seed, steps=plan.schedule_steps,
        start_at_step=plan.first_step, end_at_step=10000, return_with_leftover_noise="disable", **common,
    )


def _ksampler_schedule(steps: int, denoise: float) -> int:
    """The schedule length ComfyUI's KSampler.set_steps builds for this denoise."""
    return steps if denoise > 0.9999 else int(steps / denoise)


def _node(class_type: str, **inputs) -> dict:
    return {"class_type": class_type, "inputs": inputs}

"""The prompt graph ComfyUI runs for one request, and what it will run: functions of the request and
its step plan, tested alone (the one call out is the control picture's upload, when it is needed).

Only built-in nodes: CheckpointLoaderSimple, one LoraLoader per LoRA (chained: each takes the model
and CLIP of the one before), CLIPTextEncode, LoadImage + VAEEncode (or EmptyLatentImage for
text-to-image), for "Keep my lines" ControlNetLoader + a second LoadImage (the inverted sketch) +
ControlNetApplyAdvanced between the prompts and the sampler (its range turned into the percents that
steer the same executed steps, control_range.py), KSampler or KSamplerAdvanced,
VAEDecode, and the output node
(SaveImageWebsocket where the server has it, else PreviewImage, whose files go to the server's
temp folder and not its output folder). With a mask (inpaint.py says why these): LoadImageMask and
SetLatentNoiseMask for a regular checkpoint (at denoise 1 with EmptyLatentImage +
LatentCompositeMasked, blanking the masked latents), or InpaintModelConditioning for an inpainting
one (at denoise 1 from EmptyLatentImage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...core.errors import SketchpadError
from ...core.params import GenerationParams
from ...core.schedule import StepPlan
from .control_range import control_percents, executed_sigmas, ksampler_schedule_length

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
MASK_IMAGE, NOISE_MASK, INPAINT_CONDITIONING, BLANK_LATENT, BLANKED_LATENT = "30", "31", "32", "33", "34"
LOADERS = {"CheckpointLoaderSimple", "LoraLoader", "ControlNetLoader"}


@dataclass(frozen=True)
class ServerControl:
    """The ControlNet as the server runs it: its file there, and the control picture's name there,
    uploaded when first asked (not at all when the ControlNet steers no step that runs). Its
    strength and range are the request's (params.control)."""

    model: str
    upload_image: Callable[[], str]


@dataclass(frozen=True)
class ServerMask:
    """The mask as the server gets it: its picture's name there (uploaded as inpaint.mask_picture
    makes it) and whether the checkpoint is an inpainting one."""

    image: str
    inpainting: bool


WEBSOCKET_OUTPUT = "SaveImageWebsocket"
FILE_OUTPUT = "PreviewImage"


@dataclass(frozen=True)
class Graph:
    """A prompt and what it will run: the steps the server executes (its ddim_uniform runs 8 for 7
    from pure noise or a start step) and the ControlNet's percents (None: no ControlNet in it)."""

    nodes: dict  # the API-format prompt: node id -> {"class_type", "inputs"}
    sampler_node: str
    output_node: str
    output_class: str
    steps: int
    control_window: tuple[float, float] | None
    loader_nodes: frozenset[str]  # the nodes that read model files: while they run, the server loads models


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
    mask: ServerMask | None = None,
) -> Graph:
    """The prompt for a validated request with a concrete seed and a plan that runs steps.

    `image_name` is the uploaded sketch (with a mask: the work picture); it is not used (and may be
    None) for text-to-image without a mask. `size` is its size.
    `loras`: (server file name, weight) pairs; the weight goes to both the UNet and the text encoder,
    as the local engine fuses it. A weight of 0 changes nothing, so it adds no node.
    `control`: the request's ControlNet on the server; at strength 0, or with a range that steers none
    of the steps that run, the graph has none of its nodes (exactly the picture without it).
    `mask`: the request's mask on the server; the picture that comes back is the work picture redone.
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
    if plan.from_pure_noise and mask is None:
        # Text-to-image: the sketch must not leak through SD1.5's non-zero terminal SNR.
        nodes["5"] = _empty_latent(size)
    else:
        if image_name is None:
            raise ValueError("image-to-image and masks need the uploaded sketch")
        nodes["4"] = _node("LoadImage", image=image_name)
        if mask is None or not mask.inpainting:  # InpaintModelConditioning encodes the picture itself
            nodes["5"] = _node("VAEEncode", pixels=["4", 0], vae=["1", 2])
    sampler_node = _sampler_node(params, plan, sampler, model)
    sigmas = executed_sigmas(sampler_node)
    spec = params.control
    window = control_percents(spec, sigmas) if control is not None and spec is not None and spec.applies else None
    positive, negative = ["2", 0], ["3", 0]
    if window is not None:
        nodes[CONTROL_LOADER] = _node("ControlNetLoader", control_net_name=control.model)
        nodes[CONTROL_IMAGE] = _node("LoadImage", image=control.upload_image())
        nodes[CONTROL_APPLY] = _node(
            "ControlNetApplyAdvanced", positive=positive, negative=negative, control_net=[CONTROL_LOADER, 0],
            image=[CONTROL_IMAGE, 0], strength=float(spec.strength), start_percent=window[0], end_percent=window[1])
        positive, negative = [CONTROL_APPLY, 0], [CONTROL_APPLY, 1]
    latent = ["5", 0]
    if mask is not None:
        positive, negative, latent = _mask_nodes(nodes, mask, plan, size, positive, negative)
    sampler_node["inputs"].update(positive=positive, negative=negative, latent_image=latent)
    nodes[SAMPLER_NODE] = sampler_node
    loaders = frozenset(node_id for node_id, node in nodes.items() if node["class_type"] in LOADERS)
    return Graph(nodes, SAMPLER_NODE, OUTPUT_NODE, output_class, len(sigmas), window, loaders)


def _mask_nodes(nodes: dict, mask: ServerMask, plan: StepPlan, size: tuple[int, int], positive: list,
                negative: list) -> tuple[list, list, list]:
    """The mask's nodes, added to `nodes`; the sampler's positive, negative and latent."""
    nodes[MASK_IMAGE] = _node("LoadImageMask", image=mask.image, channel="red")
    if mask.inpainting:
        nodes[INPAINT_CONDITIONING] = _node(
            "InpaintModelConditioning", positive=positive, negative=negative, vae=["1", 2], pixels=["4", 0],
            mask=[MASK_IMAGE, 0], noise_mask=False)
        latent = [INPAINT_CONDITIONING, 2]  # the picture's latents, for image-to-image
        if plan.from_pure_noise:
            nodes["5"] = _empty_latent(size)
            latent = ["5", 0]
        return [INPAINT_CONDITIONING, 0], [INPAINT_CONDITIONING, 1], latent
    latent = ["5", 0]
    if plan.from_pure_noise:
        # the masked part is painted from noise alone, as locally: ComfyUI adds the latents it is given
        # to the first noise, and through SD1.5's non-zero terminal SNR the picture would show there
        nodes[BLANK_LATENT] = _empty_latent(size)
        nodes[BLANKED_LATENT] = _node("LatentCompositeMasked", destination=latent, source=[BLANK_LATENT, 0], x=0, y=0,
                                      resize_source=False, mask=[MASK_IMAGE, 0])
        latent = [BLANKED_LATENT, 0]
    nodes[NOISE_MASK] = _node("SetLatentNoiseMask", samples=latent, mask=[MASK_IMAGE, 0])
    return positive, negative, [NOISE_MASK, 0]


def _sampler_node(params: GenerationParams, plan: StepPlan, sampler: tuple[str, str], model: list) -> dict:
    """KSampler or KSamplerAdvanced running the plan; its conditioning and latent are linked in by the caller."""
    common = dict(model=model, cfg=float(params.cfg), sampler_name=sampler[0], scheduler=sampler[1])
    if plan.from_pure_noise:
        return _node("KSampler", seed=params.seed, steps=params.steps, denoise=1.0, **common)
    denoise = params.strength
    if denoise is not None and ksampler_schedule_length(params.steps, denoise) == plan.schedule_steps:
        # KSampler builds int(steps / denoise) steps and runs the last `steps`: our plan exactly.
        return _node("KSampler", seed=params.seed, steps=params.steps, denoise=float(denoise), **common)
    # A start step, or a denoise so small that our plan caps the schedule: say the plan outright.
    return _node(
        "KSamplerAdvanced", add_noise="enable", noise_seed=params.seed, steps=plan.schedule_steps,
        start_at_step=plan.first_step, end_at_step=10000, return_with_leftover_noise="disable", **common,
    )


def _empty_latent(size: tuple[int, int]) -> dict:
    return _node("EmptyLatentImage", width=size[0], height=size[1], batch_size=1)


def _node(class_type: str, **inputs) -> dict:
    return {"class_type": class_type, "inputs": inputs}

"""The run: sketch + request -> picture, with per-step previews, cancellation and live-use caches.

We drive the UNet loop ourselves rather than calling diffusers' img2img pipeline, because its
semantics differ (int(steps * strength) steps, nothing at strength 0) and because an abandoned run
must leave at once without a final VAE decode. The loop mirrors diffusers' text-to-image pipeline
operation for operation, which is what makes denoise 1 equal to it bit for bit.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from functools import partial
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.resnet import ResnetBlock2D
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from ...core.backend import GenerationResult, OnStep, OnWaiting, ShouldStop, StepPreview
from ...core.families import Family, family_of_parts, is_turbo_name
from ...core.images import prepare_sketch, to_rgb_picture
from ...core.masks import InpaintPlan, check_mask_fits, plan_inpaint
from ...core.params import GenerationParams
from ...core.presets import fit_preset_to_model
from ...core.schedule import StepPlan, plan_steps
from . import preview as previews
from .compat import check_pipeline, check_scheduler
from .conditioning import Conditioning, encode_prompt
from .controlnet import ControlNetSlot
from .inpaint import Masking, blank_where_redone, inpainting_masking, is_inpainting_unet, regular_masking
from .lora import LoraStack
from .models import out_of_memory, out_of_memory_error
from .precision import dtype_name
from .samplers import longest_schedule, make_scheduler, prepare_timesteps, scheduler_name

# UNet blocks before which a stale run may leave: ~40 per step on SD1.5, so a live restart waits
# about 1/40 of a step instead of up to a whole one, for a few microseconds of checks per step.
STOP_POINT_TYPES = (ResnetBlock2D, BasicTransformerBlock)


def stop_points(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The blocks of a UNet (or ControlNet) before which a run checks whether to stop."""
    return [module for module in model.modules() if isinstance(module, STOP_POINT_TYPES)]


class _Abandoned(Exception):
    """Raised inside the UNet to leave a stale run at once."""


class _LRU(OrderedDict):
    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity

    def get_or_make(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        if len(self) > self.capacity:
            self.popitem(last=False)
        return value


class Img2ImgEngine:
    """Owns one loaded pipeline of any family (SD 1.5, SD 2.x, SDXL). Not thread-safe: exactly one
    thread may call it. The family only changes what the UNet is told (see conditioning.py), the
    preview colours, the tiny autoencoder and the native size; the denoising loop is the same.

    The engine leaves nothing on the pipeline between runs (its stop checks are hooked into the UNet
    only while a run is in flight), so dropping the last reference to engine and pipeline frees the
    weights at once; `close()` lets go of them while the engine object itself lives on.
    """

    def __init__(self, pipeline, model_name: str = "model", notify: Callable[[str], None] | None = None):
        check_pipeline(pipeline)
        check_scheduler(pipeline.scheduler)
        self.pipe = pipeline
        self.model_name = model_name
        self.notify = notify or (lambda message: None)
        self.device = pipeline.unet.device
        self.family = pipeline_family(pipeline)
        self.turbo = is_turbo_name(model_name)  # the turbo preset runs a one-step model as it is
        self.native_size = int(pipeline.unet.config.sample_size) * pipeline.vae_scale_factor
        self.dtype = pipeline.text_encoder.dtype  # the loop's latents and embeddings
        self.unet_dtype = pipeline.unet.dtype  # bf16 on a CPU that has the instructions (see precision.py)
        self.device_name = f"{self.device.type} ({dtype_name(self.unet_dtype)})"  # the status line says both
        self._model_scheduler = pipeline.scheduler
        self._schedulers: dict[str, object] = {}
        self._prompt_cache = _LRU(8)  # (prompt, negative, cfg on) -> embeddings
        self._sketch_cache = _LRU(4)  # sketch content hash -> encoded latents
        self._previewers: dict[str, previews.Previewer] = {}
        self._run_hooks: list = []  # the stop checks of the run in flight
        self.loras = LoraStack(pipeline, self.family, self.notify)
        self.controlnets = ControlNetSlot(pipeline, self.device, self.unet_dtype)
        self._taesd_model = None
        self._taesd_tried = False
        self._draft_latents: tuple[tuple, torch.Tensor] | None = None  # the last draft's, for its refine

    def close(self) -> None:
        """Let go of the pipeline, ControlNet, TAESD, caches and previewers so their memory can be
        freed now (on CUDA the freed cache is handed back to the driver too). Generating afterwards
        raises RuntimeError; closing twice is harmless."""
        cuda = self.pipe is not None and self.device.type == "cuda"
        self._remove_stop_checks()
        self._prompt_cache.clear()
        self._sketch_cache.clear()
        self._previewers.clear()
        self._schedulers.clear()
        self._model_scheduler = None
        self._taesd_model = None
        self._draft_latents = None
        self.controlnets = ControlNetSlot(None, self.device, self.unet_dtype)
        self.loras = None
        self.pipe = None
        if cuda:
            torch.cuda.empty_cache()

    @property
    def closed(self) -> bool:
        return self.pipe is None

    # ---- the run -------------------------------------------------------------------------
    def generate(
        self,
        params: GenerationParams,
        sketch: Image.Image,
        on_step: OnStep | None = None,
        should_stop: ShouldStop | None = None,
        on_waiting: OnWaiting | None = None,  # noqa: ARG002  (the local engine never waits on others)
    ) -> GenerationResult | None:
        """Run one request. Returns None if `should_stop` said so (checked before every step and
        between the UNet's blocks, so a stale run leaves within a fraction of a step).

        With a mask (`params.mask`) the sketch is the picture at its own size; the run works on the
        part core/masks.py plans, every preview shows the whole picture, and the result is the
        picture with the new part pasted in through the feather."""
        if self.pipe is None:
            raise RuntimeError("this engine was closed; load the model again")
        started = time.perf_counter()
        params = fit_preset_to_model(params.validated(), self.family.name, self.turbo).with_concrete_seed()
        stop = should_stop or (lambda: False)
        picture, inpaint = None, None
        if params.mask is None:
            sketch = prepare_sketch(sketch)
        else:
            picture = to_rgb_picture(sketch)
            check_mask_fits(params.mask, picture.size)
            inpaint = plan_inpaint(params.mask, self.native_size)
            sketch = inpaint.work_picture(picture)
            if on_step is not None:
                on_step = _pasting_previews(on_step, inpaint.preview_paster(picture))
        scheduler = self._scheduler(params.scheduler)
        plan = plan_steps(params, longest_schedule(scheduler, params.steps))
        sampler = scheduler_name(scheduler)
        if plan.run_steps == 0:
            unchanged = sketch if picture is None else picture
            return GenerationResult(unchanged.copy(), params, sampler, 0, time.perf_counter() - started)
        params = params.replace(loras=self.loras.apply(params.loras))
        # a refine (the same request as the last draft, decoded with the full VAE) reuses its latents
        key = (params.replace(draft=False, preview_method="none"), self.loras.state, _sketch_key(sketch))
        if should_stop is not None:
            self._hook_stop_checks(self.pipe.unet, stop)
        try:
            with torch.no_grad():
                if not params.draft and self._draft_latents is not None and self._draft_latents[0] == key:
                    latents, steps_run = self._draft_latents[1], 0
                else:
                    ran = self._denoise(params, sketch, scheduler, plan, on_step or (lambda preview: None), stop,
                                        inpaint)
                    if ran is None or stop():
                        return None
                    latents, steps_run = ran
                    if params.draft:
                        self._draft_latents = (key, latents)
                image = self._decode_draft(latents) if params.draft else self._decode(latents)
            if inpaint is not None:
                image = inpaint.paste(picture, image)
        except _Abandoned:
            return None
        except (MemoryError, RuntimeError) as error:  # torch.OutOfMemoryError is a RuntimeError
            if out_of_memory(error):
                raise out_of_memory_error(self.device) from error
            raise
        finally:
            self._remove_stop_checks()
        return GenerationResult(image, params, sampler, steps_run, time.perf_counter() - started)

    def refine(self, params: GenerationParams, sketch: Image.Image, on_step=None, should_stop=None):
        """The picture of a draft request (`result.params` of a draft) decoded with the full VAE: one
        VAE decode when it was the last draft, else a full run."""
        return self.generate(params.replace(draft=False), sketch, on_step, should_stop)

    def _hook_stop_checks(self, model: torch.nn.Module, stop: ShouldStop) -> None:
        # The hooks close over `stop` only, never the engine, and live for one run: a pipeline shared
        # by several engines never collects hooks, and no reference cycle outlives the run.
        def check(module, args) -> None:
            if stop():
                raise _Abandoned

        self._run_hooks += [module.register_forward_pre_hook(check) for module in stop_points(model)]

    def _remove_stop_checks(self) -> None:
        for hook in self._run_hooks:
            hook.remove()
        self._run_hooks = []

    def _denoise(self, params, sketch, scheduler, plan: StepPlan, on_step: OnStep, stop: ShouldStop,
                 inpaint: InpaintPlan | None = None):
        pipe, device = self.pipe, self.device
        do_cfg = params.cfg > 1 and pipe.unet.config.time_cond_proj_dim is None
        conditioning = self._prompt_embeddings(params.prompt, params.negative_prompt, do_cfg)
        timesteps = prepare_timesteps(scheduler, plan, device)
        generator = torch.Generator("cpu").manual_seed(params.seed)
        width, height = sketch.size
        unet_inputs = conditioning.unet_inputs(self.unet_dtype, height, width)
        factor = pipe.vae_scale_factor
        shape = (1, pipe.vae.config.latent_channels, height // factor, width // factor)
        noise = randn_tensor(shape, generator=generator, device=device, dtype=self.dtype)
        if plan.from_pure_noise:
            latents = noise * scheduler.init_noise_sigma
        else:
            latents = scheduler.add_noise(self._sketch_latents(sketch), noise, timesteps[:1])
        masking = self._masking(inpaint, sketch, scheduler, timesteps, noise, do_cfg)
        step_kwargs = _step_kwargs(pipe, scheduler, generator)
        timestep_cond = self._guidance_embedding(params.cfg, self.unet_dtype)
        preview = self._previewer(params.preview_method)
        control = self._control_residuals(params, sketch, unet_inputs, do_cfg)
        if self._run_hooks and params.control is not None and self.controlnets.model is not None:
            self._hook_stop_checks(self.controlnets.model, stop)
        total = len(timesteps)
        for index, t in enumerate(timesteps):
            if stop():
                return None
            model_input = torch.cat([latents] * 2) if do_cfg else latents
            model_input = scheduler.scale_model_input(model_input, t)
            unet_input = (model_input if masking is None else masking.condition(model_input)).to(self.unet_dtype)
            residuals = control(model_input.to(self.unet_dtype), t, index, total)  # {}: no ControlNet steers it
            noise_pred = pipe.unet(
                unet_input,
                t,
                timestep_cond=timestep_cond,
                cross_attention_kwargs=None,
                return_dict=False,
                **unet_inputs,
                **residuals,
            )[0].to(self.dtype)
            if do_cfg:
                uncond, text = noise_pred.chunk(2)
                noise_pred = uncond + params.cfg * (text - uncond)
            output = scheduler.step(noise_pred, t, latents, **step_kwargs, return_dict=True)
            if preview is not None:
                x0 = previews.predicted_original(scheduler, output, latents, noise_pred, t)
                on_step(StepPreview(index + 1, total, preview(x0)))
            else:
                on_step(StepPreview(index + 1, total, None))
            latents = output.prev_sample if masking is None else masking.blend(output.prev_sample, index)
        return latents, total

    def _decode(self, latents: torch.Tensor) -> Image.Image:
        vae = self.pipe.vae
        image = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
        return self.pipe.image_processor.postprocess(image, output_type="pil", do_denormalize=[True])[0]

    def _decode_draft(self, latents: torch.Tensor) -> Image.Image:
        taesd = self._taesd()
        if taesd is None:  # said once by _taesd; the picture still comes, from the full VAE
            return self._decode(latents)
        image = taesd.decode(latents.to(taesd.dtype), return_dict=False)[0]
        return self.pipe.image_processor.postprocess(image, output_type="pil", do_denormalize=[True])[0]

    # ---- "keep my lines" -----------------------------------------------------------------
    def _control_residuals(self, params, sketch, unet_inputs: dict, do_cfg):
        spec = params.control
        if spec is None or not spec.applies:  # strength 0: the ControlNet is not even loaded
            return lambda model_input, t, index, total: {}
        controlnet = self.controlnets.get(spec, self.family, self.pipe.unet.config.cross_attention_dim)
        condition = self.controlnets.control_image(sketch)
        condition = torch.cat([condition] * 2) if do_cfg else condition

        def residuals(model_input, t, index, total) -> dict:
            if not spec.steers(index, total):
                return {}
            down, mid = controlnet(
                model_input, t, controlnet_cond=condition, conditioning_scale=float(spec.strength),
                guess_mode=False, return_dict=False, **unet_inputs,
            )
            return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}

        return residuals

    # ---- masks ---------------------------------------------------------------------------
    def _masking(self, inpaint: InpaintPlan | None, sketch, scheduler, timesteps, noise, do_cfg) -> Masking | None:
        """What the mask adds to each step (see inpaint.py); None for a plain run on a regular UNet."""
        inpainting = is_inpainting_unet(self.pipe.unet)
        if inpaint is None and not inpainting:
            return None
        redo = np.ones(noise.shape[2:], bool) if inpaint is None else inpaint.latent_mask(self.pipe.vae_scale_factor)
        if not inpainting:
            return regular_masking(scheduler, timesteps, noise, self._sketch_latents(sketch), redo)
        redo_pixels = None if inpaint is None else inpaint.work_redo()
        # cached beside the sketches' latents: a denoise-only change encodes nothing
        key = ("blank", sketch.size)
        if redo_pixels is not None:
            key = (_sketch_key(sketch), _digest(np.packbits(redo_pixels)))

        def encode_masked():
            return self._encode(blank_where_redone(self._pixels(sketch), redo_pixels))

        return inpainting_masking(self._sketch_cache.get_or_make(key, encode_masked), redo, do_cfg)

    # ---- caches for live use -------------------------------------------------------------
    def _prompt_embeddings(self, prompt: str, negative: str, do_cfg: bool) -> Conditioning:
        def encode():
            return encode_prompt(self.pipe, prompt, negative, do_cfg, self.device)

        # a LoRA may change the text encoder too, so what is fused is part of the key
        return self._prompt_cache.get_or_make((prompt, negative, do_cfg, self.loras.state), encode)

    def _sketch_latents(self, sketch: Image.Image) -> torch.Tensor:
        key = _sketch_key(sketch)

        return self._sketch_cache.get_or_make(key, lambda: self._encode(self._pixels(sketch)))

    def _pixels(self, picture: Image.Image) -> torch.Tensor:
        return self.pipe.image_processor.preprocess(picture).to(self.device, self.pipe.vae.dtype)

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        # the distribution's mode, not a sample: the same sketch always gives the same latents,
        # which is what lets a seed-only change reuse them
        latents = vae.encode(pixels).latent_dist.mode() * vae.config.scaling_factor
        return latents.to(self.dtype)

    def _scheduler(self, name: str | None):
        if name is None:
            return self._model_scheduler
        if name not in self._schedulers:
            self._schedulers[name] = make_scheduler(name, self._model_scheduler.config)
        return self._schedulers[name]

    def _guidance_embedding(self, cfg: float, dtype):
        dim = self.pipe.unet.config.time_cond_proj_dim
        if dim is None:
            return None
        scale = torch.tensor(cfg - 1).repeat(1)
        return self.pipe.get_guidance_scale_embedding(scale, embedding_dim=dim).to(self.device, dtype)

    # ---- previews ------------------------------------------------------------------------
    def _previewer(self, method: str) -> previews.Previewer | None:
        if method == "none":
            return None
        if method not in self._previewers:
            self._previewers[method] = self._make_previewer(method)
        return self._previewers[method]

    def _make_previewer(self, method: str) -> previews.Previewer:
        if method == "vae":
            vae = self.pipe.vae
            return previews.decoder_previewer(
                lambda x0: vae.decode(x0.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
            )
        if method == "taesd":
            taesd = self._taesd()
            if taesd is not None:
                return previews.decoder_previewer(lambda x0: taesd.decode(x0.to(taesd.dtype), return_dict=False)[0])
        return partial(previews.latent2rgb, factors=self.family.latent_rgb_factors, bias=self.family.latent_rgb_bias)

    def _taesd(self):
        """The tiny autoencoder, loaded once for previews and draft decodes; None (said once) if missing."""
        if not self._taesd_tried:
            from .taesd import load_taesd

            self._taesd_tried = True
            self._taesd_model, problem = load_taesd(self.pipe, self.family, self.device, self.dtype)
            if problem:
                self.notify(
                    f"TAESD unavailable ({problem}); previews use latent2rgb and drafts the full VAE instead"
                )
        return self._taesd_model


def pipeline_family(pipe) -> Family:
    """The family of a loaded pipeline, by the same rule as a folder's (core.families)."""
    second = getattr(pipe, "text_encoder_2", None) is not None
    return family_of_parts(second, pipe.text_encoder.config.hidden_act, pipe.unet.config.cross_attention_dim)


def _pasting_previews(on_step: OnStep, paste) -> OnStep:
    """Previews of the work picture shown as the whole picture, the work pasted in."""

    def report(preview: StepPreview) -> None:
        image = None if preview.image is None else paste(preview.image)
        on_step(StepPreview(preview.step, preview.total, image))

    return report


def _sketch_key(sketch: Image.Image) -> str:
    return _digest(sketch.tobytes()) + str(sketch.size)


def _digest(data) -> str:
    return hashlib.blake2b(data, digest_size=16, person=b"sketchpad").hexdigest()


def _step_kwargs(pipe, scheduler, generator) -> dict:
    # diffusers' own rule for which extras (eta, generator) a scheduler's step takes, applied to the
    # scheduler of this run rather than to the pipeline's own
    return type(pipe).prepare_extra_step_kwargs(SimpleNamespace(scheduler=scheduler), generator, 0.0)

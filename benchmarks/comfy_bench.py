"""ComfyUI backend figures against a real server (loopback):

    python -m benchmarks.comfy_bench --server http://127.0.0.1:8188 [--model CKPT] [--size 128] [--steps 6]
        [--local same|tiny|none]

(or `python -m benchmarks --server URL`, which adds these figures to BENCHMARKS.md).
Client overhead: a job's wall time in generate() outside the server's execution (until its
execution_start arrives, and from the result picture's arrival to the return), split into our own
work, the POST /prompt round trip and the server's pick-up. Bytes per preview frame: as received, header included.
Live restart: a stale job is stopped (should_stop) after its first preview and a denoise-only
request follows at once; from that request to the server saying the stale job was interrupted, and
to the new job's first preview. A dial-only change must upload nothing.
Side by side, in the same run: the local engine at the same size, steps, sampler and denoise changes.
`--local same` (default) builds, with random weights, the architecture of the smallest checkpoint a
ComfyUI server takes as SD1.5 (a UNet with one 320-channel level, the full-size VAE and CLIP text
encoder: what tests/comfy_recordings' server runs); `tiny` the tests' tiny model. Weights do not change
the time a step takes, only the architecture does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from PIL import Image, ImageDraw

from .report import Figure, console_line

SECTION = "ComfyUI server"


def _sketch(size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).line((size // 8, size // 8, size - size // 8, size - size // 4), fill="black", width=3)
    return image


class JobTimes:
    """The client's job events (its JobObserver), kept per generate() call: our clock, perf_counter."""

    def __init__(self):
        self.last: dict = {}
        self._job: dict = {}

    def job_event(self, event: str, at: float, **details) -> None:
        if event == "started":
            self._job = {"preview_times": [], "preview_bytes": [], "stale_stopped": 0.0, "first_preview": 0.0}
        if event == "posted":
            self._job["posted"] = details["seconds"]
            self._job["submitted"] = at
        elif event == "preview":
            self._job["preview_times"].append(at)
            self._job["preview_bytes"].append(details["bytes"])
            self._job["first_preview"] = self._job["first_preview"] or at
        elif event == "picture":
            self._job["server_ended"] = at
        else:
            self._job[event] = at
        if event == "finished":
            self.last = self._job


def run(server: str, model: str | None, size: int, steps: int, rounds: int, emit, say, local: str = "none") -> None:
    from sketchpad.backends.comfy.client import ComfyBackend
    from sketchpad.core.params import GenerationParams

    times = JobTimes()
    backend = ComfyBackend(server, model, notify=say, observer=times)
    setup = f"{backend.model_name} on {backend.device_name}, {size}x{size}, {steps} steps"
    sketch = _sketch(size)
    base = GenerationParams("a cat", strength=0.5, steps=steps, seed=1, scheduler="euler")
    say(f"server {backend.server}: {setup}")
    backend.generate(base.replace(strength=0.45), sketch)  # warm-up: load the checkpoint, encode prompt and sketch

    overhead, frame_bytes, step_times = [], [], []
    own, posting, pickup, server_jobs = [], [], [], []
    uploads_before = backend.uploads
    for i in range(rounds):
        # each round a new denoise: the server re-runs the sampler and decoder, nothing else
        backend.generate(base.replace(strength=0.5 + 0.04 * i), sketch)
        t = times.last
        # outside the server's execution, as we see it: before its execution_start reached us, after the picture did
        overhead.append((t["server_started"] - t["started"]) + (t["finished"] - t["server_ended"]))
        # the parts: ours (before the POST, after the last message), the POST, the server's own gaps
        own.append((t["submitted"] - t["started"] - t["posted"]) + (t["finished"] - t["server_ended"]))
        posting.append(t["posted"])
        pickup.append(t["server_started"] - t["submitted"])
        server_jobs.append(t["finished"] - t["started"])

        frame_bytes += t["preview_bytes"]
        previews = t["preview_times"]
        step_times += [b - a for a, b in zip(previews, previews[1:])]
    uploads = backend.uploads - uploads_before
    emit(Figure(SECTION, setup, "wall time per job outside the server's execution", overhead, "s",
                note="call -> execution_start received, plus picture received -> returned"))
    emit(Figure(SECTION, setup, "client overhead per job (our own work: before the POST and after the last message)",
                own, "s", target="<= 20 ms", passed=statistics.median(own) <= 0.020))
    emit(Figure(SECTION, setup, "POST /prompt round trip (the server validates the prompt inside it)", posting, "s"))
    emit(Figure(SECTION, setup, "server: POST answered -> execution_start", pickup, "s",
                note="ComfyUI runs gc.collect() between jobs more than 10 s apart"))
    emit(Figure(SECTION, setup, "bytes per preview frame", [round(b / 1024, 1) for b in frame_bytes], "KiB",
                note="JPEG at the server's --preview-size"))
    emit(Figure(SECTION, setup, "server step time (between previews)", step_times, "s"))
    emit(Figure(SECTION, setup, "server: wall time per denoise change (call -> picture)", server_jobs, "s"))
    if local != "none":
        say(f"local engine ({local} architecture) on this computer, the same jobs")
        local_jobs, local_steps = _local_jobs(local, base, sketch, rounds)
        local_setup = f"local {_LOCAL_LABELS[local]}, {size}x{size}, {steps} steps"
        emit(Figure(SECTION, local_setup, "local engine step time (between previews)", local_steps, "s"))
        emit(Figure(SECTION, local_setup, "local engine: wall time per denoise change (call -> picture)", local_jobs,
                    "s"))
        emit(Figure(SECTION, setup, "server wall time per job / local engine's", [
            statistics.median(server_jobs) / statistics.median(local_jobs)], "x", reference=local_setup,
            note="above 1: the server (here on the same CPU) takes longer than this computer would"))
    emit(Figure(SECTION, setup, "sketches uploaded by dial-only changes", [float(uploads)], "x",
                target="0", passed=uploads == 0, note=f"{rounds} denoise changes"))

    stopped, first_preview, margin = [], [], []
    for i in range(max(2, rounds // 2)):
        seen = []
        requested = {}

        def stale_step(step):
            seen.append(step)

        def should_stop():
            if seen and "at" not in requested:
                requested["at"] = time.perf_counter()
            return bool(seen)

        stale = base.replace(steps=max(steps * 4, 20), strength=0.6, seed=100 + i)
        backend.generate(stale, sketch, on_step=stale_step, should_stop=should_stop)
        backend.generate(base.replace(strength=0.3 + 0.05 * i, seed=100 + i), sketch)
        t = times.last
        if t["stale_stopped"]:
            stopped.append(t["stale_stopped"] - requested["at"])
        first_preview.append(t["first_preview"] - requested["at"])
        previews = t["preview_times"]
        if len(previews) > 1 and t["stale_stopped"]:
            # the server checks for an interrupt only between steps, so the stale step's rest comes first;
            # from then on the new job should take one step plus little
            step = statistics.median(b - a for a, b in zip(previews, previews[1:]))
            margin.append(t["first_preview"] - t["stale_stopped"] - step)
    emit(Figure(SECTION, setup, "live restart: request -> stale job stopped on the server", stopped, "s"))
    emit(Figure(SECTION, setup, "live restart: request -> first preview of the new job", first_preview, "s"))
    emit(Figure(SECTION, setup, "live restart: stale job stopped -> new job's first preview, minus one step", margin,
                "s", target="<= 50 ms", passed=statistics.median(margin) <= 0.050 if margin else None,
                note="ComfyUI checks for an interrupt once per step, so the stale step's rest always comes first"))
    backend.close()


_LOCAL_LABELS = {"same": "one-level SD1.5 (the server checkpoint's architecture, random weights)",
                 "tiny": "tiny random model"}


def _local_jobs(kind: str, base, sketch: Image.Image, rounds: int) -> tuple[list[float], list[float]]:
    """The local engine's wall time per denoise change and its step times, for the same requests."""
    from sketchpad.backends.local.img2img import Img2ImgEngine

    engine = Img2ImgEngine(_local_pipeline(kind), model_name=f"local-{kind}")
    engine.generate(base.replace(strength=0.45), sketch)  # warm-up, as on the server
    jobs, steps = [], []
    for i in range(rounds):
        times = []
        started = time.perf_counter()
        engine.generate(base.replace(strength=0.5 + 0.04 * i), sketch, on_step=lambda _: times.append(time.perf_counter()))
        jobs.append(time.perf_counter() - started)
        steps += [b - a for a, b in zip(times, times[1:])]
    return jobs, steps


def _local_pipeline(kind: str):
    import tempfile

    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionImg2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from sketchpad import tiny_model

    if kind == "tiny":
        with tempfile.TemporaryDirectory() as folder:
            tiny_model.write_tiny_model(folder)
            pipe = StableDiffusionImg2ImgPipeline.from_pretrained(folder, use_safetensors=True, safety_checker=None,
                                                                  feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    torch.manual_seed(0)
    tokenizer = tiny_model._load_tokenizer()
    # the UNet of tests/comfy_recordings' server checkpoint (comfy-tools make_ckpt.py), full VAE and CLIP
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(320,),
        down_block_types=("CrossAttnDownBlock2D",), up_block_types=("CrossAttnUpBlock2D",), cross_attention_dim=768,
        attention_head_dim=8, norm_num_groups=32, act_fn="silu", flip_sin_to_cos=True, freq_shift=0)
    text = CLIPTextModel(CLIPTextConfig(**tiny_model._text_config(
        True, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)))
    pipe = StableDiffusionImg2ImgPipeline(
        vae=AutoencoderKL(**tiny_model._vae_config(True)), text_encoder=text, tokenizer=tokenizer, unet=unet,
        scheduler=PNDMScheduler.from_config(tiny_model.SD15_SCHEDULER_CONFIG), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(torch.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.comfy_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--local", choices=("same", "tiny", "none"), default="same",
                        help="the local engine side by side (default: the server checkpoint's architecture)")
    args = parser.parse_args(argv)
    run(args.server, args.model, args.size, args.steps, args.rounds,
        emit=lambda fig: print(console_line(fig), flush=True), say=lambda line: print(line, flush=True),
        local=args.local)
    return 0


if __name__ == "__main__":
    sys.exit(main())

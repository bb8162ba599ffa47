"""Find and load TAESD (a tiny distilled VAE decoder) for cheap, faithful step previews."""

from __future__ import annotations

import os
from pathlib import Path

TAESD_HUB_ID = "madebyollin/taesd"


def taesd_candidates(pipe) -> list[str]:
    """Where to look, best first: $SKETCHPAD_TAESD, a `taesd` folder beside the model, the Hub."""
    found = []
    if os.environ.get("SKETCHPAD_TAESD"):
        found.append(os.environ["SKETCHPAD_TAESD"])
    model_folder = Path(str(getattr(pipe, "name_or_path", "") or ""))
    if (model_folder / "taesd" / "config.json").is_file():
        found.append(str(model_folder / "taesd"))
    found.append(TAESD_HUB_ID)
    return found


def load_taesd(pipe, device, dtype):
    """(model, None) on success, else (None, a short reason)."""
    from diffusers import AutoencoderTiny

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    problem = "no TAESD weights found"
    for source in taesd_candidates(pipe):
        try:
            model = AutoencoderTiny.from_pretrained(
                source, dtype=dtype, use_safetensors=True, local_files_only=offline
            )
        except Exception as error:  # a missing or broken TAESD only costs preview quality
            problem = f"{source}: {' '.join(str(error).split())[:120]}"
            continue
        return model.to(device).eval(), None
    return None, problem

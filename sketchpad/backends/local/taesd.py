"""Find and load TAESD (a tiny distilled VAE decoder) for cheap, faithful step previews."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ...core.errors import SketchpadError
from ...core.families import Family
from ...core.hub import local_files_only
from ...core.sources import taesd_source

log = logging.getLogger(__name__)


def taesd_candidates(pipe, family: Family) -> list[str]:
    """Where to look, best first: $SKETCHPAD_TAESD, the family's folder beside the model (`taesd`,
    SDXL's `taesdxl`), the family's on the Hub (madebyollin/taesd, madebyollin/taesdxl)."""
    found = []
    if os.environ.get("SKETCHPAD_TAESD"):
        found.append(os.environ["SKETCHPAD_TAESD"])
    model_folder = Path(str(getattr(pipe, "name_or_path", "") or ""))
    if (model_folder / family.taesd_folder / "config.json").is_file():
        found.append(str(model_folder / family.taesd_folder))
    found.append(family.taesd_hub_id)
    return found


def load_taesd(pipe, family: Family, device, dtype):
    """(model, None) on success, else (None, a short reason). Not downloaded and no Hub: said at once."""
    from diffusers import AutoencoderTiny

    problem = "no TAESD weights found"
    for text in taesd_candidates(pipe, family):
        try:
            source = taesd_source(text)
            local = source.kind != "hub" or local_files_only(source)
            model = AutoencoderTiny.from_pretrained(
                source.location, dtype=dtype, use_safetensors=True, local_files_only=local
            )
        except SketchpadError as error:
            log.info("TAESD from %s: %s", text, error)
            problem = str(error)
            continue
        except Exception as error:  # a missing or broken TAESD only costs preview quality
            log.warning("loading TAESD from %s failed", text, exc_info=True)
            problem = f"{text}: {' '.join(str(error).split())[:120]}"
            continue
        return model.to(device).eval(), None
    return None, problem

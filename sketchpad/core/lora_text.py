"""LoRAs as a person types them in one line: `file_or_id[:weight], …` (the weight defaults to 1)."""

from __future__ import annotations

from .errors import SketchpadError
from .params import LoraSpec


def parse_loras(text: str) -> tuple[LoraSpec, ...]:
    """`a.safetensors:0.8, owner/name` -> LoraSpecs; an empty line is no LoRA."""
    return tuple(parse_lora(part.strip()) for part in text.split(",") if part.strip())


def format_loras(loras: tuple[LoraSpec, ...]) -> str:
    return ", ".join(f"{lora.source}:{lora.weight:g}" for lora in loras)


def parse_lora(text: str) -> LoraSpec:
    """One LoRA, `file_or_id[:weight]`, as the panel's line and the command line's --lora take it."""
    head, colon, tail = text.rpartition(":")
    if colon and "/" not in tail and "\\" not in tail:  # else a Windows drive's colon, not a weight
        try:
            weight = float(tail)
        except ValueError as error:
            raise SketchpadError(
                f"the LoRA {text!r} needs a number after its ':' (its weight, e.g. {head.strip() or 'name'}:0.8)"
            ) from error
        return LoraSpec(head.strip(), weight).validated()
    return LoraSpec(text).validated()

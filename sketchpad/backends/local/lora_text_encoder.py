"""A LoRA's text-encoder part merged by hand, where transformers cannot take it through peft.

The rule is peft's and kohya's: a layer's weight gains `weight * (alpha / rank) * up @ down`, alpha
being the file's `.alpha` for that layer and the rank where it gives none (diffusers' convention).
The keys are the ones `pipe.lora_state_dict` gives: kohya `lora_te_`/`lora_te1_` names come back as
`text_encoder.….to_q_lora.down.weight` or `….lora_linear_layer.down.weight`, diffusers files as
peft `….lora_A.weight`, and kohya alphas as `<down key>.alpha`. SDXL's second text encoder's part
(kohya `lora_te2_`) comes back under `text_encoder_2.` and is merged into that encoder the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ...core.errors import ModelError

_PEFT = re.compile(r"^(?P<module>.+)\.lora_(?P<half>[AB])\.weight$")
_DIFFUSERS = re.compile(r"^(?P<module>.+)\.(?:lora_linear_layer|lora)\.(?P<half>down|up)\.weight$")
_OLD_ATTENTION = re.compile(r"^(?P<module>.+)\.to_(?P<projection>q|k|v|out)_lora\.(?P<half>down|up)\.weight$")


@dataclass(frozen=True)
class TextEncoderPair:
    """One Linear layer's low-rank change: `scale * up @ down`, in float32 on the layer's device."""

    weight: torch.nn.Parameter
    down: torch.Tensor
    up: torch.Tensor
    scale: float


def _module_and_half(key: str, flattened: bool) -> tuple[str, str] | None:
    if flattened:  # recent transformers dropped CLIPTextModel's `text_model.`; A1111 files still say it
        key = key.removeprefix("text_model.")
    if match := _OLD_ATTENTION.match(key):
        return f"{match['module']}.{match['projection']}_proj", match["half"]
    if match := _PEFT.match(key):
        return match["module"], "down" if match["half"] == "A" else "up"
    if match := _DIFFUSERS.match(key):
        return match["module"], match["half"]
    return None


def text_encoder_pairs(text_encoders: dict, converted: dict, alphas: dict | None, name: str):
    """The layers of the model's text encoders (component name -> model, e.g. "text_encoder") that a
    converted LoRA changes, and the names in its text-encoder part that name no layer of this model
    (left out: e.g. a second encoder's part on SD 1.5). A pair whose shapes do not fit raises ModelError."""
    pairs, left_out = [], {}  # left out: layer names, in order, once each
    for key in converted:
        component, _, rest = key.partition(".")
        if component.startswith("text_encoder") and component not in text_encoders:
            layer = _module_and_half(rest, True)
            left_out[f"{component}.{layer[0]}" if layer else key] = None
    for component, text_encoder in text_encoders.items():
        found, missing = _pairs(text_encoder, component, converted, alphas, name)
        pairs += found
        left_out.update(dict.fromkeys(missing))
    return pairs, list(left_out)


def _pairs(text_encoder, component: str, converted: dict, alphas: dict | None, name: str):
    prefix, flattened = component + ".", not hasattr(text_encoder, "text_model")
    # a layer left out is named as the person's tools name it: SD's one encoder's layers alone
    named = "" if component == "text_encoder" else prefix
    halves: dict[str, dict[str, torch.Tensor]] = {}
    left_out: dict[str, None] = {}
    for key, tensor in converted.items():
        found = _module_and_half(key.removeprefix(prefix), flattened) if key.startswith(prefix) else None
        if found is not None:
            halves.setdefault(found[0], {})[found[1]] = tensor
        elif key.startswith(prefix):
            left_out[key] = None
    module_alphas = {}
    for key, alpha in (alphas or {}).items():
        found = _module_and_half(key.removeprefix(prefix).removesuffix(".alpha"), flattened)
        if key.startswith(prefix) and found:
            module_alphas[found[0]] = float(alpha)
    layers = dict(text_encoder.named_modules())
    pairs = []
    for module, parts in halves.items():
        layer = layers.get(module)
        if not isinstance(layer, torch.nn.Linear) or parts.keys() != {"down", "up"}:
            left_out[named + module] = None
            continue
        down, up, weight = parts["down"], parts["up"], layer.weight
        if down.ndim != 2 or up.ndim != 2 or down.shape[0] != up.shape[1] or (up.shape[0], down.shape[1]) != weight.shape:
            raise ModelError(
                f"{name} does not fit this model's text encoder ({module} is {tuple(weight.shape)}, "
                f"the LoRA gives {tuple(up.shape)} x {tuple(down.shape)})"
            )
        rank = down.shape[0]
        as_float = dict(device=weight.device, dtype=torch.float32)
        pairs.append(TextEncoderPair(weight, down.to(**as_float), up.to(**as_float), module_alphas.get(module, rank) / rank))
    return pairs, list(left_out)


def fuse_text_encoder_pairs(weighted_pairs, originals: dict) -> None:
    """Set every layer the pairs touch to its original weight plus the sum of their changes, keeping the
    original in `originals` (id(param) -> (param, original)) so that unfusing can copy it back."""
    changes: dict[int, tuple[torch.nn.Parameter, torch.Tensor]] = {}
    for weight, pair in weighted_pairs:
        delta = (weight * pair.scale) * (pair.up @ pair.down)
        param, total = changes.get(id(pair.weight), (pair.weight, 0))
        changes[id(pair.weight)] = (param, total + delta)
    with torch.no_grad():
        for key, (param, total) in changes.items():
            if key not in originals:
                originals[key] = (param, param.detach().clone())
            # from the kept original, in float32: the same sum whatever was fused before
            param.copy_(originals[key][1].float() + total)

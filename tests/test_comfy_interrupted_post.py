"""Ctrl+C that lands while our prompt is being posted: the server may already hold it, so it is taken off.

In a sweep prompts are posted one right after another, so Ctrl+C often arrives just then.
"""

import pytest
from PIL import Image

from sketchpad.backends.comfy.client import ComfyBackend
from sketchpad.core.params import GenerationParams
from tests.comfy_standin import StandIn

MODEL = "standin-sd15.safetensors"


class CtrlCOnceThePromptIsPosted:
    """A job observer standing in for the person: Ctrl+C right after the server accepted the prompt."""

    def job_event(self, event: str, at: float, **details) -> None:
        if event == "posted":
            raise KeyboardInterrupt


def test_ctrl_c_just_after_posting_leaves_nothing_of_ours_on_the_server():
    with StandIn([MODEL], step_seconds=0.1) as server:
        backend = ComfyBackend(server.url, MODEL, observer=CtrlCOnceThePromptIsPosted())
        try:
            with pytest.raises(KeyboardInterrupt):
                backend.generate(GenerationParams("a cat", strength=0.5, steps=20, seed=1), Image.new("RGB", (64, 64)))
            assert len(server.prompts) == 1  # it did reach the server
            assert server.queue_ids() == []
        finally:
            backend.close()

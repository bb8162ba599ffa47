"""The generation engine: torch, diffusers and PIL only, never Qt.

Submodules are imported on demand so that light users (params, errors) do not pay for torch.
"""

import os

# The libraries' import-time chatter (e.g. "requires torchvision") would bury our own progress lines.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

"""The generation engine: torch, diffusers and PIL only, never Qt.

Submodules are imported on demand so that light users (params, errors) do not pay for torch.
"""

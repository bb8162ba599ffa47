"""Where pictures are made: `local` (torch and diffusers on this computer) and, beside it, a
ComfyUI server client. Both take a request and a sketch and give a preview per step and a result."""

"""The mask a run carries: the canvas's mask with the settings the person chose for it.

The mask's pixels belong to the drawing (the canvas); how a run uses them (the feather's blur,
the area worked on, the padding around it) are settings like the request's, kept here: saved with
the window's settings and its recovery slot, restored from a PNG or a history entry that carries a
mask. A mask with nothing painted means no mask.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

import numpy as np
from PySide6.QtCore import QObject, QSettings, Signal

from ..core.errors import SketchpadError
from ..core.params import DEFAULT_MASK_BLUR, DEFAULT_MASK_PADDING, GenerationParams, MaskSpec
from .canvas import SketchCanvas

log = logging.getLogger(__name__)
SETTINGS_KEY = "mask_options"


@dataclass(frozen=True)
class MaskOptions:
    blur: int = DEFAULT_MASK_BLUR
    area: str = "auto"
    padding: int = DEFAULT_MASK_PADDING

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(values) -> MaskOptions | None:
        """The options in `values`, or None when they are missing or no longer valid."""
        try:
            options = MaskOptions(**{name: values[name] for name in ("blur", "area", "padding")})
            MaskSpec(b"\xff", (1, 1), options.blur, options.area, options.padding).validated()
        except (KeyError, TypeError, SketchpadError) as error:
            log.warning("the remembered mask settings are not usable, defaults apply: %s", error)
            return None
        return options


def recovered_mask(values: np.ndarray | None, options) -> MaskSpec | None:
    """The spec of a mask kept apart from a canvas (values: uint8, height x width; None: nothing masked),
    with its options as `MaskOptions.to_dict()` wrote them (unusable ones: the defaults)."""
    if values is None or not values.any():
        return None
    height, width = values.shape
    chosen = (MaskOptions.from_dict(options) if options is not None else None) or MaskOptions()
    return MaskSpec(np.ascontiguousarray(values, np.uint8).tobytes(), (width, height), **chosen.to_dict())


class CanvasMask(QObject):
    """`spec()`: the MaskSpec a run carries (None while nothing is masked); `changed` whenever it may differ."""

    changed = Signal()  # the mask or its options
    options_changed = Signal(object)  # MaskOptions

    def __init__(self, canvas: SketchCanvas, parent: QObject | None = None):
        super().__init__(parent)
        self.canvas = canvas
        self._options = MaskOptions()
        self._spec: tuple[bytes, MaskOptions, MaskSpec] | None = None  # the last spec made, for its digest
        canvas.mask_changed.connect(self.changed)

    @property
    def options(self) -> MaskOptions:
        return self._options

    def set_options(self, options: MaskOptions) -> None:
        if options != self._options:
            self._options = options
            self.options_changed.emit(options)
            self.changed.emit()

    def spec(self) -> MaskSpec | None:
        """Made once per mask and options: a spec hashes its pixels, and a request is keyed often."""
        pixels = self.canvas.mask_bytes()
        if pixels is None:
            return None
        if self._spec is None or self._spec[0] is not pixels or self._spec[1] != self._options:
            size = self.canvas.canvas_size()
            spec = MaskSpec(pixels, (size.width(), size.height()), **self._options.to_dict())
            self._spec = (pixels, self._options, spec)
        return self._spec[2]

    def take_settings_of(self, params: GenerationParams) -> None:
        """A request loaded from outside (a PNG, the history) that carries a mask brings its settings."""
        if params.mask is not None:
            self.set_options(MaskOptions(params.mask.blur, params.mask.area, params.mask.padding))

    # ---- remembered --------------------------------------------------------------------------
    def save(self, settings: QSettings) -> None:
        settings.setValue(SETTINGS_KEY, json.dumps(self._options.to_dict()))

    def restore(self, settings: QSettings) -> None:
        text = settings.value(SETTINGS_KEY)
        if text:
            try:
                values = json.loads(str(text))
            except ValueError:
                values = None
            self.restore_dict(values)

    def restore_dict(self, values) -> None:
        """Options as `options.to_dict()` wrote them (a recovery slot's); anything unusable leaves them."""
        options = MaskOptions.from_dict(values) if values is not None else None
        if options is not None:
            self.set_options(options)

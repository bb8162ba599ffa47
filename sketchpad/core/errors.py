"""The one exception type whose message is shown to the person as it is."""


class SketchpadError(Exception):
    """A problem the user can fix. The message is one or two lines: what is wrong, and how to fix it."""

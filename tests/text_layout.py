"""How a label's text is really laid out, for tests that must not trust the markup."""

from PySide6.QtGui import QTextDocument


def command_lines(label, width: int) -> list[tuple[str, int]]:
    """(command, lines it spans) for each monospace run of a label's text laid out `width` px wide."""
    document = QTextDocument()
    document.setDefaultFont(label.font())
    document.setHtml(label.text())
    document.setTextWidth(width)
    document.size()  # lays the document out
    found, block = [], document.begin()
    while block.isValid():
        layout, it = block.layout(), block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if "monospace" in (fragment.charFormat().fontFamilies() or []):
                start = fragment.position() - block.position()
                end = start + fragment.length()
                lines = sum(1 for n in range(layout.lineCount())
                            if layout.lineAt(n).textStart() < end
                            and layout.lineAt(n).textStart() + layout.lineAt(n).textLength() > start)
                found.append((fragment.text(), lines))
            it += 1
        block = block.next()
    return found

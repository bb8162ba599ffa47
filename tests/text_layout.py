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


def _text_width(edit) -> int:
    """The width a line edit draws its text (or hint) in."""
    from PySide6.QtWidgets import QStyle, QStyleOptionFrame

    option = QStyleOptionFrame()
    edit.initStyleOption(option)
    area = edit.style().subElementRect(QStyle.SubElement.SE_LineEditContents, option, edit)
    return area.marginsRemoved(edit.textMargins()).adjusted(2, 0, -2, 0).width()  # QLineEdit's own 2 px a side


def placeholder_is_whole(edit) -> bool:
    """The line edit's hint fits its text area as QLineEdit paints it (elided to that width)."""
    from PySide6.QtCore import Qt

    text = edit.placeholderText()
    return edit.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, _text_width(edit)) == text


def text_is_whole(edit) -> bool:
    """The line edit's text fits its text area: none of it scrolled out of view."""
    return edit.isVisible() and edit.fontMetrics().horizontalAdvance(edit.text()) <= _text_width(edit)


def combo_text_is_whole(combo) -> bool:
    """The combo box's current text fits the field it is drawn in."""
    from PySide6.QtWidgets import QStyle, QStyleOptionComboBox

    option = QStyleOptionComboBox()
    combo.initStyleOption(option)
    field = combo.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                         QStyle.SubControl.SC_ComboBoxEditField, combo)
    return combo.fontMetrics().horizontalAdvance(combo.currentText()) <= field.width() - 2


def label_is_whole(label) -> bool:
    """A plain label shows all of its text only when it is at least as wide as that text needs."""
    return label.isVisible() and label.width() >= label.sizeHint().width()

"""What a rendered AppTest page shows a student, as strings: one walker for every test that reads pages."""

from __future__ import annotations

#: elements whose value is text
TEXT_KINDS = ("Markdown", "Caption", "Title", "Header", "Subheader", "Text", "Info", "Warning", "Error",
              "Success", "Exception")
#: attributes of the other elements (widgets) that a student reads
WIDGET_ATTRS = ("label", "options", "help", "placeholder", "captions")


def visible_strings(at, kinds=TEXT_KINDS, attrs=WIDGET_ATTRS) -> list[str]:
    """Every string the rendered page shows a student (texts, labels, options, captions, help), the
    language switch left out (it names both languages in their own words)."""
    out: list[str] = []

    def walk(node):
        if getattr(node, "key", None) == "lang":
            return
        for attr in ["value"] if type(node).__name__ in kinds else attrs:
            try:
                v = getattr(node, attr)
            except Exception:  # noqa: BLE001 - not every element has every attribute
                continue
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, (list, tuple)):
                out.extend(x for x in v if isinstance(x, str))
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            for child in children.values():
                walk(child)

    walk(at._tree)
    return out

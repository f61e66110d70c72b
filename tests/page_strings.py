"""What a rendered AppTest page shows a student, as strings: one walker for every test that reads pages."""

from __future__ import annotations

import re

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


# ---- 中文 pages: no English ------------------------------------------------------------------------

#: Latin words a Chinese page may show as they are: names of things, units, formats, the lecture's terms
ALLOWED_LATIN = {
    "vgg", "vgg19", "cpu", "cuda", "gram", "imagenet", "caffe", "png", "jpeg", "jpg", "json", "bfgs", "adam",
    "bfloat16", "float32", "simonyan", "zisserman", "torchvision", "teachkit", "content", "style", "tv", "auto", "avx2",
}
# formulas, code, icons, style sheets, and names in quotes (a teacher's folder, an uploaded file)
_SKIP = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`|:material/\w+:|<style>.*?</style>|“[^”]*”", re.S)
_LAYER = re.compile(r"\b(relu|conv|pool)\d(_\d)?\b")


def english_words(strings: list[str]) -> list[str]:
    """The Latin words (three letters or more) in ``strings`` that a Chinese page should not show:
    formulas, code, icons, quoted names, layer names and :data:`ALLOWED_LATIN` left out."""
    found = set()
    for s in strings:
        s = _LAYER.sub(" ", _SKIP.sub(" ", s))
        found.update(w for w in re.findall(r"[A-Za-z][A-Za-z0-9]{2,}", s) if w.lower() not in ALLOWED_LATIN)
    return sorted(found)

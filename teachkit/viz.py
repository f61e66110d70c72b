"""Matplotlib figures shared by the CLI, the Streamlit app and notebooks.

Every function returns a ``matplotlib.figure.Figure`` (never calls ``plt.show``), built with the
object-oriented API so it is safe from several threads; save it with :func:`save_figure`.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure


def save_figure(fig: Figure, path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (png/pdf/svg/jpg), checking the path first; returns the Path."""
    from .images import check_output_path

    path = check_output_path(path) if Path(path).suffix.lower() in (".png", ".jpg", ".jpeg") else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


# ---- cost curves (transfer history) -----------------------------------------------------------


# ---- patches: units, layers ---------------------------------------------------------------------

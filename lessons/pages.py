"""The one list of lesson pages: the app's navigation, the tests and the benchmarks all read it.

Each page: its number (the lecture's order), its file in this folder, the last part of its address
(``/layers``) and its icon.  Titles come from the interface strings (``title_<n>``) in each language.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Page:
    number: int
    file: str  # inside lessons/ (teachkit.lessons in an installed wheel)
    slug: str  # the page's address: http://host:port/<slug>
    icon: str

    @property
    def path(self) -> Path:
        """The page's script, wherever the package is (a checkout or an installed wheel)."""
        return HERE / self.file


PAGES: tuple[Page, ...] = (
    Page(1, "1_layers.py", "layers", ":material/visibility:"),
    Page(2, "2_style_transfer.py", "style-transfer", ":material/palette:"),
    Page(3, "3_cost.py", "cost", ":material/show_chart:"),
    Page(4, "4_content.py", "content-cost", ":material/image_search:"),
    Page(5, "5_style.py", "style-cost", ":material/grid_on:"),
    Page(6, "6_run.py", "run", ":material/rocket_launch:"),
)


def page(number: int) -> Page:
    return PAGES[number - 1]

"""Students do it themselves: checks of their own cost functions (:mod:`.checks`), the real engine run with
their functions (:mod:`.engine`: :func:`transfer_with`), and the teacher's check of submitted files
(:mod:`.grade`: ``teachkit exercises check``).  Student code never runs on the app's server."""

from .checks import (CHECKS, CONSTANTS, LAYOUTS, CheckResult, Item, check_content_cost, check_gram_matrix,
                     check_layer_style_cost, check_receptive_field, check_style_cost, check_total_cost)

__all__ = ["CHECKS", "CONSTANTS", "LAYOUTS", "CheckResult", "Item", "check_content_cost", "check_gram_matrix",
           "check_layer_style_cost", "check_receptive_field", "check_style_cost", "check_total_cost",
           "transfer_with", "StudentRun"]


def __getattr__(name):  # the engine (and its backbone) only when a run is asked for
    if name in ("transfer_with", "StudentRun"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(name)

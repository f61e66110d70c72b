"""Students do it themselves: checks of their own cost functions that explain, in English and Chinese,
the real engine run with their functions, and the teacher's check of submitted files.

* :mod:`teachkit.exercises.checks` -- ``check_content_cost``, ``check_gram_matrix``,
  ``check_layer_style_cost``, ``check_style_cost``, ``check_total_cost``, ``check_receptive_field``;
* :mod:`teachkit.exercises.engine` -- :func:`transfer_with`: teachkit's one optimisation loop with the
  student's cost functions in place of teachkit's, beside teachkit's own run from the same start;
* :mod:`teachkit.exercises.grade` -- ``teachkit exercises check FILE ...`` (the teacher's table).

Student code never runs on the app's server: these run in the student's own notebook, or on the
teacher's machine.
"""

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

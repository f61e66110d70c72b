"""The step-by-step and layer-by-layer demos of lessons 3 and 5 (configurations of teachkit's one loop)."""

from __future__ import annotations

import streamlit as st

from teachkit.lessons.jobs import LiveView, demo_limit, yield_to_quick
from teachkit.lessons.together import shared_run
from teachkit.lessons.resources import backbone, picture


STEP_OPTIMIZER = "adam"  #: lesson 3's, named on the page: Adam on the plain pixels, the lecture's J without TV


class StepDemo:
    """Gradient descent one step at a time (lesson 3), kept in ``st.session_state``: a
    :class:`teachkit.transfer.StyleTransfer` made at the first step, run by :func:`teachkit.transfer.run_steps`;
    per step the engine's terms, a chart point and an image.  New alpha or beta go on from the current image."""

    def __init__(self, size: int, content: str, style: str):
        from teachkit.transfer import initial_image

        self.size, self.content_name, self.style_name = size, content, style
        self.alpha = self.beta = None
        self.start_image = initial_image(picture(content, size), self.config())
        self.reset()

    @classmethod
    def get(cls, key: str, size: int, content: str | None = None, style: str | None = None) -> "StepDemo":
        from teachkit.samples import DEFAULT_CONTENT, DEFAULT_STYLE

        content, style = content or DEFAULT_CONTENT, style or DEFAULT_STYLE
        demo = st.session_state.get(key)
        if demo is None or (demo.size, demo.content_name, demo.style_name) != (size, content, style):
            demo = st.session_state[key] = cls(size, content, style)
        return demo

    def reset(self) -> None:
        self.obj = None
        self.alpha = self.beta = None
        self.records: list[dict] = []  # the engine's terms per step (unweighted)
        self.points: list[dict] = []  # the chart's: alpha J_content, beta J_style, J per step
        self.snapshots: list = [self.start_image]
        self.running = False
        self.run_until = 0
        self.weights_changed = False

    def config(self):
        """Exactly the lecture's J(G) = alpha J_content + beta J_style, as shown on the page, minimised
        by the optimiser the page names, on the plain pixels, from white noise, at one scale."""
        from teachkit.transfer import TransferConfig

        return TransferConfig(size=self.size, scales=(self.size,), alpha=self.alpha, beta=self.beta, tv_weight=0.0,
                              seed=0, init="noise", normalization="lecture", optimizer=STEP_OPTIMIZER, pyramid=1,
                              preview_every=0)

    def _new(self, init):
        from teachkit.images import to_tensor
        from teachkit.transfer import StyleTransfer

        config = self.config()
        return StyleTransfer(to_tensor(picture(self.content_name, self.size)),
                             to_tensor(picture(self.style_name, self.size)), config, init=init, backbone=backbone())

    def set_weights(self, alpha: float, beta: float) -> None:
        self.weights_changed = False
        if (alpha, beta) != (self.alpha, self.beta):
            self.alpha, self.beta = alpha, beta
            if self.obj is not None:  # go on from the current image with the new weights
                self.obj = self._new(self.obj.optimised())
                self.weights_changed = self.steps > 0

    @property
    def steps(self) -> int:
        return len(self.records)

    @property
    def can_step(self) -> bool:
        return bool(self.alpha or self.beta)

    def step(self, n: int = 1) -> None:
        """``n`` steps at once."""
        self.run(n)

    def run(self, n: int, *, time_limit: float | None = None, on_step=None) -> str | None:
        """Up to ``n`` steps on the engine's loop (:func:`teachkit.transfer.run_steps`), each kept and shown
        (``on_step()`` after each), ending within ``time_limit`` s of now, set-up included: fewer steps
        when they do not fit.  Returns why it ended early: None (all, or all that fit), 'time_limit'."""
        import time

        if not self.can_step or n <= 0:
            return None
        from teachkit.costs import weighted_record
        from teachkit.transfer import run_steps

        deadline = None if time_limit is None else time.perf_counter() + float(time_limit)
        if self.obj is None:
            from teachkit.images import to_tensor

            self.obj = self._new(to_tensor(self.start_image))

        def keep(p):
            rec = {"step": self.steps + 1, "alpha": p.weights["alpha"], "beta": p.weights["beta"], **p.values}
            self.records.append(rec)
            self.points.append(weighted_record(rec, p.weights))
            if len(self.snapshots) < 400:
                self.snapshots.append(p.image)
            else:  # keep memory bounded: replace the last one
                self.snapshots[-1] = p.image
            st.session_state["last_G"] = p.image  # lesson 5 can compare its Gram matrices with S
            if on_step is not None:  # a run of many steps (not a click on "Step"): a click goes first
                yield_to_quick()
                on_step()

        return run_steps(self.obj, n, callback=keep, task="lesson3", preview_every=1, deadline=deadline,
                         fit=None if deadline is None else 1.0)[1]

    def snapshot(self, i: int):
        return self.snapshots[max(0, min(i, len(self.snapshots) - 1))]

    def terms(self) -> dict:
        """The cost terms of the last step (none before the first step: nothing evaluated yet)."""
        return self.records[-1] if self.records else {}


def texture_demo(style: str, size: int, steps: int, layers: list[str], slot, time_limit: float | None = None):
    """Lesson 5: a texture from white noise per set of layers up to each one, each in a column of ``slot``
    with its own share ``time_limit`` (a slow one never takes the others with it).  Returns lists
    ``{"images", "labels", "steps", "seconds", "stopped"}``."""
    from teachkit.reconstruct import synthesize_texture

    cols = slot.container().columns(len(layers))
    views = {}
    for i, col in enumerate(cols):
        with col:
            views[i] = LiveView(f"lesson5_{i}", image_width="stretch", show_values=())

    def work(cb):
        share = time_limit
        if share is not None:  # the whole demo is cut when others wait behind it (jobs.demo_limit)
            share = demo_limit(share * len(layers)) / len(layers)
        return [synthesize_texture(backbone(), picture(style, size), list(layers[: i + 1]), None, steps,
                                   callback=cb[i], image_every=5, time_limit=share) for i in range(len(layers))]

    # pressed by several students at once: computed once, watched by the others (lessons/together.py)
    results = shared_run(("lesson5_textures", style, size, steps, tuple(layers), backbone().name, time_limit),
                         views, work)
    for view in views.values():
        view.done()
    return {"images": [r.image for r in results], "labels": [r.layers[-1] for r in results],
            "steps": [r.steps for r in results], "seconds": [r.seconds for r in results],
            "stopped": [r.stopped for r in results]}

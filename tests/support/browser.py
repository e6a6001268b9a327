"""Helpers of the dashboard's browser tests: read a page's Bokeh models, tap its glyphs."""

from __future__ import annotations

import time

_FIND = "const v = [...Bokeh.index.all_views()].find(v => v.model.name === arguments[0]);"


def model(driver, name: str, attribute: str):
    """``attribute`` of the page's Bokeh model called `name` (``data`` for a source)."""
    return driver.execute_script(
        "if (typeof Bokeh === 'undefined' || !(Bokeh.documents ?? []).length) return null;"
        "const m = Bokeh.documents[0].get_model_by_name(arguments[0]);"
        "if (m == null) return null; const a = m[arguments[1]];"
        "return a instanceof Map ? Object.fromEntries(a) : a;",
        name,
        attribute,
    )


def source_data(driver, name: str) -> dict:
    data = model(driver, name, "data") or {}
    return {k: list(v) for k, v in data.items()}


def tap(driver, figure: str, x: float, y: float) -> None:
    """Click the point (x, y), in data units, of the figure called `figure`."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    left, top = driver.execute_script(
        _FIND + "const r = v.canvas_view.el.getBoundingClientRect();"
        "return [r.left + v.frame.x_scale.compute(arguments[1]),"
        " r.top + v.frame.y_scale.compute(arguments[2])];",
        figure,
        x,
        y,
    )
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(left), int(top)).click()
    actions.perform()


def wait_for(predicate, timeout_s: float = 20.0, what: str = "condition"):
    """Poll `predicate` until it returns something true; returns it."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout_s} s")
        time.sleep(0.1)

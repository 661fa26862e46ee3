"""What a reader needs from a figure, checked on its matplotlib objects (not on pixels):
labelled axes, a legend entry for every series, legends inside the saved canvas, a colourbar beside heatmaps, no line hidden
under another, every point inside the x-limits with a margin, log-spaced steps on a log axis,
the transition marked."""

from __future__ import annotations

import numpy as np
from matplotlib.collections import QuadMesh
from matplotlib.colors import to_rgba
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D


def is_colorbar(axis) -> bool:
    return hasattr(axis, "_colorbar")


def data_lines(axis) -> list[Line2D]:
    """Lines that draw data: visible, at least two points, not a vertical or horizontal
    marker line (axvline / axhline span the axes, their x or y data is constant)."""
    lines = []
    for line in axis.get_lines():
        x, y = (np.asarray(v, dtype=float) for v in line.get_data())
        if not line.get_visible() or len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
            continue
        lines.append(line)
    return lines


def heatmaps(axis) -> list:
    return [a for a in axis.get_children() if isinstance(a, (QuadMesh, AxesImage))]


def legend_colours(figure) -> list[tuple]:
    """The colours of every legend entry in the figure (axes legends and figure legends)."""
    legends = [a.get_legend() for a in figure.axes if a.get_legend() is not None] + list(figure.legends)
    colours = []
    for legend in legends:
        for handle in legend.legend_handles:
            for getter in ("get_color", "get_facecolor"):
                if hasattr(handle, getter):
                    value = getattr(handle, getter)()
                    try:
                        colours.append(to_rgba(value))
                    except (ValueError, TypeError):  # an array of colours
                        colours += [to_rgba(c) for c in np.atleast_2d(value)]
                    break
    return colours


def colorbar_colours(figure) -> list[np.ndarray]:
    """Every colourbar's colours (its colormap sampled at 256 points): lines coloured by a
    colourbar (one line per checkpoint, say) are named by it instead of a legend."""
    return [bar._colorbar.cmap(np.linspace(0, 1, 256)) for bar in figure.axes if is_colorbar(bar)]


def spread_over_decades(xs: np.ndarray) -> bool:
    """Steps spread over decades (0, 1, 2, 4, …, 200): the positive values span two decades and
    at least 40 % of them lie below a tenth of the largest (an evenly spaced axis has ~10 %)."""
    positive = np.unique(xs[xs > 0])
    return (len(positive) >= 5 and positive[-1] / positive[0] >= 100
            and np.mean(positive < positive[-1] / 10) >= 0.4)


def labelled_nearby(axis, axes, getter: str, position: str) -> bool:
    """An axes of a grid may leave its label to a neighbour that shares that axis with it
    (sharex / sharey): the bottom one of its column (x) or the first one of its row (y); a
    panel with an axis of its own must label it."""
    box = axis.get_position()
    for other in axes:
        other_box = other.get_position()
        same = (abs(other_box.x0 - box.x0) < 1e-3) if position == "column" else (abs(other_box.y0 - box.y0) < 1e-3)
        shared = (other.get_shared_x_axes() if position == "column" else other.get_shared_y_axes())
        if other is not axis and same and getattr(other, getter)() and shared.joined(axis, other):
            return True
    return False


def check_figure(figure, transition_step: float | None = None) -> list[str]:
    """The problems a reader would meet in ``figure`` (an empty list: none)."""
    problems = []
    axes = [a for a in figure.axes if not is_colorbar(a) and a.get_visible()]
    has_colorbar = any(is_colorbar(a) for a in figure.axes)
    sup_x = getattr(figure, "_supxlabel", None)
    sup_y = getattr(figure, "_supylabel", None)
    legend_rgba = legend_colours(figure)
    colourbar_rgba = colorbar_colours(figure)
    for index, axis in enumerate(axes):
        lines, maps = data_lines(axis), heatmaps(axis)
        if not lines and not maps and not axis.collections and not axis.patches:
            continue
        name = f"axes {index} ({axis.get_title() or 'untitled'})"
        if not (axis.get_xlabel() or (sup_x is not None and sup_x.get_text())
                or labelled_nearby(axis, axes, "get_xlabel", "column")):
            problems.append(f"{name}: no x-axis label")
        if not (axis.get_ylabel() or (sup_y is not None and sup_y.get_text())
                or labelled_nearby(axis, axes, "get_ylabel", "row")):
            problems.append(f"{name}: no y-axis label")
        if maps and not has_colorbar:
            problems.append(f"{name}: a heatmap without a colourbar")
        mapped = [c for c in axis.collections if c not in maps and c.get_array() is not None
                  and np.unique(np.asarray(c.get_array(), float)).size > 1]
        if mapped and not has_colorbar:  # points coloured through a colormap (by step, say)
            problems.append(f"{name}: points coloured by a value without a colourbar")
        colours = {to_rgba(line.get_color()) for line in lines}
        if len(colours) > 1:
            missing = [c for c in colours if not any(np.allclose(c, l) for l in legend_rgba)
                       and not any(np.abs(table - np.asarray(c)).max(axis=1).min() < 2e-3
                                   for table in colourbar_rgba)]
            if missing:
                problems.append(f"{name}: {len(missing)} of {len(colours)} line colours have no legend entry")
        for i, a in enumerate(lines):
            for b in lines[i + 1:]:
                same = (len(a.get_xdata()) == len(b.get_xdata())
                        and np.allclose(np.asarray(a.get_xydata(), float), np.asarray(b.get_xydata(), float)))
                if same and a.get_linestyle() == b.get_linestyle() and a.get_marker() == b.get_marker():
                    problems.append(f"{name}: two lines ({a.get_label()}, {b.get_label()}) draw the same "
                                    f"points in the same style: one hides the other")
        if lines:
            low, high = axis.get_xlim()
            xs = np.concatenate([np.asarray(line.get_xdata(), float) for line in lines])
            xs = xs[np.isfinite(xs)]
            if xs.min() <= low or xs.max() >= high:
                problems.append(f"{name}: points at the x-limits' edge ({xs.min()}, {xs.max()} in "
                                f"[{low}, {high}])")
            if "step" in axis.get_xlabel().lower() and spread_over_decades(xs) \
                    and axis.get_xscale() == "linear":
                problems.append(f"{name}: log-spaced steps on a linear x-axis (the plateau's "
                                f"checkpoints are squeezed into its left edge)")
        if transition_step is not None and (lines or axis.collections) \
                and "step" in axis.get_xlabel().lower():  # a panel drawn against the step
            marks = [line for line in axis.get_lines() if len(line.get_xdata())  # not a legend proxy
                     and np.all(np.asarray(line.get_xdata(), float) == float(transition_step))]
            if not marks:
                problems.append(f"{name}: the transition (step {transition_step}) is not marked")
    renderer = figure.canvas.get_renderer()
    canvas = figure.bbox
    legends = [a.get_legend() for a in figure.axes if a.get_legend() is not None] + list(figure.legends)
    for legend in legends:
        box = legend.get_window_extent(renderer)
        if box.x0 < canvas.x0 - 1 or box.y0 < canvas.y0 - 1 or box.x1 > canvas.x1 + 1 or box.y1 > canvas.y1 + 1:
            problems.append(f"a legend lies (partly) outside the figure: {box.bounds} vs {canvas.bounds}")
    width = sum(a.get_position().width for a in axes if a.get_position().y0 == min(
        b.get_position().y0 for b in axes))
    if axes and width < 0.4:
        problems.append(f"the axes fill only {width:.0%} of the figure's width")
    return problems

"""The inline-SVG charts: numeric x labels, escaping, gaps and empty input."""

from __future__ import annotations

from shoploop.evaluation.svgplot import bar_chart, line_chart, table


def test_line_chart_accepts_numeric_x_labels():
    svg = line_chart([100, 200, 300], {"naive": [0.1, 0.2, 0.3]}, title="NDCG")
    assert svg.startswith("<svg")
    assert ">100</text>" in svg and ">300</text>" in svg
    assert svg.count("<path ") == 1


def test_line_chart_escapes_labels_and_titles():
    svg = line_chart(["a<b"], {"x&y": [1.0]}, title='"t"')
    assert "a&lt;b" in svg and "x&amp;y" in svg and "&quot;t&quot;" in svg
    assert "a<b" not in svg


def test_line_chart_without_values_is_an_empty_chart():
    svg = line_chart([1, 2], {"s": [None, float("nan")]}, title="nothing")
    assert svg.startswith("<svg") and "<path " not in svg


def test_bar_chart_and_table_render():
    assert bar_chart(["a", "b"], [1.0, -0.5], title="bars").startswith("<svg")
    html = table(["k", "v"], [["x", 0.5], ["y", None]])
    assert "<table" in html and "–" in html

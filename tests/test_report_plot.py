"""report.png (w2s_run/report/plot.py): everything drawn is named, nothing named is
missing, and nothing is cut off."""
import pytest

pytest.importorskip("matplotlib")

from factories import scripted_report  # noqa: E402
from w2s_run.report.plot import chance_accuracy, draw_report, plot_report  # noqa: E402


def _inside(fig, artist):
    fig.canvas.draw()
    box, page = artist.get_window_extent(), fig.bbox
    return box.x0 >= page.x0 and box.x1 <= page.x1 and box.y0 >= page.y0 and box.y1 <= page.y1


@pytest.mark.parametrize("name", ["r", "a-run-with-a-rather-long-name-of-its-own-2024-replicate"])
def test_title_legend_lines_and_labels(name, tmp_path):
    import matplotlib.pyplot as plt
    report = scripted_report(name)
    fig = draw_report(report)
    ax = fig.axes[0]
    try:
        assert _inside(fig, ax.title)  # not clipped
        (legend,) = fig.legends
        assert _inside(fig, legend)
        labels = [t.get_text() for t in legend.get_texts()]
        chance = chance_accuracy(report)
        gold = report.per_sample.gold
        assert chance == max(sum(gold), len(gold) - sum(gold)) / len(gold)
        # every horizontal line drawn is in the legend, with its value
        assert f"reference weak labeller (weak): {report.weak_accuracy:.2f}" in labels
        assert f"strong ceiling: {report.ceiling_accuracy:.2f}" in labels
        assert f"chance (majority label): {chance:.2f}" in labels
        drawn = sorted(round(line.get_ydata()[0], 6) for line in ax.get_lines() if line.get_gid() == "level")
        assert drawn == sorted(round(y, 6) for y in (report.weak_accuracy, report.ceiling_accuracy, chance))
        # the y-label names what the axis shows; the PGR numbers have their own entry iff drawn
        assert ax.get_ylabel() == "test accuracy"
        pgr_texts = [t for t in ax.texts if t.get_text().endswith("%")]
        assert bool(pgr_texts) == ("student's PGR, at the bar foot" in labels)
        assert {"weak labeller", "W2S student (xent)", "strong ceiling"} <= set(labels)
    finally:
        plt.close(fig)
    out = plot_report(report, tmp_path / "report.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""Figures are PNGs written without a display."""

from galaxy_common.figures import pyplot, save_figure


def test_a_figure_becomes_a_png_and_is_closed(tmp_path):
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "fig.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.get_fignums()  # closed: a long report does not pile figures up in memory

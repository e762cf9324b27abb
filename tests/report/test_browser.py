"""The report as a person sees it: opened from disk in headless Chromium, with no network.

Skipped, with the reason, where Chromium is not installed (`.ci/run` installs it). The
screenshot is kept in tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from droptune.report import write_report

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PAGE_FLAGS = (
    "--window-size=1400,3000",
    "--virtual-time-budget=30000",
    # No network: the page must draw from what it carries.
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)


def test_the_report_renders_its_plots_offline(study, chromium, tmp_path):
    page = write_report(study, tmp_path / "report.html").resolve()
    dom = chromium.run(tmp_path, *PAGE_FLAGS, "--dump-dom", page.as_uri())
    # plotly.js ran: each figure's <div> now holds the SVG it drew, titles and axes as text.
    for key in ("parallel", "gap", "importance", "history", "intermediate"):
        drawn = re.search(rf'<div id="toy-{key}"[^>]*class="[^"]*js-plotly-plot', dom)
        assert drawn, f"plot {key} was not drawn"
    assert dom.count('class="main-svg"') >= 10  # two SVG layers per drawn figure
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))
    assert "Overfitting gap per epoch: 3 of 12 trials overfit" in text
    assert "rate: dense" in text and "for the overfit gap" in text


def test_the_report_screenshot_is_a_rendered_page(study, chromium, tmp_path):
    page = write_report(study, tmp_path / "report.html").resolve()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    chromium.run(tmp_path, *PAGE_FLAGS, f"--screenshot={shot}", page.as_uri())
    assert shot.read_bytes().startswith(PNG_MAGIC)
    import matplotlib.image
    import numpy as np

    pixels = matplotlib.image.imread(shot)[::4, ::4, :3].reshape(-1, 3)
    assert len(np.unique((pixels * 255).astype(np.uint8), axis=0)) > 50  # plots in colour, not a blank page

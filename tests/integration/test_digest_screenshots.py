"""The digest's HTML in a real browser (headless Chromium) at desktop and phone widths.

A mail client is not a browser, but most of them (Apple Mail, Gmail's apps, Outlook on
the web) render with a browser engine, and a layout that overflows a 390 px viewport
in Chromium overflows on a phone. The test lays out the outbox's browser copy
(pictures as data: URIs), measures it through the DOM, takes a full-page screenshot
into ``test-artifacts/digest/`` (for a human to look at; ignored by git), and checks
the pixels: not blank, nothing cut off at the right edge.

Headless Chromium will not make a window narrower than 500 px (``--window-size=390,...``
lays the page out at 500 px and crops the picture), so the digest is shown in an
``<iframe srcdoc>`` exactly ``width`` CSS pixels wide: the frame is the viewport the
digest's layout sees, and srcdoc keeps it same-origin so the host page can measure it.

Chromium comes from the system (Debian's ``chromium`` package provides
``/usr/bin/chromium``; ``RETENTION_CHROMIUM`` names another binary). Without it the
test fails and says so: a rendering check that silently skips checks nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from html import escape
from pathlib import Path

import pytest
from PIL import Image

from retention_pipeline.config import PROJECT_ROOT
from retention_pipeline.digest.delivery import write_outbox
from retention_pipeline.digest.message import build_message
from retention_pipeline.digest.render import render_digest
from retention_pipeline.digest.sample import sample_digest_data

pytestmark = pytest.mark.integration

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "digest"
WIDTHS = {"desktop": 1024, "phone": 390}
PAGE_BACKGROUND = (0xF6, 0xF8, 0xFA)  # the body colour around the 640 px card
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
MIN_WINDOW_WIDTH = 500  # headless Chromium's narrowest window
# In the host page only: the digest itself carries no script.
PROBE = """<script>
const frame = document.getElementById("digest");
frame.addEventListener("load", () => {
  const doc = frame.contentDocument;
  const images = Array.from(doc.images);
  document.body.setAttribute("data-probe", [
    doc.documentElement.scrollWidth,
    Math.ceil(doc.documentElement.getBoundingClientRect().height),
    images.filter(i => !(i.complete && i.naturalWidth > 0)).length,
    images.length,
  ].join(","));
});
</script>"""


def _host(digest_html: str, width: int, height: int, probe: bool) -> str:
    """A page holding the digest in a frame of exactly ``width`` x ``height`` CSS px."""
    return (
        '<!DOCTYPE html><html><body style="margin:0;background:#ffffff">'
        f'<iframe id="digest" style="display:block;border:0;width:{width}px;height:{height}px" '
        f'srcdoc="{escape(digest_html, quote=True)}"></iframe>'
        f"{PROBE if probe else ''}</body></html>"
    )


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = os.environ.get("RETENTION_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(binary).is_file():
        pytest.fail(
            f"headless Chromium not found ({binary}): install Debian's `chromium` package "
            "(apt-get install chromium) or set RETENTION_CHROMIUM to a Chromium binary"
        )
    return binary


def _run(chromium: str, *args: str) -> str:
    # A fresh profile per run: no state carried between runs, no lock shared with another.
    with tempfile.TemporaryDirectory(prefix="digest-chromium-") as profile:
        done = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module", params=["en", "ru"])
def page(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The outbox's browser copy of the sample week, every section present."""
    language: str = request.param
    rendered = render_digest(sample_digest_data("2026-W47"), language, churn_target=0.02, currency="EUR")
    message = build_message(rendered, "digest@example.com", ["everyone@example.com"], "example.com")
    paths = write_outbox(rendered, message, tmp_path_factory.mktemp(f"outbox-{language}"), "2026-W47")
    return language, paths["html"]


@pytest.mark.parametrize("device", WIDTHS)
def test_digest_renders_in_chromium(
    chromium: str, page: tuple[str, Path], device: str, tmp_path: Path
) -> None:
    language, html_path = page
    width = WIDTHS[device]
    window = max(width, MIN_WINDOW_WIDTH)
    html = html_path.read_text(encoding="utf-8")
    assert "<script" not in html.lower()

    probe_path = tmp_path / "probe.html"
    probe_path.write_text(_host(html, width, 900, probe=True), encoding="utf-8")
    args = (f"--window-size={window},900", "--virtual-time-budget=5000", "--dump-dom")
    dom = _run(chromium, *args, probe_path.as_uri())
    found = re.search(r'data-probe="(\d+),(\d+),(\d+),(\d+)"', dom)
    assert found, "the probe script did not run: " + dom[-500:]
    scroll_width, height, broken_images, images = map(int, found.groups())
    assert scroll_width <= width, f"{device}: the digest is {scroll_width}px wide in a {width}px viewport"
    assert images == 4 and broken_images == 0, f"{broken_images} of {images} pictures did not load"
    assert 1500 < height < 12000, height

    host_path = tmp_path / "host.html"
    host_path.write_text(_host(html, width, height, probe=False), encoding="utf-8")
    window_shot = tmp_path / "window.png"
    args = (f"--window-size={window},{height}", "--virtual-time-budget=5000", f"--screenshot={window_shot}")
    _run(chromium, *args, host_path.as_uri())
    with Image.open(window_shot) as image:
        assert image.size == (window, height)
        rgb = image.convert("RGB").crop((0, 0, width, height))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"digest_{language}_{device}_{width}.png"
    rgb.save(shot)
    assert shot.stat().st_size > 50_000, "a trivially small screenshot"

    # Not blank: a real share of the page is ink, in many colours (text, charts, heatmap).
    small = rgb.resize((width // 2, height // 4))
    pixels = list(small.getdata())
    ink = sum(1 for p in pixels if p not in (PAGE_BACKGROUND, (255, 255, 255)))
    assert ink / len(pixels) > 0.05, f"only {ink / len(pixels):.1%} of the page is not background"
    assert len(set(pixels)) > 200
    # Nothing cut off on the right: the rightmost column is the page background all the
    # way down (the card sits inside a margin; an overflowing table would cover it).
    right_edge = {rgb.getpixel((width - 2, y)) for y in range(0, height, 4)}
    assert right_edge == {PAGE_BACKGROUND}, (
        f"{device}: content reaches the right edge: {sorted(right_edge)[:5]}"
    )
    # The card is as wide as the screen allows, up to 640 px: on a phone it fills it.
    card_row = [rgb.getpixel((x, 120)) for x in range(width)]
    card_width = sum(1 for p in card_row if p != PAGE_BACKGROUND)
    assert card_width == min(640, width - 16), card_width

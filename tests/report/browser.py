"""Headless Chromium driven by selenium WebDriver (Debian's chromium and chromium-driver;
nothing is downloaded), and what a rendered report's layout looks like to it."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

# CI keeps these as artifacts
SHOTS = Path(__file__).resolve().parents[2] / "out" / "screenshots"

# what the page looks like to a reader: every sequence diagram's lanes and arrows with
# their on-screen boxes, and everything the page fetched or points at outside itself
LAYOUT_JS = """
const box = e => { const r = e.getBoundingClientRect();
  return {x: r.left, y: r.top, w: r.width, h: r.height, bottom: r.bottom, right: r.right}; };
const svgs = [...document.querySelectorAll('svg.seq')].map(s => ({
  id: s.id, attempt: s.dataset.attempt || null, finding: s.dataset.finding || null,
  lanes: [...s.querySelectorAll('g.lane')].map(g => ({key: g.dataset.lane,
     box: box(g.querySelector('rect'))})),
  arrows: [...s.querySelectorAll('g.arrow')].map(g => ({kind: g.dataset.kind,
     from: g.dataset.from, to: g.dataset.to, t: g.dataset.tMs ? parseFloat(g.dataset.tMs) : null,
     attempt: g.dataset.attempt, highlight: g.dataset.highlight === '1',
     ttl: g.dataset.ttl ? parseInt(g.dataset.ttl) : null,
     stroke: getComputedStyle(g.querySelector('line')).stroke,
     line: box(g.querySelector('line')), text: box(g.querySelector('text')),
     label: g.querySelector('text').textContent}))}));
const external = [...document.querySelectorAll('[src],[href],link,script,img,iframe')]
  .map(e => e.getAttribute('src') || e.getAttribute('href') || e.tagName)
  .filter(u => !u.startsWith('#'));
const findings = [...document.querySelectorAll('section.finding')].map(s => ({
  id: s.dataset.finding, links: [...s.querySelectorAll('ul a')].map(a => a.getAttribute('href')),
  svg: s.querySelector('svg.seq') ? s.querySelector('svg.seq').id : null,
  svgs: [...s.querySelectorAll('svg.seq')].map(x => x.id)}));
const certs = [...document.querySelectorAll('table.certs tbody tr')].map(tr => ({
  subject: tr.cells[0].innerText, issuer: tr.cells[1].innerText, box: box(tr)}));
return {svgs, external, findings, certs, scripts: document.scripts.length,
        resources: performance.getEntriesByType('resource').map(r => r.name),
        title: document.title, text: document.body.innerText};
"""


def available() -> str | None:
    """Why the browser cannot run here, or None."""
    for b in ("chromium", "chromedriver"):
        if shutil.which(b) is None:
            return b
    return None


@contextmanager
def chromium(width: int = 1200, height: int = 1500) -> Iterator[webdriver.Chrome]:
    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--window-size={width},{height}", "--hide-scrollbars"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium") or "chromium"
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"),
                           options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


def layout(drv: webdriver.Chrome, page: Path, screenshot: Path | None = None) -> dict[str, Any]:
    drv.get(page.resolve().as_uri())
    out: dict[str, Any] = drv.execute_script(LAYOUT_JS)
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        drv.save_screenshot(str(screenshot))
    return out


def check_diagram(svg: dict[str, Any]) -> None:
    """What every drawn exchange must satisfy on screen."""
    lanes = {ln["key"]: ln["box"] for ln in svg["lanes"]}
    assert {"client", "server"} <= set(lanes), svg["id"]
    arrows = svg["arrows"]
    assert arrows, svg["id"]
    # top to bottom in time order
    times = [a["t"] for a in arrows if a["t"] is not None]
    assert times == sorted(times), (svg["id"], times)
    ys = [a["line"]["y"] for a in arrows]
    assert ys == sorted(ys) and len(set(ys)) == len(ys), (svg["id"], ys)
    for a in arrows:
        # each label sits wholly above its own arrow, and below the previous arrow
        assert a["text"]["bottom"] <= a["line"]["y"] + 0.5, (svg["id"], a["label"])
    for prev, nxt in itertools.pairwise(arrows):
        assert nxt["text"]["y"] >= prev["line"]["bottom"] - 0.5, (svg["id"], nxt["label"])
        assert nxt["text"]["y"] >= prev["text"]["bottom"], (svg["id"], nxt["label"])
    for a in arrows:
        # each arrow runs between the lanes it names (a lost one stops on the way)
        src = lanes[a["from"]]
        cx = src["x"] + src["w"] / 2
        assert min(abs(a["line"]["x"] - cx), abs(a["line"]["right"] - cx)) < 2, a["label"]


def check_offline(page: dict[str, Any]) -> None:
    assert page["resources"] == [], page["resources"]
    assert page["external"] == [], page["external"]
    assert page["scripts"] == 0


def finding_svg(page: dict[str, Any], finding: str) -> dict[str, Any]:
    """The diagram a finding's section shows."""
    f = next(f for f in page["findings"] if f["id"] == finding)
    return next(s for s in page["svgs"] if s["id"] == f["svg"])

"""Every page, as every role, on a phone-sized Chromium (390×844): nothing scrolls sideways,
the header fits one line, tap targets are at least 44 px, and axe-core (from its npm
package, which `make` installs) finds no serious or critical accessibility violation."""

from __future__ import annotations

import pytest

from porch.hub.accounts import ROLES
from tests.support.browser import needs_chromium, sign_in
from tests.support.common import ROOT
from tests.support.hub import site_pages

AXE = ROOT / ".venv" / "npm" / "node_modules" / "axe-core"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def site(furnished_site):
    return furnished_site


def pages(site, role: str) -> list[str]:
    return [path for path, roles in site_pages(site).items() if role in roles]


CHECKS = """() => {
  const wide = document.documentElement.scrollWidth;
  const header = document.querySelector('header');
  const targets = 'button, nav a, header a, input:not([type=hidden]), select';
  const small = [...document.querySelectorAll(targets)]
    .filter(e => e.offsetParent !== null)
    // a checkbox is tapped through its label
    .map(e => [e.outerHTML.slice(0, 80),
               (e.type === 'checkbox' && e.closest('label') || e).getBoundingClientRect()])
    .filter(([, r]) => r.height < 44 || (r.width < 44))
    .map(([html, r]) => `${html} (${Math.round(r.width)}×${Math.round(r.height)})`);
  const wrapped = [...document.querySelectorAll('header a')].filter(a => {
    const range = document.createRange();
    range.selectNodeContents(a);
    return range.getClientRects().length > 1;  // its words broke over two lines
  }).map(a => a.textContent);
  return {wide, header: header ? header.getBoundingClientRect().height : 0, small, wrapped};
}"""


@needs_chromium
@pytest.mark.skipif(not (AXE / "axe.min.js").exists(), reason="axe-core is not installed (make)")
@pytest.mark.parametrize("role", ROLES)
def test_every_page_fits_a_phone_and_passes_axe(site, browser, role):
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True)
    page = context.new_page()
    axe = (AXE / "axe.min.js").read_text()
    problems = []
    try:
        sign_in(page, site.url, role)
        for path in ["/login", *pages(site, role)]:
            if path == "/login":
                continue
            page.goto(site.url + path)
            page.wait_for_load_state("load")
            found = page.evaluate(CHECKS)
            if found["wide"] > PHONE["width"]:
                problems.append(f"{path}: {found['wide']} px wide")
            if found["header"] > 64:
                problems.append(f"{path}: the header takes {found['header']:.0f} px (two lines)")
            problems += [f"{path}: small tap target {s}" for s in found["small"]]
            problems += [f"{path}: '{w}' breaks in the header" for w in found["wrapped"]]
            page.evaluate(axe)  # evaluate, not a script tag: the page's CSP allows no inline script
            result = page.evaluate(
                "async () => (await axe.run()).violations"
                ".filter(v => ['serious', 'critical'].includes(v.impact))"
                ".map(v => `${v.id}: ${v.nodes[0].html.slice(0, 90)}`)"
            )
            problems += [f"{path}: axe {v}" for v in result]
    finally:
        context.close()
    assert problems == [], "\n".join(problems)

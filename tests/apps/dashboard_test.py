#!/usr/bin/env python3
"""The dashboard in a real browser: headless Chromium (Debian's chromium and chromium-driver,
driven by python3-selenium) opens http://HOST:PORT/dashboard of a running rml while load
runs, and checks that the charts draw and update: the page scraped /metrics several times,
the throughput chart holds points above zero, the accuracy chart a live accuracy, and every
canvas has pixels drawn. It saves a screenshot and checks the picture too (python3-pil): the
canvases' areas are not blank.

    dashboard_test.py HOST:PORT SCREENSHOT.png
"""
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common import utils


class LoopbackService(Service):
    """chromedriver reached at 127.0.0.1, not "localhost": a minimal root (a fresh Debian
    made by mmdebstrap) has no /etc/hosts, and there "localhost" does not resolve."""

    @property
    def service_url(self):
        return f"http://127.0.0.1:{self.port}"

    def is_connectable(self):
        return utils.is_connectable(self.port, host="127.0.0.1")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


address, screenshot = sys.argv[1], sys.argv[2]
# Chromium is started here, its DevTools on 127.0.0.1, and chromedriver attaches to it there:
# chromedriver would otherwise start it and reach it at "localhost" (see LoopbackService).
debugging_port = free_port()
profile = tempfile.mkdtemp(prefix="rml-dashboard-test-")
browser = subprocess.Popen(["/usr/bin/chromium", "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                            "--window-size=1400,1700", "--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={debugging_port}",
                            f"--user-data-dir={profile}", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(300):
    if utils.is_connectable(debugging_port, host="127.0.0.1"):
        break
    time.sleep(0.1)
options = Options()
options.debugger_address = f"127.0.0.1:{debugging_port}"
failures = []
try:
    driver = webdriver.Chrome(service=LoopbackService("/usr/bin/chromedriver"), options=options)
except Exception:
    browser.kill()
    raise
try:
    driver.get(f"http://{address}/dashboard")
    assert "rml dashboard" in driver.title, f"title: {driver.title!r}"
    assert driver.execute_script("return typeof Chart") == "function", "Chart.js did not load from /dashboard/chart.js"
    # Charts update: the page counts its scrapes; wait for several.
    deadline = time.time() + 30
    while time.time() < deadline and driver.execute_script("return window.rmlDashboard.scrapes") < 6:
        time.sleep(0.5)
    scrapes = driver.execute_script("return window.rmlDashboard.scrapes")
    if scrapes < 6:
        failures.append(f"the page drew {scrapes} scrapes of /metrics in 30 s, expected at least 6")
    first = driver.execute_script("return window.rmlDashboard.charts.throughput.data.labels.length")
    time.sleep(2.5)
    later = driver.execute_script("return window.rmlDashboard.charts.throughput.data.labels.length")
    if later <= first:
        failures.append(f"the throughput chart did not grow ({first} points, then {later})")
    answered = driver.execute_script("return window.rmlDashboard.charts.throughput.data.datasets[0].data.filter(v => v > 0).length")
    if answered < 2:
        failures.append(f"the throughput chart shows answers in {answered} points: the load did not reach the page")
    live = driver.execute_script("return window.rmlDashboard.charts.accuracy.data.datasets[0].data.filter(v => v !== null && v > 0).length")
    if live < 1:
        failures.append("the accuracy chart shows no live accuracy")
    # Every canvas has drawn pixels (not one left transparent).
    blank = driver.execute_script("""
        return [...document.querySelectorAll('canvas')].filter(canvas => {
          const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
          for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return false;
          return true;
        }).map(canvas => canvas.id);""")
    if blank:
        failures.append(f"blank canvases: {blank}")
    areas = driver.execute_script("""
        return [...document.querySelectorAll('canvas')].map(canvas => {
          const box = canvas.getBoundingClientRect();
          return [canvas.id, box.left, box.top, box.width, box.height];
        });""")
    driver.save_screenshot(screenshot)
finally:
    driver.quit()
    browser.kill()
    browser.wait()
    shutil.rmtree(profile, ignore_errors=True)

# The screenshot itself: each chart's area holds more than the white background (lines,
# axes, labels), and the picture as a whole is not one colour.
picture = Image.open(screenshot).convert("RGB")
scale = picture.width / 1400.0
if len(picture.getcolors(1 << 24) or []) < 20:
    failures.append("the screenshot is (nearly) one colour")
for name, left, top, width, height in areas:
    box = tuple(int(v * scale) for v in (left, top, left + width, top + height))
    if box[3] > picture.height:
        continue  # below the fold of the window
    region = picture.crop(box)
    drawn = sum(1 for pixel in region.getdata() if pixel != (255, 255, 255))
    if drawn < 0.005 * region.width * region.height:
        failures.append(f"the screenshot's {name} chart is blank ({drawn} drawn pixels)")
if failures:
    print("FAIL: " + "; ".join(failures))
    sys.exit(1)
print(f"dashboard: {scrapes} scrapes drawn, {len(areas)} charts, screenshot {screenshot}")

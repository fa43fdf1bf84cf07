"""Opens ecfleet's HTML reports in headless Chromium through ChromeDriver (WebDriver over
HTTP, the W3C protocol; Debian's chromium and chromium-driver), and for each page writes a
screenshot (PNG) and PDFs on A4 and Letter paper beside it, then prints what a reader sees,
read through the DOM: the title, the h1, every table's rows as cell texts, every SVG's text,
the body's text, and how many script elements and external resources the page has.

Usage: browser.py CHROMEDRIVER CHROMIUM OUT_DIR PAGE.html...   (JSON on stdout)
"""
import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())["value"]


READ = """
const cells = (row) => Array.from(row.querySelectorAll('th,td')).map(c => c.innerText.trim());
return {
  title: document.title,
  h1: (document.querySelector('h1') || {}).innerText || '',
  tables: Array.from(document.querySelectorAll('table')).map(t => ({
    id: t.id || null,
    severity: t.dataset.severity || null,
    head: Array.from(t.querySelectorAll('thead tr')).map(cells)[0] || [],
    rows: Array.from(t.querySelectorAll('tbody tr')).map(cells),
  })),
  svgs: Array.from(document.querySelectorAll('svg')).map(s => ({
    id: s.id, text: Array.from(s.querySelectorAll('text')).map(t => t.textContent),
    rects: s.querySelectorAll('rect').length,
  })),
  body: document.body.innerText,
  scripts: document.querySelectorAll('script').length,
  external: performance.getEntriesByType('resource').map(r => r.name),
  width: document.documentElement.scrollWidth,
};
"""


def main():
    driver, chromium, out_dir, pages = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    port = free_port()
    log = open(os.path.join(out_dir, "chromedriver.log"), "w")
    proc = subprocess.Popen([driver, f"--port={port}"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                if call(base, "GET", "/status", timeout=5).get("ready"):
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("chromedriver did not become ready in 30 s")
            time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1200,1600",
                         "--hide-scrollbars", "--no-first-run"],
            },
        }}}
        session = call(base, "POST", "/session", caps, timeout=90)["sessionId"]
        s = f"/session/{session}"
        result = {}
        try:
            for page in pages:
                name = os.path.splitext(os.path.basename(page))[0]
                call(base, "POST", s + "/url", {"url": "file://" + os.path.abspath(page)})
                seen = call(base, "POST", s + "/execute/sync", {"script": READ, "args": []})
                png = call(base, "GET", s + "/screenshot")
                with open(os.path.join(out_dir, name + ".png"), "wb") as f:
                    f.write(base64.b64decode(png))
                pdfs = {}
                for paper, (width, height) in {"a4": (21.0, 29.7), "letter": (21.59, 27.94)}.items():
                    pdf = call(base, "POST", s + "/print", {
                        "page": {"width": width, "height": height},
                        "background": True, "shrinkToFit": True,
                    })
                    data = base64.b64decode(pdf)
                    path = os.path.join(out_dir, f"{name}.{paper}.pdf")
                    with open(path, "wb") as f:
                        f.write(data)
                    pdfs[paper] = {"path": path, "bytes": len(data),
                                   "pages": data.count(b"/Type /Page") - data.count(b"/Type /Pages")}
                seen["png"] = os.path.join(out_dir, name + ".png")
                seen["pdf"] = pdfs
                result[os.path.basename(page)] = seen
        finally:
            call(base, "DELETE", s)
        json.dump(result, sys.stdout)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


main()

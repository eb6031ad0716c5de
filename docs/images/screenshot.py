"""Screenshot a page of the Dagster UI (or any page) the way a user sees it: headless
Chromium through the Chrome DevTools Protocol, optionally after clicking a tab.

    apt-get install chromium     # and a running UI, e.g. `risk-assets ui --port 3120`
    python docs/images/screenshot.py URL "Execution history" out.png     # "-": no click

For a Dagster UI URL it first dismisses the UI's first-visit dialog (GraphQL `setNuxSeen`).
`websockets` comes with dagster-webserver.
"""

import asyncio
import base64
import contextlib
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from websockets.asyncio.client import connect

url, click, out = sys.argv[1], sys.argv[2], sys.argv[3]
origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(url))
with contextlib.suppress(OSError):  # not a Dagster UI: nothing to dismiss
    urllib.request.urlopen(
        urllib.request.Request(
            origin + "/graphql",
            data=b'{"query":"mutation { setNuxSeen }"}',
            headers={"Content-Type": "application/json"},
        ),
        timeout=10,
    )
proc = subprocess.Popen(
    [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--remote-debugging-port=9333",
        "--window-size=1400,1000",
        "about:blank",
    ],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
try:
    for _ in range(50):
        try:
            tabs = json.loads(urllib.request.urlopen("http://127.0.0.1:9333/json").read())
            break
        except OSError:
            time.sleep(0.2)
    ws_url = next(t["webSocketDebuggerUrl"] for t in tabs if t["type"] == "page")

    async def main():
        async with connect(ws_url, max_size=2**26) as ws:
            n = 0

            async def call(method, **params):
                nonlocal n
                n += 1
                await ws.send(json.dumps({"id": n, "method": method, "params": params}))
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("id") == n:
                        return msg.get("result", {})

            await call("Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1, mobile=False)
            await call("Page.navigate", url=url)
            await asyncio.sleep(8)
            if click != "-":
                js = (
                    "[...document.querySelectorAll('button,[role=tab],a,span,div')].filter(e=>e.children.length==0 && "
                    f"e.textContent.trim()=={json.dumps(click)}).forEach(e=>e.click())"
                )
                await call("Runtime.evaluate", expression=js)
                await asyncio.sleep(4)
            shot = await call("Page.captureScreenshot", format="png")
            Path(out).write_bytes(base64.b64decode(shot["data"]))

    asyncio.run(main())
finally:
    proc.terminate()

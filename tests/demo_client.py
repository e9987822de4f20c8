"""The demo as a client meets it, shared by the demo's test modules: HTTP calls to a server on 127.0.0.1
and a real headless chromium driven by selenium (skipped when it is not installed, a failure under CI)."""
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(argv, log_path, cwd, env, timeout=240):
    """The base URL of `python -m glow_tf serve ARGV` on a free port of 127.0.0.1, once it answers; its
    output goes to `log_path`; the server is stopped on leaving."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "glow_tf", "serve", *map(str, argv), "--port", str(port), "--cpu"],
                                cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                with open(log_path) as log:
                    pytest.fail(f"the demo server exited with {proc.returncode}:\n{log.read()[-3000:]}")
            try:
                urllib.request.urlopen(url + "/api/info", timeout=5).read()
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail(f"the demo server did not answer within {timeout} s")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def call(url, path, body=None, data=None, headers=None):
    """(status, JSON answer) of GET (no body) or POST (a JSON body, or raw `data`)."""
    if body is not None:
        data, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
    request = urllib.request.Request(url + path, data=data, headers=headers or {},
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        try:
            return e.code, json.loads(text)
        except json.JSONDecodeError:
            return e.code, text


def upload(url, raw, fields=(), path="/api/encode"):
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
                 f'Content-Type: application/octet-stream\r\n\r\n'.encode() + raw + b"\r\n")
    return call(url, path, data=b"".join(parts) + f"--{boundary}--\r\n".encode(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


def ok(answer):
    status, data = answer
    assert status == 200, data
    return data


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    try:
        from selenium import webdriver  # noqa: PLC0415
        from selenium.webdriver.chrome.service import Service  # noqa: PLC0415
    except ImportError:
        webdriver = None
    if not (chromium and driver_path and webdriver):
        missing = "selenium" if not webdriver else "chromium" if not chromium else "chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is missing in CI: scripts/install.sh installs it (GLOW_SKIP_BROWSER unset)")
        pytest.skip(f"{missing} is not installed (scripts/install.sh installs it)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="glow-demo-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1300,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(driver, script, timeout=60):
    """Polls a JS expression until it is truthy; returns its value."""
    deadline = time.time() + timeout
    while True:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        if time.time() > deadline:
            error = driver.execute_script("return document.getElementById('error').textContent")
            pytest.fail(f"timed out waiting for {script!r}; page error: {error!r}")
        time.sleep(0.05)


def settled(driver, version):
    """The current image's src once it has changed past `version` and no request is pending."""
    wait(driver, f"Number(document.getElementById('current').dataset.version) > {version} "
                 f"&& document.body.dataset.pending === '0'")
    return driver.execute_script("return document.getElementById('current').src")


def version(driver):
    return int(driver.execute_script("return document.getElementById('current').dataset.version"))


def set_range(driver, selector, value):
    driver.execute_script("const s = document.querySelector(arguments[0]); s.value = arguments[1]; "
                          "s.dispatchEvent(new Event('input'));", selector, str(value))


def draw(driver, seed=None):
    """Clicks "random" (after setting the seed field when `seed` is given) and returns the image shown."""
    if seed is not None:
        driver.execute_script("document.getElementById('seed').value = arguments[0]", str(seed))
    v = version(driver)
    driver.find_element("id", "random").click()
    return settled(driver, v)

"""The web page in real headless Chromium (Debian's, driven by Playwright) against a real cluster.

One browser and one cluster (3 nodes, ec:2+1) for the module; each test opens
its own context (cookies, localStorage), as a fresh browser profile would.
A screenshot of each main page lands in ``test-artifacts/webui/``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cargohold.testing.browser import ARTIFACTS, chromium, sign_in
from cargohold.testing.cluster import ADMIN_PASSWORD, Cluster
from cargohold.testing.data import sample

MiB = 1024 * 1024
USER_PASSWORD = "a-user-password-long-enough"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # A browser beside 3 nodes on a 2-core machine: nodes may answer slowly right after the
    # 64 MiB upload, so they get longer than the clusters of API-only tests before a read fails.
    env = {"CARGOHOLD_NODE_TIMEOUT": "30"}
    with Cluster(tmp_path_factory.mktemp("webui"), node_count=3, layout="ec:2+1", env=env) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as running:
        yield running


@pytest.fixture
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.client() as client:
        yield client


class Page:
    """A browser context and page that records console errors, to assert there were none."""

    def __init__(self, browser: Any, cluster: Cluster) -> None:
        self.context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.url = cluster.url
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # The console says only "Failed to load resource": keep which request failed, to say so.
        self.refusals: list[Any] = []
        self.page.on("response", self._note_refusal)

    def _note_refusal(self, response: Any) -> None:
        if response.status >= 400:
            self.refusals.append(response)

    def _refused(self) -> list[str]:
        """Each refused request with its answer (read now: the bodies go with the context)."""
        said = []
        for response in self.refusals:
            try:
                body = response.text()[:300]
            except Exception as error:  # the body may be gone (a cut-off request)
                body = f"<{error}>"
            said.append(f"{response.request.method} {response.url} {response.status} {body}")
        return said

    def sign_in(self, name: str = "admin", password: str = ADMIN_PASSWORD) -> Any:
        sign_in(self.page, self.url, name, password)
        return self.page

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self, expected_errors: int = 0) -> None:
        errors = list(self.errors)
        refused = self._refused() if len(errors) != expected_errors else []
        self.context.close()
        assert len(errors) == expected_errors, (errors, refused)


@pytest.fixture
def web(browser: Any, cluster: Cluster) -> Iterator[Page]:
    page = Page(browser, cluster)
    yield page
    page.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _make_bucket(page: Any, name: str) -> None:
    page.get_by_label("New bucket name").fill(name)
    page.get_by_role("button", name="Create bucket").click()
    page.locator("#listing").wait_for()


def _nav(page: Any, name: str) -> Any:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


def _row(page: Any, key: str) -> Any:
    return page.locator(f'#listing tr[data-key="{key}"]')


def test_sign_in_create_bucket_upload_and_download(web: Page, api: httpx.Client, tmp_path: Path) -> None:
    page = web.sign_in()
    web.shot("buckets")
    _make_bucket(page, "web-files")
    files = {"one.txt": b"one\n", "two.bin": sample(300_000), "three.bin": sample(1_234_567)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    folder = tmp_path / "album"
    (folder / "inner").mkdir(parents=True)
    (folder / "cover.bin").write_bytes(sample(4096))
    (folder / "inner" / "deep.txt").write_bytes(b"deep")
    page.locator("#pick-files").set_input_files([str(tmp_path / n) for n in files])
    page.locator("#pick-folder").set_input_files(str(folder))
    page.locator('#uploads .upload[data-state="done"]').nth(4).wait_for()
    page.get_by_role("button", name="Clear finished").click()

    for name, data in files.items():
        assert _row(page, name).locator("td[data-size]").get_attribute("data-size") == str(len(data))
    page.get_by_role("link", name="album/", exact=True).click()
    page.get_by_role("link", name="inner/", exact=True).click()
    assert _row(page, "album/inner/deep.txt").locator("td[data-size]").get_attribute("data-size") == "4"
    keys = [o["key"] for o in api.get("/api/v1/buckets/web-files/objects").json()["objects"]]
    assert sorted(keys) == sorted([*files, "album/cover.bin", "album/inner/deep.txt"])

    page.get_by_role("navigation", name="Breadcrumbs").get_by_role("link", name="web-files").click()
    _row(page, "three.bin").wait_for()
    web.shot("files")
    with page.expect_download() as download:
        _row(page, "three.bin").get_by_role("link").click()
    assert download.value.suggested_filename == "three.bin"
    assert _sha(Path(download.value.path()).read_bytes()) == _sha(files["three.bin"])


def _drop_files(page: Any, target: Any, files: dict[str, bytes]) -> None:
    """Drop ``files`` on ``target`` as a drag from the desktop would: dragenter, dragover, drop,
    with a DataTransfer holding File objects built in the page."""
    encoded = [[name, base64.b64encode(data).decode()] for name, data in files.items()]
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const [name, encoded] of files) {
                const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], name, { type: "application/octet-stream" }));
            }
            return transfer;
        }""",
        encoded,
    )
    target.dispatch_event("dragenter", {"dataTransfer": transfer})
    target.dispatch_event("dragover", {"dataTransfer": transfer})
    assert "over" in (target.get_attribute("class") or "").split()
    target.dispatch_event("drop", {"dataTransfer": transfer})


def _drop_folder(web: Page, target: Any, folder: Path) -> None:
    """Drop a folder from disk through the browser's own drag machinery (DevTools' Input domain):
    a script cannot put a directory in a DataTransfer, the browser can."""
    box = target.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = web.context.new_cdp_session(web.page)
    data = {"items": [], "files": [str(folder)], "dragOperationsMask": 1}
    for kind in ("dragEnter", "dragOver", "drop"):
        cdp.send("Input.dispatchDragEvent", {"type": kind, "x": x, "y": y, "data": data})


def test_drop_files_and_a_folder_then_see_which_nodes_hold_the_shares(
    web: Page, cluster: Cluster, api: httpx.Client, tmp_path: Path
) -> None:
    password = "a-dropper-password-long-enough"
    reply = api.post("/api/v1/users", json={"name": "web-dropper", "password": password})
    assert reply.status_code == 201, reply.text
    page = web.sign_in("web-dropper", password)
    _make_bucket(page, "web-drop")
    files = {"small.txt": b"dropped\n", "coded.bin": sample(150_000), "middle.bin": sample(40_000)}
    zone = page.locator("section.drop")
    _drop_files(page, zone, files)
    folder = tmp_path / "photos"
    (folder / "2026").mkdir(parents=True)
    (folder / "2026" / "beach.bin").write_bytes(sample(70_000))
    (folder / "index.txt").write_bytes(b"index\n")
    _drop_folder(web, zone, folder)
    page.locator('#uploads .upload[data-state="done"]').nth(len(files) + 1).wait_for()
    page.get_by_role("button", name="Clear finished").click()

    for name, data in files.items():
        assert _row(page, name).locator("td[data-size]").get_attribute("data-size") == str(len(data))
    keys = sorted(o["key"] for o in api.get("/api/v1/buckets/web-drop/objects").json()["objects"])
    assert keys == sorted([*files, "photos/2026/beach.bin", "photos/index.txt"])
    with page.expect_download() as download:
        _row(page, "coded.bin").get_by_role("link").click()
    assert _sha(Path(download.value.path()).read_bytes()) == _sha(files["coded.bin"])

    # Its details: the 2+1 shares on three nodes, each up and in service; no node URL on the page.
    _row(page, "coded.bin").get_by_role("button", name="Details coded.bin").click()
    dialog = page.get_by_role("dialog")
    shares = dialog.locator("table.shares tbody tr")
    shares.nth(2).wait_for()
    placed = api.get("/api/v1/buckets/web-drop/placement/coded.bin").json()
    expected = [(str(s["index"]), str(s["node"]["id"])) for s in placed["parts"][0]["shares"]]
    rows = [(r.get_attribute("data-share"), r.get_attribute("data-node")) for r in shares.all()]
    assert rows == expected
    assert len({node for _, node in rows}) == 3
    for row in shares.all():
        assert row.locator(".badge").all_inner_texts() == ["up", "normal", "present"]
    assert dialog.locator("#object-health").inner_text() == "healthy"
    assert "ec:2+1" in dialog.inner_text()
    web.shot("object-details")
    text = page.content()
    for node in cluster.nodes:
        assert f":{node.port}" not in text
    dialog.get_by_role("button", name="Close").click()


def _server_offset(api: httpx.Client, upload_id: str) -> int:
    return int(api.get(f"/api/v1/uploads/{upload_id}").json()["offset"])


def test_upload_resumes_after_a_reload(
    web: Page, cluster: Cluster, api: httpx.Client, tmp_path: Path
) -> None:
    assert api.put("/api/v1/buckets/web-resume").status_code == 201
    data = sample(64 * MiB)
    big = tmp_path / "big.bin"
    big.write_bytes(data)
    page = web.sign_in()
    # Slow the browser's uploads so the reload lands mid-way (loopback is faster than any test).
    cdp = web.context.new_cdp_session(page)
    cdp.send("Network.enable")
    rate = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 16 * MiB}
    cdp.send("Network.emulateNetworkConditions", rate)
    page.goto(cluster.url + "/ui/#/b/web-resume/")
    page.locator("#listing").wait_for()
    page.locator("#pick-files").set_input_files(str(big))
    # The panel is drawn anew on every progress event: look the bar up each time.
    page.wait_for_function(
        """() => {
            const bar = document.querySelector('[role=progressbar][aria-label="Upload of big.bin"]');
            return bar !== null && Number(bar.getAttribute('aria-valuenow')) >= 20;
        }""",
        timeout=60_000,
    )
    stored = page.evaluate(
        "() => Object.keys(localStorage).filter(k => k.startsWith('tus::cargohold/web-resume/big.bin/'))"
        ".map(k => JSON.parse(localStorage.getItem(k)).uploadUrl)"
    )
    assert len(stored) == 1
    upload_id = stored[0].rsplit("/", 1)[1]
    page.reload()
    page.locator("#listing").wait_for()
    # What the cut-off request delivered is kept: wait until the server's offset stops moving
    # (the same over three reads half a second apart).
    kept = [_server_offset(api, upload_id)]

    def settled() -> bool:
        kept.append(_server_offset(api, upload_id))
        return len(kept) >= 3 and kept[-1] == kept[-2] == kept[-3]

    cluster.wait_for(settled, timeout=30, interval=0.5)
    first = kept[-1]
    assert first >= 4 * MiB
    assert page.locator('#uploads .upload[data-state="interrupted"]').count() == 1
    web.shot("upload-interrupted")

    heads: list[int] = []
    page.on(
        "response",
        lambda r: (
            heads.append(int(r.headers["upload-offset"]))
            if r.request.method == "HEAD" and "/tus/" in r.url
            else None
        ),
    )
    cdp.send("Network.emulateNetworkConditions", {**rate, "uploadThroughput": -1})
    page.locator("#pick-files").set_input_files(str(big))
    page.locator('#uploads .upload[data-state="done"]').wait_for(timeout=120_000)
    # Continued where the server stood (every byte that arrived was kept), not from zero: the
    # server received the first request's bytes and then only the rest.
    assert heads and heads[0] >= first
    received = first + (len(data) - heads[0])
    assert received < 1.5 * len(data)
    answer = api.get("/api/v1/buckets/web-resume/objects/big.bin")
    assert answer.status_code == 200
    assert _sha(answer.content) == _sha(data)
    assert page.locator('#uploads .upload[data-state="interrupted"]').count() == 0


def test_password_share_link_in_a_fresh_browser(
    web: Page, browser: Any, cluster: Cluster, api: httpx.Client
) -> None:
    assert api.put("/api/v1/buckets/web-share").status_code == 201
    data = sample(200_000)
    assert api.put("/api/v1/buckets/web-share/objects/report.pdf", content=data).status_code == 201
    page = web.sign_in()
    page.goto(cluster.url + "/ui/#/b/web-share/")
    _row(page, "report.pdf").get_by_role("button", name="Share report.pdf").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Password").fill("share-password-1")
    dialog.get_by_label("Download limit").fill("5")
    dialog.get_by_role("button", name="Create link").click()
    link = page.locator("#share-url").input_value()
    assert link.startswith(cluster.url + "/s/")
    page.get_by_role("dialog").get_by_role("button", name="Close").click()
    _nav(page, "Shares").click()
    page.get_by_role("button", name="Revoke link to report.pdf").wait_for()
    web.shot("shares")

    stranger = browser.new_context(accept_downloads=True)
    try:
        public = stranger.new_page()
        public.goto(link)
        refused = stranger.request.get(link, headers={"Accept": "application/octet-stream"})
        assert refused.status == 401
        assert "report.pdf" not in public.content()  # nothing about the file before the password
        public.get_by_label("Password").fill("wrong-password")
        public.get_by_role("button", name="Open").click()
        public.get_by_text("Wrong password, try again.").wait_for()
        public.get_by_label("Password").fill("share-password-1")
        public.get_by_role("button", name="Open").click()
        public.get_by_text("report.pdf · 200.0 kB").wait_for()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        public.screenshot(path=str(ARTIFACTS / "share-page.png"))
        with public.expect_download() as download:
            public.get_by_role("link", name="Download").click()
        assert download.value.suggested_filename == "report.pdf"
        assert _sha(Path(download.value.path()).read_bytes()) == _sha(data)
    finally:
        stranger.close()


def test_rename_delete_and_restore_a_version(web: Page, cluster: Cluster, api: httpx.Client) -> None:
    assert api.put("/api/v1/buckets/web-versions").status_code == 201
    assert api.put("/api/v1/buckets/web-versions/versioning", json={"status": "enabled"}).status_code == 200
    first, second = b"first version", b"second version!"
    assert api.put("/api/v1/buckets/web-versions/objects/notes.txt", content=first).status_code == 201
    assert api.put("/api/v1/buckets/web-versions/objects/notes.txt", content=second).status_code == 201
    assert api.put("/api/v1/buckets/web-versions/objects/old.txt", content=b"x").status_code == 201
    page = web.sign_in()
    page.goto(cluster.url + "/ui/#/b/web-versions/")

    _row(page, "old.txt").get_by_role("button", name="Rename old.txt").click()
    page.get_by_role("dialog").get_by_label("New key").fill("archive/new.txt")
    page.get_by_role("dialog").get_by_role("button", name="Rename").click()
    page.get_by_role("link", name="archive/", exact=True).wait_for()
    assert api.get("/api/v1/buckets/web-versions/objects/archive/new.txt").content == b"x"
    assert api.get("/api/v1/buckets/web-versions/objects/old.txt").status_code == 404

    _row(page, "notes.txt").get_by_role("button", name="Versions notes.txt").click()
    versions = page.locator("#versions tbody tr")
    versions.nth(1).wait_for()
    assert versions.count() == 2
    web.shot("versions")
    versions.nth(1).get_by_role("button", name="Restore").click()
    page.get_by_text("Version restored").wait_for()
    page.get_by_role("dialog").get_by_role("button", name="Close").click()
    assert api.get("/api/v1/buckets/web-versions/objects/notes.txt").content == first

    _row(page, "notes.txt").get_by_role("button", name="Delete notes.txt").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    _row(page, "notes.txt").wait_for(state="detached")
    assert api.get("/api/v1/buckets/web-versions/objects/notes.txt").status_code == 404


def _node(api: httpx.Client, node_id: int) -> dict[str, Any]:
    return next(n for n in api.get("/api/v1/nodes").json()["nodes"] if n["id"] == node_id)


def test_admin_switches_a_node_and_sees_fill_and_jobs(web: Page, api: httpx.Client) -> None:
    page = web.sign_in()
    _nav(page, "Admin").click()
    nodes = api.get("/api/v1/nodes").json()["nodes"]
    page.locator("#nodes tbody tr").nth(len(nodes) - 1).wait_for()
    assert page.get_by_role("meter", name="Fill of node").count() == len(nodes)
    assert page.locator("#jobs").is_visible()
    assert page.locator("#fill-spread").is_visible()
    web.shot("admin")
    node_id = nodes[0]["id"]
    switch = page.get_by_role("checkbox", name=f"Active node {node_id}", exact=True)
    switch.uncheck()
    page.get_by_text(f"Node {node_id}: active off").wait_for()
    assert _node(api, node_id)["active"] is False
    page.get_by_role("checkbox", name=f"Active node {node_id}", exact=True).check()
    page.get_by_text(f"Node {node_id}: active on").wait_for()
    assert _node(api, node_id)["active"] is True


def test_a_normal_user_is_refused_the_admin_console(web: Page, api: httpx.Client) -> None:
    reply = api.post("/api/v1/users", json={"name": "web-user", "password": USER_PASSWORD})
    assert reply.status_code == 201, reply.text
    page = web.sign_in("web-user", USER_PASSWORD)
    assert _nav(page, "Admin").count() == 0
    page.goto(web.url + "/ui/#/admin")
    page.locator("#admin-refused").wait_for()
    status = page.evaluate("() => fetch('/api/v1/nodes').then(r => r.status)")
    assert status == 403
    web.errors.clear()  # the refused fetch above is logged by the browser, on purpose
    web.shot("admin-refused")


def test_a_state_changing_request_without_the_csrf_token_is_refused(web: Page, api: httpx.Client) -> None:
    page = web.sign_in()
    script = """async (withToken) => {
        const token = document.cookie.split('; ').find(c => c.startsWith('cargohold_csrf=')).split('=')[1];
        const r = await fetch('/api/v1/buckets/' + (withToken ? 'csrf-ok' : 'csrf-no'), {
            method: 'PUT', headers: withToken ? {'X-CSRF-Token': token} : {}});
        return [r.status, await r.text()];
    }"""
    status, body = page.evaluate(script, False)
    assert status == 403
    assert json.loads(body)["code"] == "csrf_rejected"
    assert api.get("/api/v1/buckets/csrf-no").status_code == 404
    status, _ = page.evaluate(script, True)
    assert status == 201
    web.errors.clear()  # the refused request is logged by the browser, on purpose


def test_history_filters_and_a_phone_sized_screen(web: Page, api: httpx.Client) -> None:
    assert api.put("/api/v1/buckets/web-history").status_code == 201
    for i in range(3):
        assert api.put(f"/api/v1/buckets/web-history/objects/h{i}.txt", content=b"h").status_code == 201
    page = web.sign_in()
    _nav(page, "History").click()
    page.locator("#history tbody tr").first.wait_for()
    page.get_by_label("Bucket").fill("web-history")
    page.get_by_label("Action").fill("object.create")
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("#history tbody tr")
    page.wait_for_function("() => document.querySelectorAll('#history tbody tr').length === 3")
    assert sorted(rows.locator("td.name").all_inner_texts()) == [f"web-history/h{i}.txt" for i in range(3)]
    web.shot("history")
    # The keyboard starts at "Skip to content" and then the navigation; a phone-wide screen
    # needs no sideways scrolling.
    page.reload()
    page.locator("#history tbody tr").first.wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Files"
    page.set_viewport_size({"width": 390, "height": 800})
    _nav(page, "Files").click()
    page.locator("#listing, table").first.wait_for()
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    web.shot("buckets-phone")

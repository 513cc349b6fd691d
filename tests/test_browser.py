"""End to end in headless Chromium: a person adds CORTX S3 storages, syncs, labels, and reads the errors.

Label Studio with the plugin runs as a subprocess on a free port (``label_studio_cortx.devservers.ls_server``)
against moto over HTTPS with a private CA; Debian's ``chromium`` is driven by Playwright (its own browser
download is not used). The steps share one signed-in page and run in file order:

1. add a CORTX S3 source storage through the dialog (Check Connection succeeds);
2. sync it: the card shows the status and the task count, the Data Manager lists the tasks;
3. open a task: the image has real pixels, fetched through Label Studio, never from the S3 endpoint;
4. add a CORTX S3 target storage, submit an annotation: the object appears in the bucket;
5. a wrong secret key and an untrusted certificate each show their own message in the dialog;
6. a source whose dialog sets a sync interval is synced by the schedule, without the button.

Screenshots of steps 1-4 (and of the step 5 message) go to a temporary folder; set
``CORTX_SCREENSHOT_DIR=docs/images`` to refresh the user guide's pictures.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.utils.dateparse import parse_datetime

from label_studio_cortx.devservers import sample_data
from label_studio_cortx.devservers.ls_server import start_label_studio
from label_studio_cortx.devservers.moto_server import start_moto

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CORTX_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
BUCKET = "cortx-demo"
IMAGE_COUNT = 8
EMAIL = "admin@example.com"
PASSWORD = "e2e-Password-1"
TOKEN = "e2e-token-0123456789"


def _require_browser() -> None:
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing (install it with scripts/install-browser.sh)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "Playwright for Python is not installed (pip install -e '.[test]')"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests cannot run under CI: {problem}", pytrace=False)
        pytest.skip(problem)


# --- servers and data -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def endpoint():
    _require_browser()
    with start_moto(https=True) as s3:
        client = s3.client()
        client.create_bucket(Bucket=BUCKET)
        for image in sample_data.sample_images(IMAGE_COUNT):
            client.put_object(Bucket=BUCKET, Key=image.key, Body=image.body, ContentType=image.content_type)
        yield s3


@pytest.fixture(scope="module")
def label_studio(endpoint, tmp_path_factory):
    server = start_label_studio(
        data_dir=tmp_path_factory.mktemp("ls-e2e"),
        username=EMAIL,
        password=PASSWORD,
        token=TOKEN,
        trusted_endpoints=[endpoint.url],
        # Step 6 waits for the web process's scheduler thread: a tick every second instead of every 30.
        extra_env={"CORTX_SCHEDULER_TICK_SECONDS": "1"},
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def project(label_studio):
    api = label_studio.api()
    try:
        yield api.post(
            "/api/projects", json={"title": "Shapes on CORTX", "label_config": sample_data.LABEL_CONFIG}
        ).json()
    finally:
        api.close()


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory) -> Path:
    chosen = os.environ.get("CORTX_SCREENSHOT_DIR")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


class Session:
    """The signed-in page plus every URL it requested (to prove the browser never talks to the store)."""

    def __init__(self, page, base_url: str, failure_dir: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.requests: list[str] = []
        self.responses: list[tuple[str, int, str]] = []
        self.failure_dir = failure_dir
        page.on("request", lambda request: self.requests.append(request.url))
        page.on(
            "response",
            lambda response: self.responses.append(
                (response.url, response.status, response.headers.get("content-type", ""))
            ),
        )

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path)
        self.page.wait_for_load_state("networkidle")

    @contextlib.contextmanager
    def step(self, name: str):
        """Keep a screenshot of the page when a step fails."""
        try:
            yield
        except BaseException:
            path = self.failure_dir / f"failed-{name}.png"
            with contextlib.suppress(Exception):
                self.page.screenshot(path=str(path))
                print(f"screenshot of the failure: {path}")
            raise


@pytest.fixture(scope="module")
def session(browser, label_studio, project, tmp_path_factory):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    ui = Session(page, label_studio.url, tmp_path_factory.mktemp("failures"))
    with ui.step("sign-in"):
        ui.goto("/user/login/")
        page.fill("input[name=email]", EMAIL)
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(lambda url: "/user/login" not in url)
        page.wait_for_load_state("networkidle")
    yield ui
    context.close()


state: dict[str, object] = {}


def _needs(step: str) -> None:
    if not state.get(step):
        pytest.fail(f"needs step '{step}', which did not complete", pytrace=False)


# --- the storage dialog ------------------------------------------------------------------------------------
def _open_cortx_dialog(ui: Session, project_id: int, kind: str):
    """Settings > Cloud Storage > Add Source/Target Storage > Storage Type: CORTX S3."""
    page = ui.page
    ui.goto(f"/projects/{project_id}/settings/storage")
    page.get_by_role("button", name=f"Add {kind} Storage").click()
    dialog = page.locator(".lsf-modal-ls__content").first
    dialog.get_by_text(f"Connect {kind} Storage").wait_for()
    page.locator('[data-testid^="select-trigger-storage_type"]').click()
    page.locator('[data-testid="select-option-cortx"]').click()
    dialog.locator("input[name=s3_endpoint]").wait_for()
    return dialog


def _fill_connection(dialog, endpoint, *, title: str, prefix: str, secret: str | None = None, ca: str | None = None):
    dialog.locator("input[name=title]").fill(title)
    dialog.locator("input[name=bucket]").fill(BUCKET)
    dialog.locator("input[name=prefix]").fill(prefix)
    dialog.locator("input[name=s3_endpoint]").fill(endpoint.url)
    dialog.locator("input[name=region_name]").fill(endpoint.region)
    # The field is one line: pasting turns the PEM's line breaks into spaces, which the plugin repairs.
    dialog.locator("input[name=ca_bundle]").fill(endpoint.ca_pem if ca is None else ca)
    dialog.locator("input[name=aws_access_key_id]").fill(endpoint.access_key)
    dialog.locator("input[name=aws_secret_access_key]").fill(endpoint.secret_key if secret is None else secret)
    path_style = dialog.locator("input[type=checkbox][name=force_path_style]")
    if not path_style.is_checked():
        path_style.check(force=True)
    assert path_style.is_checked()


def _choose_files_import(page) -> None:
    page.locator('[data-testid^="select-trigger-use_blob_urls"]').click()
    page.locator('[data-testid="select-option-true"]').click()


def _check_connection(page) -> str:
    indicator = page.locator(".lsf-form-indicator")
    page.get_by_role("button", name="Test storage connection").click()
    indicator.filter(has_text="Successfully connected!").or_(indicator.filter(has_text="Connection failed")).wait_for()
    return indicator.inner_text()


def _screenshot(ui: Session, directory: Path, name: str, *, height: int | None = None) -> Path:
    """A docs picture at 1280 px wide; ``height`` grows the viewport for a dialog taller than 800 px."""
    page = ui.page
    if height:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
        time.sleep(0.3)
    path = directory / name
    page.screenshot(path=str(path))
    if height:
        page.set_viewport_size(VIEWPORT)
    return path


def _wait_for_editor(page) -> None:
    """The labeling view is idle: no loading overlay (it fades the editor and shows a striped bar)."""
    page.wait_for_function(
        "() => !document.querySelector('.lsf-label-view_loading, .lsf-label-view__waiting')"
        " && !!document.querySelector('.lsf-image img[alt=\"image\"]')"
    )
    page.wait_for_load_state("networkidle")


def _card(page, title: str):
    return page.locator(".lsf-card").filter(has=page.locator(".lsf-card__header", has_text=title))


def _card_value(card, term: str) -> str:
    return card.locator(f'dt:has-text("{term}") + dd').inner_text().strip()


def _wait_until_completed(ui: Session, card, project_id: int, timeout: float = 90) -> None:
    """Label Studio's storage card does not poll: reload the page until the card says Completed."""
    deadline = time.monotonic() + timeout
    while _card_value(card, "Status") != "Completed" and time.monotonic() < deadline:
        time.sleep(2)
        ui.goto(f"/projects/{project_id}/settings/storage")
    assert _card_value(card, "Status") == "Completed"


# --- 1. add the source storage -------------------------------------------------------------------------------
def test_1_add_cortx_source_storage(session, endpoint, project, screenshot_dir):
    page = session.page
    with session.step("1-add-source"):
        dialog = _open_cortx_dialog(session, project["id"], "Source")
        assert dialog.locator('[data-testid^="select-trigger-storage_type"]').inner_text().strip() == "CORTX S3"
        _fill_connection(dialog, endpoint, title="Shapes on CORTX", prefix="images")
        dialog.locator("input[name=regex_filter]").fill(r".*\.(png|jpe?g)$")
        _choose_files_import(page)
        assert not dialog.locator("input[type=checkbox][name=presign]").is_checked()  # proxy mode
        assert _check_connection(page) == "Successfully connected!"
        assert page.locator(".lsf-inline-error").count() == 0
        _screenshot(session, screenshot_dir, "01-add-cortx-source.png", height=1200)

        page.get_by_role("button", name="Add storage").click()
        dialog.wait_for(state="detached")
        card = _card(page, "Shapes on CORTX")
        card.wait_for()
        assert _card_value(card, "Type") == "CORTX S3"
    state["source"] = True


# --- 2. sync -----------------------------------------------------------------------------------------------
def test_2_sync_creates_tasks_listed_in_data_manager(session, project, screenshot_dir):
    _needs("source")
    page = session.page
    with session.step("2-sync"):
        card = _card(page, "Shapes on CORTX")
        card.get_by_role("button", name="Sync Storage").click()
        # A small sync answers with its final status; a slow machine may still show "In progress": reload.
        _wait_until_completed(session, card, project["id"])
        assert _card_value(card, "Tasks").startswith(f"{IMAGE_COUNT} ({IMAGE_COUNT} new)")
        _screenshot(session, screenshot_dir, "02-synced-storage.png")

        session.goto(f"/projects/{project['id']}/data")
        rows = page.locator(".lsf-table__row-wrapper")
        rows.first.wait_for()
        assert rows.count() == IMAGE_COUNT
        assert page.get_by_title("Total tasks in the project").inner_text() == str(IMAGE_COUNT)
        page.locator(".lsf-table__row-wrapper img").first.wait_for()
        page.wait_for_load_state("networkidle")
        _screenshot(session, screenshot_dir, "02b-data-manager.png")
    state["synced"] = True


# --- 3. the image comes through Label Studio -----------------------------------------------------------------
def test_3_task_image_is_proxied_through_label_studio(session, endpoint, screenshot_dir):
    _needs("synced")
    page = session.page
    with session.step("3-image"):
        first_request = len(session.requests)
        page.locator(".lsf-table__row-wrapper").first.click()
        image = page.locator('.lsf-image img[alt="image"]')
        image.wait_for()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        width, height = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert (width, height) == sample_data.SIZE
        source = image.get_attribute("src") or ""
        assert source.startswith(("blob:", session.base_url, "/tasks/")) and endpoint.url not in source, source
        # The bytes came from Label Studio's host (the editor turns them into a blob: URL), under a media link: the
        # browser is logged in by its session, so the task's URL is the plugin's /cortx/media/ link, served in
        # front of Label Studio's middleware (label_studio_cortx.media_gateway).
        proxied = [r for r in session.responses if "/cortx/media/" in r[0]]
        assert proxied and all(urlsplit(url).port == urlsplit(session.base_url).port for url, _, _ in proxied)
        assert any(status in (200, 206) and kind.startswith("image/") for _, status, kind in proxied), proxied
        page.wait_for_load_state("networkidle")
        _wait_for_editor(page)
        _screenshot(session, screenshot_dir, "03-labeling-image.png")

        assert session.requests[first_request:], "opening the task made no request"
        to_store = [url for url in session.requests if urlsplit(url).port == endpoint.port]
        assert to_store == [], f"the browser contacted the S3 endpoint: {to_store}"
    state["labeling"] = True


# --- 4. target storage and an annotation in the bucket ---------------------------------------------------------
def test_4_target_storage_receives_submitted_annotation(session, endpoint, project, screenshot_dir):
    _needs("labeling")
    page = session.page
    with session.step("4-target"):
        dialog = _open_cortx_dialog(session, project["id"], "Target")
        _fill_connection(dialog, endpoint, title="Annotations on CORTX", prefix="annotations")
        assert _check_connection(page) == "Successfully connected!"
        _screenshot(session, screenshot_dir, "04a-add-cortx-target.png", height=1000)
        page.get_by_role("button", name="Add storage").click()
        dialog.wait_for(state="detached")
        _card(page, "Annotations on CORTX").wait_for()

        session.goto(f"/projects/{project['id']}/data")
        page.locator(".lsf-table__row-wrapper").first.click()
        image = page.locator('.lsf-image img[alt="image"]')
        image.wait_for()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        # Image 1 has its circle in the lower left: draw a box around it, as a person would.
        page.locator(".lsf-label__text", has_text="Circle").first.click()
        box = image.bounding_box()
        x0, y0 = box["x"] + box["width"] * 0.26, box["y"] + box["height"] * 0.52
        x1, y1 = box["x"] + box["width"] * 0.61, box["y"] + box["height"] * 0.97
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
        page.mouse.move(x1, y1, steps=5)
        page.mouse.up()
        page.locator(".lsf-choices label", has_text="Light").click()
        with page.expect_response(lambda r: "/annotations" in r.url and r.request.method == "POST") as saved:
            page.get_by_role("button", name="Submit").click()
        assert saved.value.status == 201
        annotation_id = saved.value.json()["id"]
        page.get_by_text("Annotation saved successfully", exact=True).wait_for()
        _wait_for_editor(page)
        _screenshot(session, screenshot_dir, "04-target-and-annotation.png")

        key = f"annotations/{annotation_id}"
        client = endpoint.client()
        deadline = time.monotonic() + 20
        keys: list[str] = []
        while time.monotonic() < deadline:
            listing = client.list_objects_v2(Bucket=BUCKET, Prefix="annotations/")
            keys = [obj["Key"] for obj in listing.get("Contents", [])]
            if key in keys:
                break
            time.sleep(0.5)
        assert keys == [key]
        exported = json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        by_type = {item["type"]: item["value"] for item in exported["result"]}
        assert by_type["rectanglelabels"]["rectanglelabels"] == ["Circle"]
        assert by_type["choices"]["choices"] == ["Light"]
        assert exported["task"]["data"]["image"].startswith(f"s3://{BUCKET}/images/")

        # The target card counts what a sync wrote: sync it to see the annotation there too.
        session.goto(f"/projects/{project['id']}/settings/storage")
        target = _card(page, "Annotations on CORTX")
        target.get_by_role("button", name="Sync Storage").click()
        target.locator('dt:has-text("Annotations") + dd', has_text="1 (1 total)").wait_for()
        _screenshot(session, screenshot_dir, "04b-storage-cards.png")
    state["target"] = True


# --- 5. errors say what is wrong ----------------------------------------------------------------------------------
def _close_error_modal(page) -> None:
    """The form shows the error inline and Label Studio also opens it in a second modal: close that one."""
    second = page.locator(".lsf-modal-ls__content").nth(1)
    with contextlib.suppress(Exception):
        second.wait_for(timeout=5_000)
    if second.count():
        second.get_by_role("button", name="Close modal").click()
        second.wait_for(state="detached")


def test_5_wrong_secret_and_untrusted_certificate_messages(session, endpoint, project, screenshot_dir):
    page = session.page
    with session.step("5-errors"):
        dialog = _open_cortx_dialog(session, project["id"], "Source")
        _fill_connection(dialog, endpoint, title="Broken", prefix="images", secret="not-the-secret-key")
        _choose_files_import(page)
        assert _check_connection(page) == "Connection failed"
        inline = dialog.locator(".lsf-inline-error")
        message = inline.get_by_text("The secret access key is wrong for this access key ID")
        message.wait_for()
        assert message.is_visible()
        assert "Debugging info is not available" not in inline.inner_text()
        _close_error_modal(page)
        inline.scroll_into_view_if_needed()
        _screenshot(session, screenshot_dir, "05-check-connection-error.png")

        dialog.locator("input[name=aws_secret_access_key]").fill(endpoint.secret_key)
        dialog.locator("input[name=ca_bundle]").fill("")
        assert _check_connection(page) == "Connection failed"
        untrusted = inline.get_by_text(f"The TLS certificate of {endpoint.url} is not trusted")
        untrusted.wait_for()
        assert untrusted.is_visible()
        text = inline.inner_text()
        assert "paste the CA certificate" in text and "into 'CA bundle'" in text
        assert "secret access key is wrong" not in text  # the message was replaced, not appended
        _close_error_modal(page)
        dialog.get_by_role("button", name="Close modal").click()
        dialog.wait_for(state="detached")


# --- 6. a schedule set in the dialog ----------------------------------------------------------------------------
def test_6_schedule_set_in_the_dialog_syncs_without_the_button(session, endpoint, label_studio):
    """A source storage (a target syncs once when it is added, a Label Studio default) in a project of its own."""
    page = session.page
    api = label_studio.api()
    try:
        scheduled = api.post(
            "/api/projects", json={"title": "Scheduled shapes", "label_config": sample_data.LABEL_CONFIG}
        ).json()
        with session.step("6-schedule"):
            dialog = _open_cortx_dialog(session, scheduled["id"], "Source")
            _fill_connection(dialog, endpoint, title="Scheduled shapes", prefix="images")
            _choose_files_import(page)
            # Label Studio's counter field has no name attribute: found by its label.
            interval = dialog.locator("label", has_text="Sync automatically every").locator(
                "input[class*=counter__input]"
            )
            assert interval.count() == 1 and interval.input_value() == "0"
            interval.fill("5")
            assert interval.input_value() == "5"
            assert _check_connection(page) == "Successfully connected!"
            page.get_by_role("button", name="Add storage").click()
            dialog.wait_for(state="detached")
            card = _card(page, "Scheduled shapes")
            card.wait_for()

            # Never synced, so due at once: the web process's scheduler thread runs it at its next tick.
            _wait_until_completed(session, card, scheduled["id"])
            assert _card_value(card, "Tasks").startswith(f"{IMAGE_COUNT} ({IMAGE_COUNT} new)")

            (storage,) = api.get("/api/storages/cortx", params={"project": scheduled["id"]}).json()
            assert storage["sync_interval"] == 5
            assert storage["meta"]["trigger"] == "schedule"
            gap = parse_datetime(storage["next_sync_at"]) - parse_datetime(storage["sync_started_at"])
            assert gap == dt.timedelta(minutes=5)
            assert api.get(f"/api/projects/{scheduled['id']}").json()["task_number"] == IMAGE_COUNT
    finally:
        api.close()


def test_screenshots_were_written(screenshot_dir):
    """Steps 1-4 left their pictures (the docs' copies are refreshed with CORTX_SCREENSHOT_DIR=docs/images)."""
    _require_browser()
    _needs("target")
    for name in (
        "01-add-cortx-source.png",
        "02-synced-storage.png",
        "03-labeling-image.png",
        "04-target-and-annotation.png",
    ):
        path = screenshot_dir / name
        assert path.stat().st_size > 10_000, path
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""The API Lambda: every route through Mangum with v1 and v2 events, and every error status."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from classifier import api, service
from fastapi.testclient import TestClient
from PIL import Image

from scripts.invoke import LocalContext
from tests.conftest import EVENTS, IMGS, PUBLISHED, load_event, run_python
from tests.unit.test_core import png_header_only

CAT = (IMGS / "cat.png").read_bytes()


@pytest.fixture
def client(use_model: Path) -> Iterator[TestClient]:
    with TestClient(api.asgi) as c:
        yield c


def call(event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = api.handler(event, LocalContext())
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return response["statusCode"], json.loads(body) if body else {}, headers


def assert_prediction(body: dict[str, Any], manifest: Path) -> None:
    assert set(body) == {
        "category",
        "confidence",
        "unsure",
        "runner_up",
        "none_of_these",
        "probabilities",
        "model_version",
    }
    assert body["category"] in body["probabilities"] and len(body["probabilities"]) == 10
    assert body["confidence"] == max(body["probabilities"].values())
    threshold = json.loads(manifest.read_text())["inference"].get("unsure_below", 0.0)
    assert body["unsure"] is (body["confidence"] < threshold)
    assert body["runner_up"] in body["probabilities"] and body["runner_up"] != body["category"]
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert body["model_version"] == json.loads(manifest.read_text())["model_version"]


@pytest.mark.parametrize(
    "name",
    [
        "apigw-v2-multipart.json",
        "apigw-v2-raw-png.json",
        "apigw-v1-multipart.json",
        "apigw-v1-raw-png.json",
    ],
)
def test_predict_through_mangum(name: str, use_model: Path) -> None:
    status, body, headers = call(load_event(name))
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert_prediction(body, use_model)


def test_multipart_and_raw_body_give_the_same_answer(use_model: Path) -> None:
    assert (
        call(load_event("apigw-v2-multipart.json"))[1]
        == call(load_event("apigw-v2-raw-png.json"))[1]
    )


def test_health_through_mangum(use_model: Path) -> None:
    status, body, _ = call(load_event("apigw-v2-health.json"))
    assert status == 200
    assert body["model_loaded"] is True and body["runtime"].startswith("ai-edge-litert")
    assert body["model_version"] == json.loads(use_model.read_text())["model_version"]


def with_path(event: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    event = json.loads(json.dumps(event))
    event.pop("body", None)
    event["isBase64Encoded"] = False
    if event.get("version") == "2.0":
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["requestContext"]["http"]["method"] = method
    else:
        event["path"], event["httpMethod"] = path, method
        event["requestContext"]["path"] = f"/prod{path}"
    return event


@pytest.mark.parametrize("name", ["apigw-v2-health.json", "apigw-v1-raw-png.json"])
def test_model_route_returns_the_manifest(name: str, use_model: Path) -> None:
    status, body, _ = call(with_path(load_event(name), "GET", "/model"))
    assert status == 200
    from classifier.manifest import public

    assert body == public(json.loads(use_model.read_text()))  # no build machine's paths


def test_openapi_docs_work_behind_a_rest_api_stage(use_model: Path) -> None:
    status, spec, _ = call(with_path(load_event("apigw-v1-raw-png.json"), "GET", "/openapi.json"))
    assert status == 200
    assert {"/predict", "/predict/batch", "/health", "/model"} <= set(spec["paths"])
    assert spec["servers"] == [{"url": "/prod"}]
    response = api.handler(
        with_path(load_event("apigw-v1-raw-png.json"), "GET", "/docs"), LocalContext()
    )
    assert response["statusCode"] == 200
    assert "/prod/openapi.json" in response["body"]


def test_openapi_docs_work_behind_an_http_api_named_stage(use_model: Path) -> None:
    event = with_path(load_event("apigw-v2-health.json"), "GET", "/prod/docs")
    event["requestContext"]["stage"] = "prod"
    response = api.handler(event, LocalContext())
    assert response["statusCode"] == 200 and "/prod/openapi.json" in response["body"]


def test_openapi_documents_both_body_kinds(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/png", "image/jpeg"} <= set(content)
    assert client.get("/docs").status_code == 200


def test_batch_returns_one_result_per_file_in_order(client: TestClient) -> None:
    names = ["truck.png", "cat.png", "ship.png"]
    files = [("file", (n, (IMGS / n).read_bytes(), "image/png")) for n in names]
    files.insert(1, ("file", ("notes.txt", b"hello", "text/plain")))
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["filename"] for r in results] == ["truck.png", "notes.txt", "cat.png", "ship.png"]
    assert [r["status"] for r in results] == [200, 400, 200, 200]
    assert "not a decodable image" in results[1]["error"]
    single = client.post("/predict", files={"file": ("cat.png", CAT, "image/png")}).json()
    assert results[2]["prediction"] == single


def test_batch_of_more_than_32_files_is_413(client: TestClient) -> None:
    files = [("file", (f"{i}.png", CAT, "image/png")) for i in range(40)]
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 413
    assert "more than 32 files or fields sent; at most 32" in response.json()["detail"]


def test_more_than_1000_multipart_parts_is_413_not_400(client: TestClient) -> None:
    files = [("file", (f"{i}.png", b"x", "image/png")) for i in range(1001)]
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 413
    assert "at most 32" in response.json()["detail"]


def test_jpeg_raw_body_is_accepted(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.open(IMGS / "cat.png").save(buffer, "JPEG", quality=95)
    response = client.post(
        "/predict", content=buffer.getvalue(), headers={"content-type": "image/jpeg"}
    )
    assert response.status_code == 200


# --- errors: a clear JSON message, never a 500 -------------------------------------------------
def test_bytes_that_are_not_an_image_are_400(client: TestClient) -> None:
    response = client.post("/predict", files={"file": ("x.png", b"not an image", "image/png")})
    assert response.status_code == 400
    assert "not a decodable image" in response.json()["detail"]


def test_raw_body_that_is_not_an_image_is_400(client: TestClient) -> None:
    response = client.post("/predict", content=b"\x00" * 100, headers={"content-type": "image/png"})
    assert response.status_code == 400


def test_body_over_4_mib_is_413(client: TestClient) -> None:
    response = client.post(
        "/predict", content=b"\0" * (4 * 1024 * 1024 + 1), headers={"content-type": "image/png"}
    )
    assert response.status_code == 413
    assert "at most 4194304" in response.json()["detail"]


def test_body_over_4_mib_through_mangum_is_413(use_model: Path) -> None:
    event = load_event("apigw-v2-raw-png.json")
    event["body"] = base64.b64encode(b"\0" * (4 * 1024 * 1024 + 10)).decode()
    del event["headers"]["content-length"]
    assert call(event)[0] == 413


def test_image_over_25_megapixels_is_413(client: TestClient) -> None:
    response = client.post(
        "/predict", files={"file": ("big.png", png_header_only(6000, 5000), "image/png")}
    )
    assert response.status_code == 413
    assert "6000x5000 (30.0 MP)" in response.json()["detail"]


def test_other_content_type_is_415(client: TestClient) -> None:
    response = client.post("/predict", content=b"a,b", headers={"content-type": "text/csv"})
    assert response.status_code == 415
    assert "text/csv is not accepted" in response.json()["detail"]


def test_other_image_format_is_415(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, "GIF")
    response = client.post("/predict", files={"file": ("x.gif", buffer.getvalue(), "image/gif")})
    assert response.status_code == 415
    assert "GIF is not accepted" in response.json()["detail"]


def test_missing_file_part_is_422(client: TestClient) -> None:
    response = client.post("/predict", files={"image": ("cat.png", CAT, "image/png")})
    assert response.status_code == 422
    assert "`file`" in response.json()["detail"]


def test_broken_model_is_503_and_health_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODEL_URI", str(tmp_path / "missing" / "manifest.json"))
    service.reset()
    try:
        with TestClient(api.asgi) as c:
            response = c.post("/predict", content=CAT, headers={"content-type": "image/png"})
            assert response.status_code == 503
            assert "cannot read" in response.json()["detail"]
            health = c.get("/health")
            assert health.status_code == 503 and health.json()["model_loaded"] is False
    finally:
        service.reset()


def test_the_model_is_loaded_once_per_container(
    use_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = []
    original = service.load_model

    def counting(*args: Any, **kwargs: Any) -> Any:
        loads.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(service, "load_model", counting)
    for _ in range(3):
        assert call(load_event("apigw-v2-raw-png.json"))[0] == 200
    assert len(loads) == 1


def mangled(manifest: dict[str, Any], change: str) -> dict[str, Any]:
    data = json.loads(json.dumps(manifest))
    if change == "null inference":
        data["inference"] = None
    elif change == "no quantisation scale":
        del data["input"]["quantization"]["scale"]
    elif change == "flip_average as a string":
        data["inference"] = {"flip_average": "false"}
    elif change == "class names not a list":
        data["class_names"] = "cat"
    elif change == "a file entry without sha256":
        del data["files"]["model.tflite"]["sha256"]
    elif change == "not an object":
        data = ["a", "list"]  # type: ignore[assignment]
    return data


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("null inference", "inference"),
        ("no quantisation scale", "input.quantization.scale"),
        ("flip_average as a string", "inference.flip_average"),
        ("class names not a list", "class_names"),
        ("a file entry without sha256", "sha256"),
        ("not an object", "not a JSON object"),
    ],
)
def test_a_malformed_manifest_is_503_with_the_reason_never_500(
    change: str, named: str, served_manifest: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    good = json.loads(served_manifest.read_text())
    model = (served_manifest.parent / good["model_path"]).read_bytes()
    (folder / "model.tflite").write_bytes(model)
    bad = mangled({**good, "model_path": "model.tflite"}, change)
    (folder / "manifest.json").write_text(json.dumps(bad))
    monkeypatch.setenv("MODEL_URI", str(folder / "manifest.json"))
    service.reset()
    try:
        with TestClient(api.asgi, raise_server_exceptions=False) as c:
            response = c.post("/predict", content=CAT, headers={"content-type": "image/png"})
            assert response.status_code == 503, response.text
            assert named in response.json()["detail"]
            health = c.get("/health")
            assert health.status_code == 503 and named in health.json()["error"]
    finally:
        service.reset()


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MAX_BODY_BYTES", "abc", "MAX_BODY_BYTES='abc' is not a whole number"),
        ("MAX_IMAGE_PIXELS", "-5", "MAX_IMAGE_PIXELS=-5 is below its minimum"),
        ("TFLITE_NUM_THREADS", "two", "TFLITE_NUM_THREADS='two'"),
    ],
)
def test_a_bad_setting_is_503_with_its_name_never_500(
    name: str, value: str, says: str, use_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    service.reset()
    with TestClient(api.asgi, raise_server_exceptions=False) as c:
        response = c.post("/predict", content=CAT, headers={"content-type": "image/png"})
        assert response.status_code == 503, response.text
        assert says in response.json()["detail"]
        assert "misconfigured" in response.json()["detail"]
        health = c.get("/health")
        assert health.status_code == 503 and says in health.json()["error"]


def big_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (10, 200, 10)).save(out, "PNG")
    return out.getvalue()


def test_a_batch_over_the_pixel_budget_is_413_before_decoding(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_REQUEST_PIXELS", "1000000")
    service.settings.cache_clear()
    decoded = []
    monkeypatch.setattr(service.classifier(), "predict", lambda d: decoded.append(d))
    files = [("file", (f"{i}.png", big_png(600), "image/png")) for i in range(3)]
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 413
    assert "1.1 MP in all; at most 1 MP per request" in response.json()["detail"]
    assert decoded == []


def test_jpegs_count_at_the_scale_they_decode_at(client: TestClient) -> None:
    out = io.BytesIO()
    Image.new("RGB", (4000, 3000), (10, 10, 200)).save(out, "JPEG", quality=50)
    classifier = service.classifier()
    assert classifier.decode_cost(out.getvalue()) == 500 * 375  # 1/8 scale
    assert classifier.decode_cost(big_png(600)) == 600 * 600
    files = [("file", (f"{i}.jpg", out.getvalue(), "image/jpeg")) for i in range(8)]
    response = client.post("/predict/batch", files=files)  # 96 MP of JPEG, 1.5 MP to decode
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == [200] * 8


def test_the_model_route_reveals_no_path_of_the_build_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.conftest import PUBLISHED

    monkeypatch.setenv("MODEL_URI", str(PUBLISHED))
    service.reset()
    try:
        with TestClient(api.asgi) as c:
            body = c.get("/model").json()
    finally:
        service.reset()
    strings: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str):
            strings.append(value)

    walk(body)
    assert body["model_version"] and body["data"]["fingerprint_sha256"]
    assert not [s for s in strings if s.startswith("/") or "/work/" in s or "/home/" in s]
    assert body["data"]["source"].endswith("cifar10-jpeg")


def test_json_base64_gives_the_same_answer_as_the_raw_body(client: TestClient) -> None:
    raw = client.post("/predict", content=CAT, headers={"content-type": "image/png"}).json()
    encoded = base64.b64encode(CAT).decode()
    as_json = client.post("/predict", json={"image": encoded})
    assert as_json.status_code == 200 and as_json.json() == raw
    data_url = client.post("/predict", json={"image": f"data:image/png;base64,{encoded}"})
    assert data_url.json() == raw


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 400, "cannot be parsed"),
        (b'{"picture": "abc"}', 422, 'no "image" string'),
        (b'{"image": "***"}', 400, "not valid base64"),
        (b'{"image": "aGVsbG8="}', 400, "not a decodable image"),
    ],
)
def test_bad_json_bodies_get_their_own_status(
    client: TestClient, body: bytes, status: int, says: str
) -> None:
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status and says in response.json()["detail"]


def test_an_empty_file_part_is_400_as_documented(client: TestClient) -> None:
    response = client.post("/predict", files={"file": ("empty.png", b"", "image/png")})
    assert response.status_code == 400 and "empty" in response.json()["detail"]
    documented = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["responses"]
    assert "empty `file` part" in documented["400"]["description"]
    assert (
        "application/json"
        in client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]["content"]
    )


def test_routes_take_the_classifier_by_dependency_which_tests_can_replace() -> None:
    from classifier.core import Prediction
    from classifier.web.common import get_classifier

    class Fixed:
        image_size = 32

        def predict(self, data: bytes) -> Prediction:
            return Prediction("ship", 1.0, {"ship": 1.0}, model_version="injected")

        def decode_cost(self, data: bytes) -> int:
            return 1

    api.app.dependency_overrides[get_classifier] = Fixed
    try:
        with TestClient(api.asgi) as c:
            response = c.post("/predict", content=CAT, headers={"content-type": "image/png"})
    finally:
        api.app.dependency_overrides.clear()
    assert response.status_code == 200
    assert response.json()["model_version"] == "injected"


def emf_records(printed: str) -> list[dict[str, Any]]:
    """The CloudWatch EMF documents a handler printed."""
    return [json.loads(line) for line in printed.splitlines() if '"_aws"' in line]


def value(recorded: float | list[float]) -> float:
    """An EMF value: one number, or a list of one."""
    return recorded[0] if isinstance(recorded, list) else recorded


def test_the_api_emits_classification_metrics_by_model_version(
    use_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "cifar10-api")
    version = json.loads(use_model.read_text())["model_version"]
    capsys.readouterr()
    status, body, _ = call(load_event("apigw-v2-raw-png.json"))
    assert status == 200
    (record,) = emf_records(capsys.readouterr().out)
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Cifar10Classifier"
    assert set(directive["Dimensions"][0]) == {"service", "ModelVersion"}
    assert record["ModelVersion"] == version and record["service"] == "cifar10-api"
    names = {m["Name"] for m in directive["Metrics"]}
    category = f"Category_{body['category']}"
    assert {"ImagesClassified", "ClassifyLatency", "Confidence", category} <= names
    assert value(record["Confidence"]) == pytest.approx(body["confidence"])
    # Each answer counts 0 or 1 for doubt and novelty: the drift alarms' shares.
    assert value(record["Unsure"]) == float(body["unsure"])
    assert value(record["NoneOfThese"]) == float(body["none_of_these"])

    event = load_event("apigw-v2-raw-png.json")
    event["body"] = base64.b64encode(b"\x89PNG\r\n\x1a\nnot really").decode()
    status, _, _ = call(event)
    assert status == 400
    (record,) = emf_records(capsys.readouterr().out)
    assert value(record["ImagesRejected"]) == 1.0 and record["ModelVersion"] == version
    assert "ImagesClassified" not in record


def test_no_metrics_accumulate_outside_lambda(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert client.post("/predict", content=CAT, headers={"content-type": "image/png"}).is_success
    from classifier.web.common import telemetry

    assert not telemetry.metric_set


def test_image_work_runs_inline_under_lambda_and_in_the_thread_pool_under_a_server(
    use_model: Path, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda gives a process one request at a time: a thread hop there only adds latency."""
    import asyncio

    from classifier.web import predict

    on_event_loop: list[bool] = []
    real = predict._predict_one

    def recorded(*args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            on_event_loop.append(True)
        except RuntimeError:  # a worker thread has no running loop
            on_event_loop.append(False)
        return real(*args)

    monkeypatch.setattr(predict, "_predict_one", recorded)
    status, _, _ = call(load_event("apigw-v2-multipart.json"))  # through Mangum
    assert status == 200 and on_event_loop == [True]
    response = client.post("/predict", files={"file": ("cat.png", CAT, "image/png")})
    assert response.status_code == 200 and on_event_loop == [True, False]


def test_every_status_a_route_answers_to_bad_input_is_in_its_openapi_schema(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fuzzer's first tries at each operation: wrong types, broken JSON, empty and huge
    bodies, no model. Whatever status comes back must be documented for that operation."""
    from classifier import service

    schema = client.get("/openapi.json").json()["paths"]
    png = (IMGS / "cat.png").read_bytes()
    bodies: list[dict[str, Any]] = [
        {},
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        {"json": {"image": 3, "content_type": 4}},
        {"json": {"image": "!!notbase64"}},
        {"content": b"\x00" * 100, "headers": {"content-type": "image/png"}},
        {"content": b"hello", "headers": {"content-type": "text/plain"}},
        {"content": png, "headers": {"content-type": "image/png"}},
        {"files": {"nope": ("a.png", png)}},
        {"content": b"x" * (5 * 1024 * 1024), "headers": {"content-type": "image/png"}},
    ]
    undocumented = []
    for broken_model in (False, True):
        if broken_model:
            monkeypatch.setenv("MODEL_URI", "/nowhere/manifest.json")
            service.reset()
        for path, operations in schema.items():
            url = path.replace("{upload_id}", "x" * 32)
            for method, operation in operations.items():
                for body in bodies if method == "post" else [{}]:
                    status = client.request(method.upper(), url, **body).status_code
                    if str(status) not in operation["responses"]:
                        undocumented.append(f"{method.upper()} {path} -> {status} ({body})"[:160])
    assert not undocumented, undocumented


def test_a_cold_start_imports_neither_pydantic_v1_nor_other_routers_nor_powertools() -> None:
    """A cold /predict imports only what it needs: classifier/web/__init__.py keeps FastAPI's
    pydantic.v1 checks from importing it (about 45 ms of each Lambda cold start; a FastAPI
    release that undoes that fails here), the other routers are built on their first request,
    and logs and metrics are written without Powertools. Then /review is served all the same."""
    code = (
        "import json, sys\n"
        "from classifier.api import handler\n"
        "from scripts.invoke import LocalContext\n"
        f"event = json.load(open({str(EVENTS / 'apigw-v2-multipart.json')!r}))\n"
        "assert handler(event, LocalContext())['statusCode'] == 200\n"
        "print(sorted(m for m in ('pydantic.v1', 'classifier.web.review', 'classifier.web.status',"
        " 'classifier.web.uploads', 'aws_lambda_powertools') if m in sys.modules))\n"
        "event = {**event, 'rawPath': '/review', 'body': '', 'isBase64Encoded': False}\n"
        "event['requestContext'] = {**event['requestContext'],"
        " 'http': {**event['requestContext']['http'], 'method': 'GET', 'path': '/review'}}\n"
        "print(handler(event, LocalContext())['statusCode'])\n"
    )
    done = run_python("-c", code, **{"MODEL_URI": str(PUBLISHED)})
    assert done.returncode == 0, done.stderr[-2000:]
    *_, imported, review_status = done.stdout.strip().splitlines()
    assert imported == "[]"
    assert review_status == "200"


def test_each_lazy_router_is_reached_by_every_path_it_serves_and_no_other() -> None:
    """A route added to a lazy router outside its listed paths would answer 404 until something
    else built that router: every route's path leads to the router that serves it."""
    import importlib

    from classifier import api

    for name in api.LAZY_ROUTERS:
        paths = {route.path for route in importlib.import_module(name).router.routes}
        assert paths and {api.lazy_router_for(path) for path in paths} == {name}, name
    for router in (api.page.router, api.predict.router):
        assert all(api.lazy_router_for(route.path) is None for route in router.routes)

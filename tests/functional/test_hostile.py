"""What a stranger can send: no body, header or path makes a 5xx, and each refusal names why.

The defects found by trying (issue 35) are explicit examples; Hypothesis then throws a fixed
number of generated hostile bodies (deep and odd JSON, broken multipart, raw bytes) and headers
at every route, derandomised so every run tries the same ones.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from classifier import contract
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import IMGS

BUCKET = "hostile-bucket"
TOKEN = "hostile-reviewer-token"
ENV = {
    "UPLOADS_BUCKET": BUCKET,
    "REVIEW_BUCKET": BUCKET,
    "REVIEWER_TOKEN": TOKEN,
    "CAPTURE": "unsure",
}
JSON = {"content-type": "application/json"}
DEEP_LIST = b"[" * 5000 + b"]" * 5000  # 10 KB; 2 KB of it is enough for json's recursion limit
DEEP_IMAGE = b'{"image":' * 2000 + b'"x"' + b"}" * 2000
ITEM = "0000000000000abcdef01"
ROUTES = [
    ("POST", "/predict"),
    ("POST", "/predict/batch"),
    ("POST", "/uploads"),
    ("POST", f"/review/items/{ITEM}"),
    ("GET", "/review/items"),
    ("GET", "/results/" + "A" * 32),
    ("GET", "/"),
    ("GET", "/review"),
]


@pytest.mark.parametrize("path", ["/predict", "/uploads"])
@pytest.mark.parametrize("body", [DEEP_LIST, DEEP_IMAGE], ids=["lists", "image-keys"])
def test_deeply_nested_json_is_a_400_naming_the_depth(
    client: TestClient, path: str, body: bytes
) -> None:
    response = client.post(path, content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert "nested too deeply" in response.json()["detail"]


def test_a_lone_surrogate_is_refused_with_an_answer_that_can_be_encoded(
    client: TestClient,
) -> None:
    response = client.post("/uploads", content=b'{"content_type": "\\ud800"}', headers=JSON)
    assert response.status_code == 415
    assert "\\ud800" in response.json()["detail"]  # quoted as an escape, not as itself


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"image": "a", "image": "b"}', "'image' twice"),
        (b'{"image": NaN}', "NaN"),
        (b'{"image": ' + b"9" * 5000 + b"}", "cannot be parsed"),
        (b'\xff\xfe{"image": 1}', "cannot be parsed"),
    ],
    ids=["duplicate-key", "nan", "huge-number", "not-utf8"],
)
def test_json_that_is_not_plain_json_is_a_400_naming_what(
    client: TestClient, body: bytes, named: str
) -> None:
    response = client.post("/predict", content=body, headers=JSON)
    assert response.status_code == 400 and named in response.json()["detail"]


def test_a_content_length_of_non_ascii_digits_is_no_500(client: TestClient) -> None:
    """API Gateway passes headers as sent: "²" is a digit to str.isdigit, not to int()."""
    from classifier import api

    from scripts.invoke import LocalContext
    from tests.conftest import load_event

    event = load_event("apigw-v2-multipart.json")
    event["headers"] = {"content-type": "image/png", "content-length": "²"}
    event["body"] = base64.b64encode((IMGS / "cat.png").read_bytes()).decode()
    event["isBase64Encoded"] = True
    assert api.handler(event, LocalContext())["statusCode"] == 200


def test_every_answer_carries_the_security_headers(client: TestClient) -> None:
    for method, path in ROUTES:
        response = client.request(method, path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "no-referrer", path
        policy = dict(
            d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";")
        )
        assert policy["frame-ancestors"] == "'none'", path
        assert "'unsafe-inline'" not in policy.get("script-src", policy["default-src"]), path


def test_the_pages_scripts_are_allowed_by_hash_only(client: TestClient) -> None:
    from classifier.web.headers import INLINE, digest

    for path in ("/", "/review"):
        response = client.get(path)
        policy = response.headers["content-security-policy"]
        scripts = [body for kind, body in INLINE.findall(response.text) if kind == "script"]
        assert scripts, path
        assert all(digest(body) in policy for body in scripts), path
        assert "unsafe" not in policy, path


def test_the_api_docs_load_swagger_ui_pinned_by_integrity(client: TestClient) -> None:
    from classifier.api import SWAGGER_UI, SWAGGER_UI_FILES

    html = client.get("/docs").text
    for name, integrity in SWAGGER_UI_FILES.items():
        assert f'"{SWAGGER_UI}{name}" integrity="{integrity}"' in html
    assert "@5/" not in html  # no floating major version


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(st.characters(), max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["image", "content_type", "label", "x"]), children)
    ),
    max_leaves=20,
)
BODIES = st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from(
        [
            b"--x\r\nContent-Disposition: form-data; name=file; filename=a\r\n\r\nabc",
            b"--x--",
            b"",
            b'{"image": "data:,"}',
            b'{"label": "\\udfff"}',
        ]
    ),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "multipart/form-data; boundary=x",
        "multipart/form-data",
        "image/png",
        "image/jpeg",
        "text/plain",
        "application/json; charset=utf-16",
        "",
    ]
)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


# Each defect found by trying (issue 35), tried first on every run.
DEFECTS = [
    (("POST", "/predict"), DEEP_LIST, ""),
    (("POST", "/uploads"), DEEP_IMAGE, ""),
    (("POST", "/uploads"), b'{"content_type": "\\ud800"}', ""),
    (("POST", f"/review/items/{ITEM}"), DEEP_LIST, f"Bearer {TOKEN}"),
]


def with_defects(test: Any) -> Any:
    for route, body, authorization in DEFECTS:
        test = example(
            route=route,
            body=body,
            media="application/json",
            authorization=authorization,
            length=None,
        )(test)
    return test


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(ROUTES),
    body=BODIES,
    media=CONTENT_TYPES,
    authorization=st.sampled_from(["", f"Bearer {TOKEN}", "Bearer x", "Basic x"]),
    length=st.one_of(st.none(), HEADER_TEXT),
)
@with_defects
def test_no_body_header_or_route_makes_a_5xx(
    client: TestClient,
    route: tuple[str, str],
    body: bytes,
    media: str,
    authorization: str,
    length: str | None,
) -> None:
    method, path = route
    headers = {"content-type": media, "authorization": authorization}
    if length is not None:
        headers["content-length"] = length
    try:
        response = client.request(method, path, content=body, headers=headers)
    except Exception as exc:  # the test client refusing to send a header: not the server's
        pytest.skip(f"not sendable: {exc}")
    assert response.status_code < 500, (route, body[:80], response.text[:200])
    if response.status_code >= 400:
        assert response.json()["detail"]  # every refusal says why


def test_a_failing_s3_is_a_503_with_retry_after_on_every_route_that_reads_it(
    client: TestClient, s3: Any
) -> None:
    s3.delete_bucket(Bucket=BUCKET)  # every S3 call now fails (NoSuchBucket)
    reviewer = {"authorization": f"Bearer {TOKEN}"}
    for method, path, body in [
        ("GET", "/review/items", None),
        ("POST", f"/review/items/{ITEM}", {"label": "cat"}),
        ("GET", "/results/" + "A" * 32, None),
    ]:
        response = client.request(method, path, json=body, headers=reviewer)
        assert response.status_code == 503, (path, response.text)
        assert int(response.headers["retry-after"]) > 0
        assert "try again" in response.json()["detail"]


def test_nothing_a_stranger_sends_writes_training_data(client: TestClient, s3: Any) -> None:
    for body in (b'{"label": "cat"}', DEEP_LIST):
        client.post(f"/review/items/{ITEM}", content=body, headers=JSON)
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=contract.LABELS_PREFIX)
    assert listing.get("KeyCount", 0) == 0

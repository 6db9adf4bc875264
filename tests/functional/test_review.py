"""Capture, review and labels against moto's S3: the feedback loop's store and its API."""

from __future__ import annotations

import base64
import io
import json
import threading
from typing import Any

import boto3
import pytest
from classifier import api, capture, contract, service
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import IMGS

BUCKET = "feedback-bucket"
TOKEN = "s3cret-reviewer-token"
REVIEWER = {"authorization": f"Bearer {TOKEN}"}
ENV = {"REVIEW_BUCKET": BUCKET, "REVIEWER_TOKEN": TOKEN, "CAPTURE": "all"}


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB").tobytes()


def keys(s3: Any, prefix: str = "") -> list[str]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def predict(client: TestClient, name: str = "cat.png") -> dict[str, Any]:
    response = client.post("/predict", files={"file": (name, (IMGS / name).read_bytes())})
    assert response.status_code == 200, response.text
    return dict(response.json())


def captured(client: TestClient) -> dict[str, Any]:
    """One image classified, and the review item it left (the only one pending)."""
    predict(client)
    (item,) = client.get("/review/items", headers=REVIEWER).json()["items"]
    return dict(item)


def test_the_api_captures_the_bytes_it_classified_with_its_answer(
    client: TestClient, s3: Any
) -> None:
    answer = predict(client)
    (item_key,) = keys(s3, contract.REVIEW_ITEMS_PREFIX)
    item = json.loads(s3.get_object(Bucket=BUCKET, Key=item_key)["Body"].read())
    assert item["answer"]["category"] == answer["category"]
    assert item["answer"]["runner_up"] == answer["runner_up"]
    assert item["answer"]["probabilities"] == answer["probabilities"]
    assert item["model_version"] == answer["model_version"] and item["captured_at"]
    stored = s3.get_object(Bucket=item["image"]["bucket"], Key=item["image"]["key"])
    assert pixels(stored["Body"].read()) == pixels((IMGS / "cat.png").read_bytes())
    assert item["image"]["key"].startswith(contract.REVIEW_IMAGES_PREFIX)


def test_capture_none_keeps_nothing_and_unsure_keeps_only_doubtful_answers(
    client: TestClient, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPTURE", "none")
    service.settings.cache_clear()
    predict(client)
    assert keys(s3) == []
    monkeypatch.setenv("CAPTURE", "unsure")
    service.settings.cache_clear()
    answer = predict(client)  # the sample cat is a confident answer
    assert not answer["unsure"] and not answer["none_of_these"]
    assert keys(s3) == []


def test_a_capture_failure_still_answers_and_is_counted(
    client: TestClient, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[str] = []
    from classifier.web import common

    monkeypatch.setattr(common.telemetry, "count", counted.append)
    s3.delete_bucket(Bucket=BUCKET)  # every capture write now fails
    answer = predict(client)
    assert answer["category"]
    assert counted == [contract.METRIC_CAPTURE_FAILED]
    calls: list[str] = []
    monkeypatch.setattr(capture.review, "capture", lambda *a, **k: calls.append("s3"))
    assert predict(client)["category"]  # the next answer does not wait on a failing S3 again
    assert calls == [] and counted == [contract.METRIC_CAPTURE_FAILED] * 2


def test_items_are_listed_oldest_first_with_image_links_and_paged(
    client: TestClient, s3: Any
) -> None:
    for name in ("cat.png", "dog.png", "ship.png"):
        predict(client, name)
    first = client.get("/review/items?limit=2", headers=REVIEWER).json()
    assert [i["filename"] for i in first["items"]] == ["cat.png", "dog.png"]
    second = client.get(f"/review/items?limit=2&after={first['next']}", headers=REVIEWER).json()
    assert [i["filename"] for i in second["items"]] == ["ship.png"] and second["next"] is None
    url = first["items"][0]["image_url"]
    assert (BUCKET in url and "Signature" in url) or "X-Amz-Signature" in url


def test_a_label_copies_the_image_under_its_label_with_who_and_what_the_model_said(
    client: TestClient, s3: Any
) -> None:
    item = captured(client)
    response = client.post(f"/review/items/{item['id']}", json={"label": "dog"}, headers=REVIEWER)
    assert response.status_code == 200, response.text
    key = response.json()["label_key"]
    assert key == f"{contract.LABELS_PREFIX}dog/{item['id']}.png"
    copied = s3.get_object(Bucket=BUCKET, Key=key)
    assert pixels(copied["Body"].read()) == pixels((IMGS / "cat.png").read_bytes())
    meta = copied["Metadata"]
    assert meta["reviewer"] == "token:reviewer" and meta["labelled-at"]
    assert meta["model-said"].startswith(item["answer"]["category"])
    assert meta["model-version"] == item["model_version"]
    assert client.get("/review/items", headers=REVIEWER).json()["items"] == []  # no longer pending


def test_none_of_these_is_a_label_and_others_are_refused_naming_the_categories(
    client: TestClient, s3: Any
) -> None:
    item = captured(client)
    refused = client.post(f"/review/items/{item['id']}", json={"label": "dragon"}, headers=REVIEWER)
    assert refused.status_code == 422
    assert "'dragon'" in refused.json()["detail"] and "cat" in refused.json()["detail"]
    assert keys(s3, contract.LABELS_PREFIX) == []
    ok = client.post(f"/review/items/{item['id']}", json={"label": "none"}, headers=REVIEWER)
    assert ok.status_code == 200 and ok.json()["label_key"].startswith("labels/none/")


def test_an_unknown_item_is_404_and_a_second_label_409_with_nothing_written_twice(
    client: TestClient, s3: Any
) -> None:
    assert (
        client.post(
            "/review/items/0000000000000abcdef01", json={"label": "cat"}, headers=REVIEWER
        ).status_code
        == 404
    )
    item = captured(client)
    first = client.post(f"/review/items/{item['id']}", json={"label": "cat"}, headers=REVIEWER)
    second = client.post(f"/review/items/{item['id']}", json={"label": "dog"}, headers=REVIEWER)
    assert (first.status_code, second.status_code) == (200, 409)
    assert "'cat'" in second.json()["detail"]
    assert keys(s3, contract.LABELS_PREFIX) == [first.json()["label_key"]]


def test_two_reviewers_at_once_one_wins_one_is_told(client: TestClient, s3: Any) -> None:
    item = captured(client)
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def label(name: str) -> None:
        barrier.wait()
        response = client.post(
            f"/review/items/{item['id']}", json={"label": name}, headers=REVIEWER
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=label, args=(n,)) for n in ("cat", "dog")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 409]
    (written,) = keys(s3, contract.LABELS_PREFIX)
    claim = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"{contract.REVIEW_LABELLED_PREFIX}{item['id']}.json")[
            "Body"
        ].read()
    )
    assert written == claim["label_key"]  # the winner's label, once


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}]
)
def test_without_the_reviewer_token_review_is_refused_and_writes_nothing(
    client: TestClient, s3: Any, headers: dict[str, str]
) -> None:
    predict(client)
    (item_key,) = keys(s3, contract.REVIEW_ITEMS_PREFIX)
    item_id = item_key.removeprefix(contract.REVIEW_ITEMS_PREFIX).removesuffix(".json")
    listed = client.get("/review/items", headers=headers)
    posted = client.post(f"/review/items/{item_id}", json={"label": "cat"}, headers=headers)
    assert listed.status_code in (401, 403) and posted.status_code in (401, 403)
    assert (
        keys(s3, contract.LABELS_PREFIX) == [] and keys(s3, contract.REVIEW_LABELLED_PREFIX) == []
    )


def lambda_event(
    path: str, method: str, body: dict[str, Any] | None, authorizer: dict[str, Any] | None
) -> dict[str, Any]:
    from tests.conftest import load_event

    event = load_event("apigw-v2-multipart.json")
    event["rawPath"] = path
    event["rawQueryString"] = ""
    event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["headers"] = {"content-type": "application/json"}
    event["body"] = base64.b64encode(json.dumps(body or {}).encode()).decode()
    event["isBase64Encoded"] = True
    event["requestContext"].pop("authorizer", None)
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    return event


def call(event: dict[str, Any]) -> int:
    from scripts.invoke import LocalContext

    return int(api.handler(event, LocalContext())["statusCode"])


@pytest.mark.parametrize(
    ("mode", "authorizer", "expected"),
    [
        ("jwt", None, 401),
        ("jwt", {"jwt": {"claims": {"sub": "u1", "scope": "openid profile"}}}, 403),
        ("jwt", {"jwt": {"claims": {"sub": "u1", "scope": "openid review"}}}, 200),
        ("jwt", {"jwt": {"claims": {"sub": "u1", "cognito:groups": "[reviewers]"}}}, 403),
        ("iam", None, 401),
        ("iam", {"iam": {"userArn": "arn:aws:iam::123456789012:user/reviewer"}}, 200),
    ],
)
def test_each_auth_mode_refuses_a_request_without_a_reviewer_credential(
    s3: Any,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    authorizer: dict[str, Any] | None,
    expected: int,
) -> None:
    monkeypatch.setenv("API_AUTH", mode)
    service.settings.cache_clear()
    with TestClient(api.asgi) as c:
        predict(c)
    (item_key,) = keys(s3, contract.REVIEW_ITEMS_PREFIX)
    item_id = item_key.removeprefix(contract.REVIEW_ITEMS_PREFIX).removesuffix(".json")
    status = call(lambda_event(f"/review/items/{item_id}", "POST", {"label": "cat"}, authorizer))
    assert status == expected
    written = keys(s3, contract.LABELS_PREFIX)
    assert bool(written) is (expected == 200)


def test_with_auth_none_the_token_comes_from_secrets_manager(
    client: TestClient, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    arn = secrets.create_secret(Name="reviewer", SecretString=json.dumps({"token": "from-sm"}))[
        "ARN"
    ]
    monkeypatch.delenv("REVIEWER_TOKEN")
    monkeypatch.setenv("REVIEWER_TOKEN_SECRET", arn)
    service.reset()
    from classifier.web import review

    review._secret_tokens.cache_clear()
    assert (
        client.get("/review/items", headers={"authorization": "Bearer from-sm"}).status_code == 200
    )
    assert client.get("/review/items", headers=REVIEWER).status_code == 403


def test_the_review_routes_are_in_the_openapi_schema_with_their_statuses(
    client: TestClient,
) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"401", "403", "503"} <= set(paths["/review/items"]["get"]["responses"])
    assert {"401", "403", "404", "409", "410", "422"} <= set(
        paths["/review/items/{item_id}"]["post"]["responses"]
    )


def test_a_stranger_learns_nothing_from_a_malformed_body_only_401(
    client: TestClient, s3: Any
) -> None:
    response = client.post(
        "/review/items/0000000000000abcdef01",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 401
    bad = client.post(
        "/review/items/0000000000000abcdef01",
        content=b"{not json",
        headers={"content-type": "application/json", **REVIEWER},
    )
    assert bad.status_code == 422 and "label" in bad.json()["detail"]

"""Capture, review and labels against moto's S3: the feedback loop's store and its API."""

from __future__ import annotations

import base64
import hashlib
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
    monkeypatch.setattr(capture.review_store, "capture", lambda *a, **k: calls.append("s3"))
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


def noise_png(seed: int, side: int = 32) -> bytes:
    import numpy as np

    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def counted_metrics(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from classifier.web import common

    counted: list[str] = []
    monkeypatch.setattr(common.telemetry, "count", counted.append)
    return counted


def test_the_same_image_sent_again_counts_but_adds_no_item(
    client: TestClient, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = counted_metrics(monkeypatch)
    for _ in range(5):
        predict(client)
    assert len(keys(s3, contract.REVIEW_ITEMS_PREFIX)) == 1
    assert counted.count(contract.METRIC_CAPTURED) == 1
    assert counted.count(contract.METRIC_CAPTURE_REPEATS) == 4


def test_a_burst_keeps_at_most_the_hours_bound_and_counts_the_rest(
    client: TestClient, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPTURE_PER_HOUR", "5")
    service.settings.cache_clear()
    counted = counted_metrics(monkeypatch)
    files = [("file", (f"noise{i}.png", noise_png(i))) for i in range(32)]
    assert client.post("/predict/batch", files=files).status_code == 200
    assert len(keys(s3, contract.REVIEW_ITEMS_PREFIX)) == 5
    assert counted.count(contract.METRIC_CAPTURE_LIMITED) == 27
    # Refused images left no "seen" mark: the next hour may keep them.
    assert len(keys(s3, contract.REVIEW_SEEN_PREFIX)) == 5


def test_containers_racing_for_the_last_places_never_pass_the_bound(s3: Any) -> None:
    """Eight writers at once, as eight containers would: S3's conditional writes are atomic,
    which moto's are not, so each put is made atomic here as S3 makes it."""
    from classifier import review_store

    lock = threading.Lock()
    put = s3.put_object

    def atomic_put(**kwargs: Any) -> Any:
        with lock:
            return put(**kwargs)

    clients = []
    for _ in range(8):
        c = boto3.client("s3", region_name="us-east-1")
        original = c.put_object
        c.put_object = lambda original=original, **kw: atomic(original, **kw)
        clients.append(c)

    def atomic(original: Any, **kwargs: Any) -> Any:
        with lock:
            return original(**kwargs)

    assert atomic_put  # the same lock guards every client's puts
    barrier = threading.Barrier(8)
    taken: list[bool] = []

    def take(c: Any) -> None:
        barrier.wait()
        taken.extend(review_store._take_quota(c, BUCKET, 3) for _ in range(2))

    threads = [threading.Thread(target=take, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert taken.count(True) == 3  # 16 tries, 3 places: never more, and none lost
    count = json.loads(s3.get_object(Bucket=BUCKET, Key=review_store.quota_key())["Body"].read())
    assert count == {"taken": 3}


def gps_jpeg() -> bytes:
    img = Image.open(IMGS / "cat.png").convert("RGB").resize((640, 480))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}
    out = io.BytesIO()
    img.save(out, format="JPEG", exif=exif)
    assert Image.open(io.BytesIO(out.getvalue())).getexif().get_ifd(0x8825)  # it has GPS
    return out.getvalue()


def metadata_of(data: bytes) -> dict[str, Any]:
    with Image.open(io.BytesIO(data)) as img:
        return {
            "exif": dict(img.getexif()),
            "info": {
                k: v for k, v in img.info.items() if k in ("exif", "icc_profile", "xmp", "comment")
            },
            "size": img.size,
        }


def test_kept_and_labelled_copies_carry_no_exif_and_are_bounded_in_size(
    client: TestClient, s3: Any
) -> None:
    from classifier.core import KEPT_IMAGE_SIDE

    photo = gps_jpeg()
    response = client.post("/predict", files={"file": ("IMG_0042.JPG", photo, "image/jpeg")})
    assert response.status_code == 200
    (item,) = client.get("/review/items", headers=REVIEWER).json()["items"]
    record = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"{contract.REVIEW_ITEMS_PREFIX}{item['id']}.json")[
            "Body"
        ].read()
    )
    kept = s3.get_object(Bucket=BUCKET, Key=record["image"]["key"])["Body"].read()
    labelled = client.post(f"/review/items/{item['id']}", json={"label": "cat"}, headers=REVIEWER)
    copy = s3.get_object(Bucket=BUCKET, Key=labelled.json()["label_key"])["Body"].read()
    for data in (kept, copy):
        meta = metadata_of(data)
        assert meta["exif"] == {} and meta["info"] == {}
        assert max(meta["size"]) == KEPT_IMAGE_SIDE  # 640x480 reduced, aspect kept
    assert b"PhoneMaker" not in kept and record["sha256"] != hashlib.sha256(kept).hexdigest()


def test_the_drop_folders_labelled_copy_carries_no_exif_and_the_upload_stays_as_sent(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from classifier import review_store
    from classifier.upload_classifier import handler

    from tests.conftest import load_event

    photo = gps_jpeg()
    s3.put_object(Bucket=BUCKET, Key="uploads/IMG_0042.JPG", Body=photo)
    event = load_event("sqs-s3-put.json")
    notification = json.loads(event["Records"][0]["body"])
    notification["Records"][0]["s3"]["bucket"]["name"] = BUCKET
    notification["Records"][0]["s3"]["object"]["key"] = "uploads/IMG_0042.JPG"
    notification["Records"][0]["s3"]["object"].pop("versionId", None)
    notification["Records"][0]["s3"]["object"].pop("eTag", None)
    event["Records"] = [{**event["Records"][0], "body": json.dumps(notification)}]
    from scripts.invoke import LocalContext

    handler(event, LocalContext())
    page = review_store.pending(s3, BUCKET, limit=5)
    (item,) = page.items
    assert item["upload"]["key"] == "uploads/IMG_0042.JPG"
    claim = review_store.label(s3, BUCKET, item["id"], "cat", "token:alice")
    copy = s3.get_object(Bucket=BUCKET, Key=claim["label_key"])["Body"].read()
    assert metadata_of(copy)["exif"] == {}
    original = s3.get_object(Bucket=BUCKET, Key="uploads/IMG_0042.JPG")["Body"].read()
    assert original == photo  # the user's own upload is theirs, untouched


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"sub": "u1", "scope": "read,review"}, 403),
        ({"sub": "u1", "scope": "read review"}, 200),
        ({"sub": "u1", "groups": "[x,reviewers]"}, 403),
        ({"sub": "u1", "groups": "[admins reviewers]"}, 200),
        ({"sub": "u1", "groups": ["x,reviewers"]}, 403),
        ({"sub": "u1", "groups": ["reviewers"]}, 200),
    ],
)
def test_claims_are_matched_exactly_never_split_on_commas(
    s3: Any, monkeypatch: pytest.MonkeyPatch, claims: dict[str, Any], expected: int
) -> None:
    monkeypatch.setenv("API_AUTH", "jwt")
    claim = "scope=review" if "scope" in claims else "groups=reviewers"
    monkeypatch.setenv("REVIEWER_CLAIM", claim)
    service.settings.cache_clear()
    event = lambda_event("/review/items", "GET", None, {"jwt": {"claims": claims}})
    event["rawQueryString"] = ""
    assert call(event) == expected


def test_each_reviewer_token_names_who_labelled(
    client: TestClient, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVIEWER_TOKEN", json.dumps({"alice": "tok-a", "bob": "tok-b"}))
    service.settings.cache_clear()
    predict(client, "cat.png")
    predict(client, "dog.png")
    items = client.get("/review/items", headers={"authorization": "Bearer tok-a"}).json()["items"]
    who = []
    for item, token in zip(items, ("tok-a", "tok-b")):
        answer = client.post(
            f"/review/items/{item['id']}",
            json={"label": "cat"},
            headers={"authorization": f"Bearer {token}"},
        ).json()
        who.append(answer["reviewer"])
        meta = s3.head_object(Bucket=BUCKET, Key=answer["label_key"])["Metadata"]
        assert meta["reviewer"] == answer["reviewer"]
    assert who == ["token:alice", "token:bob"]
    assert client.get("/review/items", headers=REVIEWER).status_code == 403  # not in the list

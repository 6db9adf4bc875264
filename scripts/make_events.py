"""Write the sample Lambda events in events/ from imgs/cat.png (run again if the image changes).

The shapes follow what API Gateway, S3, SQS and EventBridge send; bodies carry a real PNG.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote_plus

from classifier import contract

from scripts import events

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
BOUNDARY = "----cifar10-sample-boundary"
BUCKET = "cifar10-uploads-example"
# A space and a plus: S3 sends "uploads/my+cat%2B1.png".
KEY = f"{contract.UPLOADS_PREFIX}my cat+1.png"
ACCOUNT = "123456789012"
TIME = "2026-11-25T12:00:00.000Z"
ETAG = "d41d8cd98f00b204e9800998ecf8427e"
SEQUENCER = "0055AED6DCD90281E5"


def multipart(filename: str, data: bytes, content_type: str = "image/png") -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def curl_headers(content_type: str | None, case: Callable[[str], str]) -> dict[str, str]:
    """curl's request headers as API Gateway passes them: HTTP APIs lower-case their names,
    REST APIs keep the client's Title-Case."""
    headers = {
        "accept": "application/json",
        "host": "abc123.execute-api.eu-west-1.amazonaws.com",
        "user-agent": "curl/8.5.0",
        "x-forwarded-proto": "https",
    }
    if content_type:
        headers["content-type"] = content_type
    return {case(name): value for name, value in headers.items()}


def http_v2(method: str, path: str, body: bytes | None, content_type: str | None) -> dict:
    headers = curl_headers(content_type, str.lower)
    if body is not None:
        headers["content-length"] = str(len(body))
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8.5.0",
            },
            "requestId": "Jg0Vdh2HDoEEMsw=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1795694400000,
        },
        "isBase64Encoded": body is not None,
    }
    if body is not None:
        event["body"] = base64.b64encode(body).decode()
    return event


def rest_v1(method: str, path: str, body: bytes | None, content_type: str | None) -> dict:
    headers = curl_headers(content_type, str.title)
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abc123",
            "httpMethod": method,
            "path": f"/prod{path}",
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "resourcePath": "/{proxy+}",
            "stage": "prod",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
        },
        "body": base64.b64encode(body).decode() if body is not None else None,
        "isBase64Encoded": body is not None,
    }


def s3_put(key: str) -> dict:
    return events.s3_event(
        events.s3_record(BUCKET, key, sequencer=SEQUENCER, size=2261, etag=ETAG, region="eu-west-1")
    )


def sqs(bodies: list[dict]) -> dict:
    queue = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:cifar10-uploads"
    return events.sqs_event(
        *(
            events.sqs_message(
                body, message_id=f"059f36b4-87a3-44ab-83d2-66197574820{i}", queue_arn=queue
            )
            for i, body in enumerate(bodies)
        )
    )


def eventbridge(key: str) -> dict:
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": "2026-11-25T12:00:00Z",
        "region": "eu-west-1",
        "resources": [f"arn:aws:s3:::{BUCKET}"],
        "detail": {
            "version": "0",
            "bucket": {"name": BUCKET},
            "object": {
                "key": quote_plus(key, safe="/"),
                "size": 2261,
                "etag": ETAG,
                "sequencer": SEQUENCER,
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": ACCOUNT,
            "source-ip-address": "203.0.113.7",
            "reason": "PutObject",
        },
    }


def main() -> None:
    png = (ROOT / "imgs" / "cat.png").read_bytes()
    body = multipart("cat.png", png)
    form = f"multipart/form-data; boundary={BOUNDARY}"
    events = {
        "apigw-v2-multipart.json": http_v2("POST", "/predict", body, form),
        "apigw-v2-raw-png.json": http_v2("POST", "/predict", png, "image/png"),
        "apigw-v2-health.json": http_v2("GET", "/health", None, None),
        "apigw-v1-multipart.json": rest_v1("POST", "/predict", body, form),
        "apigw-v1-raw-png.json": rest_v1("POST", "/predict", png, "image/png"),
        "s3-put.json": s3_put(KEY),
        "sqs-s3-put.json": sqs([s3_put(KEY)]),
        "eventbridge-object-created.json": eventbridge(KEY),
    }
    EVENTS.mkdir(exist_ok=True)
    for name, event in events.items():
        (EVENTS / name).write_text(json.dumps(event, indent=2) + "\n")
        print(f"wrote events/{name}")


if __name__ == "__main__":
    main()

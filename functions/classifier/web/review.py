"""Review: the captured answers a person corrects, and the labels that feed the next model.

``GET /review`` is the page; ``GET /review/items`` pages through pending items (newest first);
``POST /review/items/{item_id}`` labels one. Labels become training data, so every review route
but the page needs a reviewer's credential in every auth mode (:func:`reviewer`): with
``auth=none`` the stack's reviewer token (Secrets Manager), with ``auth=jwt`` a token carrying the
reviewer claim, with ``auth=iam`` a request API Gateway verified (the stack's reviewer policy
grants these routes alone). A request without one is refused and writes nothing.
"""

from __future__ import annotations

import functools
import hmac
import json
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from classifier import contract, review_store, service
from classifier.core import Classifier, ModelError
from classifier.web import headers
from classifier.web.common import CLASSIFIER, ErrorOut, RequestError, logger, telemetry

router = APIRouter()

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no reviewer credential was sent"},
    403: {"model": ErrorOut, "description": "the credential is not a reviewer's"},
    503: {"model": ErrorOut, "description": "review is not set up (no bucket or no token)"},
}


class AnswerOut(BaseModel):
    category: str
    confidence: float
    unsure: bool
    runner_up: str
    none_of_these: bool = False
    probabilities: dict[str, float]


class ItemOut(BaseModel):
    id: str
    source: str = Field(description="'uploads' (the drop folder) or 'api'")
    image_url: str = Field(description=f"a presigned GET, valid {review_store.IMAGE_URL_SECONDS} s")
    filename: str | None = None
    sha256: str = Field(description="the image's SHA-256, hex")
    answer: AnswerOut
    model_version: str
    captured_at: str


class PageOut(BaseModel):
    items: list[ItemOut]
    next: str | None = Field(description="pass as `after` for the next page; null at the end")


class LabelIn(BaseModel):
    label: str = Field(description=f"one of the model's categories, or {contract.NONE_LABEL!r}")


class LabelOut(BaseModel):
    id: str
    label: str
    label_key: str = Field(description="where the image now is, for training")
    reviewer: str
    labelled_at: str


LEGACY_NAME = "reviewer"  # the name of a token given alone (the stack's {"token": ...})


def named_tokens(value: str) -> dict[str, str]:
    """Reviewers' names and tokens from a secret or setting: JSON ``{"alice": "<token>", ...}``
    (the stack's generated ``{"token": ...}`` is one reviewer, named "reviewer"), or a token."""
    try:
        document = json.loads(value)
    except ValueError:
        document = value
    if isinstance(document, dict):
        tokens = {
            LEGACY_NAME if name == "token" else str(name): str(token)
            for name, token in document.items()
            if isinstance(token, str) and token
        }
    else:
        tokens = {LEGACY_NAME: str(value)} if value else {}
    return tokens


@functools.cache
def _secret_tokens(arn: str) -> dict[str, str]:
    return named_tokens(service.secrets_client().get_secret_value(SecretId=arn)["SecretString"])


def _expected_tokens() -> dict[str, str]:
    config = service.settings()
    if config.reviewer_token:
        tokens = named_tokens(config.reviewer_token)
    elif config.reviewer_token_secret:
        tokens = _secret_tokens(config.reviewer_token_secret)
    else:
        tokens = {}
    if not tokens:
        raise RequestError(503, "review is not set up: no reviewer token is configured")
    return tokens


def _token_owner(token: str) -> str | None:
    """Whose token this is: every token compared in constant time, none skipped."""
    owner = None
    for name, expected in _expected_tokens().items():
        if hmac.compare_digest(token.encode(), expected.encode()):
            owner = name
    return owner


def _claims(request: Request) -> dict[str, Any] | None:
    event = request.scope.get("aws.event") or {}
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    return authorizer.get("jwt", {}).get("claims") if "jwt" in authorizer else None


def _has_claim(claims: dict[str, Any], wanted: str) -> bool:
    """Whether the claim holds exactly ``value``: "scope" is space-separated (RFC 8693), and
    API Gateway hands a list claim (groups) as "[a b]"; nothing splits on commas, so neither
    "read,review" nor a group named "x,reviewers" is "review" or "reviewers"."""
    name, _, value = wanted.partition("=")
    held = claims.get(name)
    if isinstance(held, str):
        if held.startswith("[") and held.endswith("]"):
            held = held[1:-1]
        held = held.split(" ")
    return isinstance(held, list) and any(isinstance(h, str) and h == value for h in held)


def reviewer(request: Request) -> str:
    """Who is reviewing, or 401/403: the gate in front of everything that writes labels."""
    mode = service.settings().api_auth
    if mode == "iam":
        event = request.scope.get("aws.event") or {}
        iam = ((event.get("requestContext") or {}).get("authorizer") or {}).get("iam")
        if not iam:
            raise RequestError(401, "review needs an IAM-signed request (the reviewer policy)")
        return str(iam.get("userArn") or iam.get("userId") or "iam")
    if mode == "jwt":
        claims = _claims(request)
        if not claims:
            raise RequestError(401, "review needs a bearer token (JWT)")
        wanted = service.settings().reviewer_claim
        if not _has_claim(claims, wanted):
            raise RequestError(403, f"the token does not carry the reviewer claim {wanted!r}")
        return str(claims.get("sub") or claims.get("username") or "jwt")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise RequestError(401, "review needs the reviewer token: Authorization: Bearer <token>")
    owner = _token_owner(token.strip())
    if owner is None:
        raise RequestError(403, "the reviewer token is not right")
    return f"token:{owner}"


REVIEWER = Depends(reviewer)


def _bucket() -> str:
    bucket = service.settings().review_bucket
    if not bucket:
        raise RequestError(503, "review is not set up: no review bucket is configured")
    return bucket


@functools.cache
def _page_template() -> str:
    return resources.files("classifier.static").joinpath("review.html").read_text("utf-8")


@router.get("/review", response_class=HTMLResponse, summary="The review page")
def review_page() -> HTMLResponse:
    """The review page: pending items, a button (and a key) per category, none of these, skip."""
    try:
        names = list(service.classifier().class_names)
    except ModelError:
        names = []
    # A JSON array inline in the script: no tag can end the script early.
    categories = json.dumps(names).replace("<", "\\u003c")
    auth = service.settings().api_auth
    page = _page_template().replace("{{AUTH}}", auth).replace("{{CATEGORIES}}", categories)
    # The items' images are presigned links into the review bucket.
    return headers.page(page, images=headers.bucket_origin(service.settings().review_bucket))


@router.get(
    "/review/items",
    response_model=PageOut,
    responses=AUTH_ERRORS,
    summary="Pending review items, newest first",
)
def review_items(
    who: str = REVIEWER,
    limit: Annotated[int, Query(ge=1, le=review_store.PAGE_MAX)] = 20,
    after: Annotated[str | None, Query(pattern=review_store.ID_PATTERN)] = None,
) -> PageOut:
    page = review_store.pending(service.s3_client(), _bucket(), limit=limit, after=after)
    return PageOut(items=[ItemOut(**item) for item in page.items], next=page.next)


@router.post(
    "/review/items/{item_id}",
    response_model=LabelOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": LabelIn.model_json_schema()}},
        }
    },
    responses={
        **AUTH_ERRORS,
        404: {"model": ErrorOut, "description": "no such item"},
        409: {"model": ErrorOut, "description": "another reviewer labelled it first"},
        410: {"model": ErrorOut, "description": "its image was deleted from the bucket"},
        422: {"model": ErrorOut, "description": "the label is not a category or 'none'"},
    },
    summary="Label one item: a category or 'none'",
)
async def label_item(
    request: Request,
    item_id: Annotated[str, Path(pattern=review_store.ID_PATTERN)],
    who: str = REVIEWER,
    classifier: Classifier = CLASSIFIER,
) -> LabelOut:
    # The body is read after the reviewer check: nothing about it is answered to a stranger.
    raw = await request.body()
    if len(raw) > 1024:
        raise RequestError(413, f"the body is {len(raw)} bytes; at most 1024 are accepted")
    try:
        body = LabelIn.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise RequestError(
            422, 'the body must be JSON {"label": "<category>"} or {"label": "none"}'
        ) from exc
    return await run_in_threadpool(_label, item_id, body.label, who, classifier)


def _label(item_id: str, label: str, who: str, classifier: Classifier) -> LabelOut:
    allowed = [*classifier.class_names, contract.NONE_LABEL]
    if label not in allowed:
        raise RequestError(
            422, f"label {label!r} is not one of the categories: {', '.join(allowed)}"
        )
    bucket = _bucket()
    try:
        claim = review_store.label(service.s3_client(), bucket, item_id, label, who)
    except review_store.UnknownItem:
        raise RequestError(404, f"no review item {item_id}") from None
    except review_store.AlreadyLabelled as exc:
        raise RequestError(
            409, f"item {item_id} was already labelled {exc.claim.get('label')!r}"
        ) from None
    except review_store.ImageGone:
        raise RequestError(410, f"item {item_id}'s image is no longer in the bucket") from None
    telemetry.count(contract.METRIC_LABELLED)
    logger.info("labelled", extra={"item": item_id, "label": label, "reviewer": who})
    return LabelOut(
        id=claim["id"],
        label=claim["label"],
        label_key=claim["label_key"],
        reviewer=claim["reviewer"],
        labelled_at=claim["labelled_at"],
    )

"""The contract between the functions and the infrastructure that deploys them.

Prefixes, accepted image types, service and metric names live here, in one module that both
``functions/`` and ``infra/`` import, so the wiring cannot drift from the code (as the drop
folder's old ``.png``-only notification filter once did). Nothing here imports anything.
"""

from __future__ import annotations

# The CloudFormation stack's default name (cdk.json context stackName overrides it; the scripts
# that read its outputs take --stack / STACK).
STACK_NAME = "Cifar10Classifier"

# Who may call the API (the stack's `auth` setting; the page adapts to it): public, IAM-signed
# requests, or a JWT bearer token.
AUTH_MODES = ("none", "iam", "jwt")
# Routes anyone may call whatever the auth mode: they hold no data, and the page must load to
# ask for a token.
PUBLIC_PATHS = ("/", "/review", "/health", "/docs", "/openapi.json")
# Where an async upload's answer is read (POST /uploads hands it out, relative to the API).
RESULT_ROUTE = "/results/{upload_id}"
# Every route the API serves, (method, path): API Gateway routes exactly these to the function
# (infra/components/inference_api.py), and a test holds the app's own routes to this list.
ROUTES = (
    ("GET", "/"),
    ("POST", "/predict"),
    ("POST", "/predict/batch"),
    ("POST", "/uploads"),
    ("GET", RESULT_ROUTE),
    ("GET", "/review"),
    ("GET", "/review/items"),
    ("POST", "/review/items/{item_id}"),
    ("GET", "/health"),
    ("GET", "/model"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
)
# The routes behind which a reviewer labels captured answers: they write training data, so they
# need a reviewer's credential in every auth mode (a token, a reviewer IAM policy, a JWT claim).
REVIEW_PATH_PREFIX = "/review/"

# The model bucket is the registry: every published model under MODELS_PREFIX<version>/ (its
# files named in classifier/manifest.py), MODELS_PREFIX latest/manifest.json the one a deployment
# serves; the data set the cloud training job reads (DATA_KEY, under DATA_PREFIX), and the job's
# source archive and output. `make upload-data`, `make train-cloud` and the stack's training
# role all take these names from here.
MODELS_PREFIX = "models/"
LATEST = "latest"  # models/latest/manifest.json: the one pointer a deployment and rollback follow
MANIFEST_NAME = "manifest.json"
MODEL_NAME = "model.tflite"
FLOAT_MODEL_NAME = "model.keras"  # the float weights a later job can start from
# What a published model folder (models/<version>/) holds, besides its plots (*.png).
PUBLISHED_FILES = (MODEL_NAME, MANIFEST_NAME, "metrics.json", FLOAT_MODEL_NAME)
DATA_PREFIX = "data/"
DATA_KEY = f"{DATA_PREFIX}cifar10.tar"
TRAINING_SOURCE_PREFIX = "sagemaker/source/"
TRAINING_OUTPUT_PREFIX = "sagemaker/output/"
# AWS Deep Learning Containers' account, which serves the TensorFlow training images (most
# regions; `make train-cloud ARGS="--image ..."` otherwise).
TRAINING_IMAGE_ACCOUNT = "763104351884"
# What the training job prints as name=value, read by the job's metric definitions.
TRAINING_METRICS = (
    "int8_test_accuracy",
    "float_test_accuracy",
    "validation_accuracy",
    "ece_after",
    "coverage",
)
# The retraining pipeline: its training jobs' names, where each records the candidate it
# published, and the CreateTrainingJob request's fields (release.cloud.job_request makes them;
# the state machine passes each through from the check step's answer).
RETRAIN_JOB_PREFIX = "cifar10-retrain-"
RETRAIN_SOURCE_KEY = f"{TRAINING_SOURCE_PREFIX}pipeline/sourcedir.tar.gz"
TRAINING_REQUEST_FIELDS = (
    "TrainingJobName",
    "AlgorithmSpecification",
    "RoleArn",
    "HyperParameters",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "EnableManagedSpotTraining",
    "Tags",
)


def candidate_record_key(job: str) -> str:
    """Where a retraining job records the version it published."""
    return f"{TRAINING_OUTPUT_PREFIX}{job}/candidate.json"


def verdict_record_key(job: str) -> str:
    """Where the retraining pipeline's gate records its verdict on that job's candidate: the
    labels up to the job's start (its name's time) count as learnt once one is there."""
    return f"{TRAINING_OUTPUT_PREFIX}{job}/verdict.json"


def model_key(version: str, name: str) -> str:
    """Where a published model's file lives, relative to a bucket or folder root."""
    return f"{MODELS_PREFIX}{version}/{name}"


# Where the drop folder takes images and writes results (the results prefix is never read).
UPLOADS_PREFIX = "uploads/"
RESULTS_PREFIX = "results/"

# The feedback loop, in the uploads bucket (classifier/review_store.py describes each key): answers
# worth reviewing are captured as records under REVIEW_ITEMS_PREFIX with a private copy of their
# image under REVIEW_IMAGES_PREFIX, one per image content (REVIEW_SEEN_PREFIX) and at most the
# stack's capturePerHour an hour (REVIEW_QUOTA_PREFIX); a label claims the item under
# REVIEW_LABELLED_PREFIX (a conditional write: the first reviewer wins) and copies the image to
# LABELS_PREFIX<label>/<id>.<ext>, the folder layout `make train DATA=` and --corrections read.
# Everything under REVIEW_PREFIX expires after the stack's captureDays, labels after labelDays.
REVIEW_PREFIX = "review/"
REVIEW_ITEMS_PREFIX = "review/items/"
REVIEW_IMAGES_PREFIX = "review/images/"
REVIEW_SEEN_PREFIX = "review/seen/"
REVIEW_QUOTA_PREFIX = "review/quota/"
REVIEW_LABELLED_PREFIX = "review/labelled/"
LABELS_PREFIX = "labels/"
NONE_LABEL = "none"  # "none of these": not a class; training uses it for the doubt threshold
# What each function captures: "none", "unsure" (answers flagged unsure or none_of_these) or "all"
# (a sampled share of every answer). The drop folder captures "unsure" by default (its images
# are in the bucket already), the API nothing unless the stack says so.
CAPTURE_MODES = ("none", "unsure", "all")

# Image formats the decoder accepts (Pillow's names), with their media types and the file
# extensions people give them. The S3 notification does not filter on these: S3 matches suffixes
# literally and case-sensitively, so `IMG_0042.JPG` or a file with no extension would never
# arrive. The handler reads the content instead and answers every object (see README).
IMAGE_FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    "PNG": ("image/png", (".png",)),
    "JPEG": ("image/jpeg", (".jpg", ".jpeg", ".jpe", ".jfif")),
}
ACCEPTED_FORMATS = tuple(IMAGE_FORMATS)
# The page and the client send a picture's centre square area-averaged to this many times the
# model's input side (4 x 32 = 128 px, a PNG of tens of KB), not the photo: the server's own area
# averaging then gives what reducing the whole file would (research/upload_reduction.py chose it).
UPLOAD_SCALE = 4
# A PNG or JPEG this small goes as it is: it costs one 512 KB step of the HTTP API like its
# reduction, and the server's answer to the file is the answer (at 224 px the 128 px reduction
# agreed with the file on 99.0% only: docs/measurements.md).
AS_IT_IS_BYTES = 256 * 1024
MEDIA_TYPES = tuple(media for media, _ in IMAGE_FORMATS.values())

# Async uploads (POST /uploads): objects at uploads/async/<id>, results at results/async/<id>.json.
ASYNC_FOLDER = "async/"
ASYNC_MAX_BYTES = 20 * 1024 * 1024  # the presigned POST's size limit
ASYNC_EXPIRES_S = 300  # how long a presigned POST may be used

# Bulk classification (Step Functions Distributed Map): each batch carries its bucket here.
BULK_BUCKET_FIELD = "bucket"

# The rollout's pre-traffic check: {CHECK_FIELD: "<base64 PNG>"} makes the drop-folder function
# classify that image and answer {"check": <prediction>} (no S3); the API gets POST /predict.
CHECK_FIELD = "rollout_check"

# Completion events on EventBridge (one per classified or refused object).
EVENT_SOURCE = "cifar10.classifier"
EVENT_CLASSIFIED = "Image Classified"
EVENT_NOT_CLASSIFIED = "Image Not Classified"

# The S3 notification that feeds the drop folder's queue: the uploads prefix, no suffix.
UPLOADS_NOTIFICATION_FILTER = {"prefix": UPLOADS_PREFIX}

# Service names (log field `service`, metric dimension `service`).
API_SERVICE = "cifar10-api"
UPLOADS_SERVICE = "cifar10-uploads"

# CloudWatch metrics (namespace and names), emitted by the functions, graphed and alarmed on by
# the infrastructure.
METRICS_NAMESPACE = "Cifar10Classifier"
METRIC_CLASSIFIED = "ImagesClassified"
METRIC_REJECTED = "ImagesRejected"  # not an image the model accepts: an error result is written
METRIC_SUPERSEDED = "ResultsSuperseded"  # a newer version's result was already there: not written
METRIC_LATENCY = "ClassifyLatency"
METRIC_CONFIDENCE = "Confidence"  # the top class's probability; its Average is mean confidence
METRIC_CATEGORY_PREFIX = "Category_"
METRIC_NONE_OF_THESE = "NoneOfThese"  # answers flagged none_of_these, per model version
METRIC_UNSURE = "Unsure"  # answers below the doubt threshold ("not sure: A or B?"), per version
METRIC_CAPTURED = "AnswersCaptured"  # kept for review
METRIC_CAPTURE_FAILED = "CaptureFailed"  # could not be kept (logged; the answer still went out)
METRIC_CAPTURE_REPEATS = "CaptureRepeats"  # an image already kept, seen again: not added
METRIC_CAPTURE_LIMITED = "CaptureLimited"  # not kept: the hour's bound (capturePerHour) was reached
METRIC_SERVER_ERRORS = "ServerErrors"  # API answers with a 5xx status, per function version
METRIC_LABELLED = "ReviewLabels"  # labels written by reviewers
# Every classification metric carries the model version that made it (and the `service`),
# so a dashboard compares models side by side and a canary's alarms watch the new model only.
DIMENSION_MODEL_VERSION = "ModelVersion"
DIMENSION_SERVICE = "service"
# Server errors carry the Lambda version that answered, so a canary rolls back on its own errors
# only (an API-wide 5xx rate pages the owner instead).
DIMENSION_FUNCTION_VERSION = "FunctionVersion"


class Env:
    """The functions' environment variables: the stack (infra/) sets them, classifier.settings
    reads and checks them; both take the names from here."""

    # The manifest to serve: s3://bucket/models/<version>/manifest.json (deployed functions are
    # pinned to a version, never `latest`), or a local path.
    MODEL_URI = "MODEL_URI"
    UPLOADS_PREFIX = "UPLOADS_PREFIX"  # where the S3 classifier expects images
    RESULTS_PREFIX = "RESULTS_PREFIX"  # where it writes results (and which it never reads)
    MAX_BODY_BYTES = "MAX_BODY_BYTES"  # largest accepted request body / image object
    MAX_OBJECT_BYTES = "MAX_OBJECT_BYTES"  # drop folder: largest object classified
    API_AUTH = "API_AUTH"  # how the deployed API is protected: none, iam or jwt (the page adapts)
    UPLOADS_BUCKET = (
        "UPLOADS_BUCKET"  # API: where POST /uploads lets clients put images (unset: off)
    )
    EVENT_BUS = "EVENT_BUS"  # drop folder: EventBridge bus for completion events (unset: none sent)
    MAX_IMAGE_PIXELS = "MAX_IMAGE_PIXELS"  # largest accepted image, in pixels
    MAX_REQUEST_PIXELS = "MAX_REQUEST_PIXELS"  # most pixels one request may make us decode
    IO_THREADS = "IO_THREADS"  # drop folder: S3 reads and writes in flight at once
    TFLITE_NUM_THREADS = "TFLITE_NUM_THREADS"  # interpreter threads (unset: runtime default)
    TFLITE_RUNTIME = (
        "TFLITE_RUNTIME"  # "ai-edge-litert" or "tflite-runtime" (unset: first installed)
    )
    REVIEW_BUCKET = "REVIEW_BUCKET"  # where answers are captured and labels written (unset: off)
    CAPTURE = "CAPTURE"  # which answers this function keeps for review: none, unsure or all
    CAPTURE_SAMPLE = "CAPTURE_SAMPLE"  # with CAPTURE=all: the share of answers kept (0..1)
    CAPTURE_PER_HOUR = "CAPTURE_PER_HOUR"  # most items all containers together keep in an hour
    # auth none: the Secrets Manager secret's ARN; locally (make serve, the demo): the token itself
    REVIEWER_TOKEN_SECRET = "REVIEWER_TOKEN_SECRET"  # noqa: S105 (a variable's name)
    REVIEWER_TOKEN = "REVIEWER_TOKEN"  # noqa: S105 (a variable's name)
    REVIEWER_CLAIM = "REVIEWER_CLAIM"  # auth jwt: "<claim>=<value>" a reviewer's token carries
    LAMBDA_FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"  # set by Lambda itself: we run in Lambda
    # Powertools' names, kept for the logs' and metrics' settings (classifier.logs, telemetry)
    METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
    SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"  # INFO unless set
    METRICS_DISABLED = "POWERTOOLS_METRICS_DISABLED"  # "true": no metric line is written
    DEFAULT_CAPTURE_PER_HOUR = 100  # a reviewer labels a few hundred images an hour at most


# The repository's own model, relative to the repository: `make demo` serves it, and the stack
# uploads it as the first model of a new deployment.
REPO_MODEL_PATH = "models/latest/manifest.json"

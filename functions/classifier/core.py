"""The pure inference core: bytes in, probabilities out.

Nothing here knows about AWS, environment variables or HTTP. The one preprocessing function,
:func:`image_to_array`, is used by the API, the S3 handler and the training job's evaluation, so
serving cannot drift from what the model was measured on.

Preprocessing rules (the contract the README documents):

* Formats: PNG and JPEG only (``classifier.contract``); anything else is :class:`UnsupportedImage`.
* Size: an image over ``max_pixels`` (25 MP by default) is refused from its header, before its
  pixels are decoded, so decompression bombs cost nothing.
* Bounded cost: a JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) when it is
  far larger than the model's input; any image is then box-reduced to about three times the input
  size (centre square only), strip by strip, each strip converted to RGB (compositing included)
  as it is reduced; EXIF rotation then turns the small result. No full-size float or RGBA
  copies: the decoded image is the peak.
* Orientation: the EXIF orientation tag is applied.
* Colour: every mode becomes 8-bit RGB. Transparent pixels are composited onto **white** (the
  usual background of a cut-out object); 16-bit and 32-bit greyscale are scaled to 8 bits;
  palette, greyscale, bilevel, CMYK and YCbCr images are converted by Pillow.
* Geometry: an image that is not 32x32 is centre-cropped to a square (keeping the aspect ratio
  the model saw in training) and shrunk by **area averaging** (Pillow's BOX filter for the last
  step), chosen on validation images enlarged to photo sizes (see ``RESIZE_FILTER``).
* Values: pixels stay in 0..255; normalisation is inside the model, and the model's own input
  quantisation parameters turn them into int8/uint8.
"""

from __future__ import annotations

import hashlib
import io
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from classifier.contract import ACCEPTED_FORMATS

IMAGE_SIZE = 32
MAX_PIXELS = 25_000_000
# Area averaging (BOX) for the last step down to 32x32: chosen on validation images enlarged to
# photo sizes (96-512 px, JPEG), where it lost 0.89 point against the 32x32 originals on average,
# bicubic 1.46 and Lanczos 1.11 (`research/photo_robustness.py`, docs/training.md).
RESIZE_FILTER = Image.Resampling.BOX
BACKGROUND = (255, 255, 255)
# Shrink cheaply (JPEG DCT scaling, box reduction) only down to this many times the model's
# input, so the final filter still has the detail it averages from.
REDUCING_GAP = 3
WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
STRIP_ROWS = 256  # rows converted at a time from 16/32-bit greyscale: bounded temporary memory
# EXIF orientation -> the transpose that shows the image upright (EXIF 2.3, tag 0x0112).
ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageError(ValueError):
    """Base class for input images the core refuses; the message names the problem."""


class UndecodableImage(ImageError):
    """The bytes are not a decodable image."""


class UnsupportedImage(ImageError):
    """The bytes are an image, but of a format the model does not accept."""


class ImageTooLarge(ImageError):
    """The image has more pixels than allowed."""


class ModelError(RuntimeError):
    """The model or its manifest cannot be used (the service answers 503)."""


def open_image(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    formats: Sequence[str] = ACCEPTED_FORMATS,
    size: int | None = None,
) -> Image.Image:
    """Open PNG or JPEG bytes from their header, refusing oversized images; nothing is decoded.

    With ``size``, a JPEG much larger than ``size`` is set to decode at a reduced scale, and
    ``img.size`` then says how many pixels decoding will cost (:func:`decode_cost`).
    """
    if not data:
        raise UndecodableImage("the image is empty (0 bytes)")
    try:
        # Image.open reads only the header; pixels are decoded by load() later.
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"the image is too large to decode: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UndecodableImage(
            f"the {len(data)} bytes are not a decodable image; send a PNG or JPEG"
        ) from exc
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        # A known signature with a broken header (e.g. a PNG cut off after 8 bytes).
        raise UndecodableImage(
            f"the image's header cannot be read ({exc}); send a PNG or JPEG"
        ) from exc
    # Phones write multi-picture JPEGs, which Pillow names MPO: they are JPEGs to the user.
    if ("JPEG" if img.format == "MPO" else img.format) not in formats:
        raise UnsupportedImage(
            f"image format {img.format} is not accepted; send one of {', '.join(formats)}"
        )
    width, height = img.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} ({width * height / 1e6:.1f} MP); "
            f"at most {max_pixels / 1e6:g} MP is accepted"
        )
    if size is not None and img.format in ("JPEG", "MPO"):
        # The scale stays at or above the target on both sides (Pillow picks 1, 1/2, 1/4, 1/8).
        img.draft(None, (size * REDUCING_GAP, size * REDUCING_GAP))
    return img


def decode_cost(data: bytes, *, size: int = IMAGE_SIZE, max_pixels: int = MAX_PIXELS) -> int:
    """Pixels that decoding ``data`` will produce (from its header); refuses as open_image does."""
    width, height = open_image(data, max_pixels=max_pixels, size=size).size
    return width * height


def _load(img: Image.Image) -> None:
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UndecodableImage(f"the {img.format} image is truncated or corrupt: {exc}") from exc


def _wide_grey_to_l(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float greyscale to 8-bit L, a strip of rows at a time."""
    values = np.asarray(img)
    out = np.empty(values.shape, np.uint8)
    scale = 1.0 if img.mode == "F" else 257.0  # I;16 and I hold 0..65535 from 16-bit PNGs
    for top in range(0, values.shape[0], STRIP_ROWS):
        strip = values[top : top + STRIP_ROWS].astype(np.float32)
        out[top : top + STRIP_ROWS] = np.clip(np.rint(strip / scale), 0, 255)
    return Image.fromarray(out, "L")


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, compositing transparency onto white."""
    if img.mode in WIDE_GREY:
        img = _wide_grey_to_l(img)
    if _has_alpha(img):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def fit_to_input(img: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """Centre-crop to a square and resize to ``size`` x ``size`` by area averaging."""
    if img.size == (size, size):
        return img
    return img.resize((size, size), RESIZE_FILTER, box=centre_square(*img.size))


def reduction_factor(side: int, size: int = IMAGE_SIZE) -> int:
    """The cheap integer reduction before the last step: at most side / (size * REDUCING_GAP),
    and, where one within a factor of two of that exists, one that leaves a whole multiple of
    ``size`` (the area average then matches reducing the whole image directly)."""
    limit = max(1, side // (size * REDUCING_GAP))
    aligned = (f for f in range(limit, max(1, limit // 2) - 1, -1) if side % (f * size) == 0)
    return next(aligned, limit)


def reduce_to_input(img: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """Decode an opened image into the model's ``size`` x ``size`` RGB, at bounded cost.

    The centre square is converted to RGB and box-reduced a strip of rows at a time (strips
    aligned to the reduction factor, so the result equals reducing it whole): the decoded image
    is the only full-size allocation, whatever its mode.
    """
    _load(img)
    orientation = img.getexif().get(0x0112)  # PNG may keep its eXIf chunk after the pixels
    left, top, right, bottom = centre_square(*img.size)
    side = right - left
    factor = reduction_factor(side, size)
    rows = max(1, STRIP_ROWS // factor) * factor
    if factor == 1 and img.size == (side, side):
        square = to_rgb(img)
    else:
        reduced = -(-side // factor)
        square = Image.new("RGB", (reduced, reduced))
        for y in range(top, bottom, rows):
            strip = to_rgb(img.crop((left, y, right, min(y + rows, bottom))))
            square.paste(strip.reduce(factor) if factor > 1 else strip, (0, (y - top) // factor))
    if orientation in ORIENTATION:
        square = square.transpose(ORIENTATION[orientation])
    return fit_to_input(square, size)


# The longest side of every copy the product keeps of someone's image (review, labels): enough
# for a reviewer to see it and for training (8x the model's input), at most a few hundred KB.
KEPT_IMAGE_SIDE = 256


def private_copy(
    data: bytes, *, max_side: int = KEPT_IMAGE_SIDE, max_pixels: int = MAX_PIXELS
) -> tuple[bytes, str]:
    """A copy of an image to keep: upright, at most ``max_side`` a side, and re-encoded from its
    pixels alone, so no EXIF (GPS included), XMP, ICC or text chunk survives. PNG stays PNG
    (lossless, as small images are), anything else becomes JPEG. Returns (bytes, media type)."""
    img = open_image(data, max_pixels=max_pixels, size=max_side // REDUCING_GAP)
    source_format = img.format
    _load(img)
    orientation = img.getexif().get(0x0112)
    rgb = to_rgb(img)
    if orientation in ORIENTATION:
        rgb = rgb.transpose(ORIENTATION[orientation])
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    # A new image holds only pixels: Pillow writes none of the source's metadata into it.
    clean = Image.frombytes("RGB", rgb.size, rgb.tobytes())
    out = io.BytesIO()
    if source_format == "PNG":
        clean.save(out, format="PNG", optimize=True)
        return out.getvalue(), "image/png"
    clean.save(out, format="JPEG", quality=90)
    return out.getvalue(), "image/jpeg"


def image_to_array(
    data: bytes, *, size: int = IMAGE_SIZE, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Decode image bytes into the model's pixels: uint8 RGB of shape (size, size, 3)."""
    img = reduce_to_input(open_image(data, max_pixels=max_pixels, size=size), size)
    return np.asarray(img, dtype=np.uint8)


def quantize(pixels: np.ndarray, *, scale: float, zero_point: int, dtype: Any) -> np.ndarray:
    """Map real values into a tensor of ``dtype`` with the model's quantisation parameters."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" or scale == 0:
        return pixels.astype(dtype)
    info = np.iinfo(dtype)
    q = np.rint(pixels.astype(np.float32) / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, *, scale: float, zero_point: int) -> np.ndarray:
    """Map a quantised tensor back to real values (floats pass through)."""
    if values.dtype.kind == "f" or scale == 0:
        return values.astype(np.float32)
    return (values.astype(np.float32) - zero_point) * np.float32(scale)


# Test-time views: (name, weight) per view, in the order they are stacked into one batch.
# "mirror-translate" is airbench's: the image and its mirror (1/4 each) and both shifted by one
# pixel up-left and down-right (1/8 each), six views in all.
TTA_VIEWS: dict[str, tuple[tuple[str, float], ...]] = {
    "none": (("identity", 1.0),),
    "mirror": (("identity", 0.5), ("mirror", 0.5)),
    "mirror-translate": (
        ("identity", 0.25),
        ("mirror", 0.25),
        ("up-left", 0.125),
        ("up-left-mirror", 0.125),
        ("down-right", 0.125),
        ("down-right-mirror", 0.125),
    ),
}


def tta_views(pixels: np.ndarray, tta: str) -> tuple[np.ndarray, np.ndarray]:
    """The views of a batch (N, H, W, C) stacked as (views * N, H, W, C), and their weights."""
    if tta not in TTA_VIEWS:
        raise ValueError(
            f"unknown test-time augmentation {tta!r}; expected one of {sorted(TTA_VIEWS)}"
        )
    names, weights = zip(*TTA_VIEWS[tta])
    size = pixels.shape[1]
    made: dict[str, np.ndarray] = {"identity": pixels}
    if len(names) > 2:
        padded = np.pad(pixels, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        made["up-left"] = padded[:, :size, :size]
        made["down-right"] = padded[:, 2 : size + 2, 2 : size + 2]
    views = []
    for name in names:
        base = name.removesuffix("-mirror") if name != "mirror" else "identity"
        view = made[base]
        views.append(view[:, :, ::-1] if name.endswith("mirror") else view)
    return np.concatenate(views), np.asarray(weights, np.float32)


def combine_views(outputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted mean over views of outputs stacked as tta_views stacks them."""
    per_view = outputs.reshape(len(weights), -1, outputs.shape[-1])
    return np.tensordot(weights, per_view, axes=1)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


# How far an image is from everything the model was trained on, from its outputs over the views
# (higher: more novel). "energy" is -T*logsumexp(logits/T) (Liu et al., 2020): unlike the top
# probability it keeps how strongly the network answers at all, which a picture of none of its
# categories rarely makes it do. "energy+feature-norm" adds how weakly the penultimate features
# fire (the L2 norm of the pooled features, a second output of the int8 model, averaged over the
# views), each term standardised by its validation mean and spread: strokes on a plain ground
# (digits, text, line drawings) leave the features weak even where the logits pick a class.
# Both were chosen on the "chosen on" kinds (training/outliers.py, docs/novelty.md).
FEATURE_NORM_SCORE = "energy+feature-norm"
NOVELTY_SCORES = ("energy", "max-logit", "max-probability", FEATURE_NORM_SCORE)


def energy(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    top = z.max(axis=1)
    return np.asarray(-temperature * (top + np.log(np.exp(z - top[:, None]).sum(axis=1))))


def novelty(
    outputs: np.ndarray,
    *,
    outputs_kind: str,
    score: str,
    temperature: float,
    feature_norms: np.ndarray | None = None,
    moments: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> np.ndarray:
    """One novelty score per row of averaged outputs (logits or probabilities); the feature
    score also takes each row's feature norm and the validation (mean, spread) of the energy
    and of the norm."""
    logits = outputs if outputs_kind == "logits" else np.log(np.clip(outputs, 1e-7, None))
    if score == "max-logit":
        return np.asarray(-logits.max(axis=1), np.float64)
    if score == "max-probability":
        return np.asarray(-softmax(logits, temperature).max(axis=1), np.float64)
    if score == "energy":
        return energy(logits, temperature)
    if score != FEATURE_NORM_SCORE:
        raise ValueError(f"unknown novelty score {score!r}; expected one of {NOVELTY_SCORES}")
    if feature_norms is None or moments is None:
        raise ValueError(f"{score} needs the model's features output and their moments")
    (energy_mean, energy_spread), (norm_mean, norm_spread) = moments
    return np.asarray(
        (energy(logits, temperature) - energy_mean) / energy_spread
        - (np.asarray(feature_norms, np.float64) - norm_mean) / norm_spread
    )


def moments_of(values: np.ndarray) -> tuple[float, float]:
    """(mean, standard deviation) as a manifest stores them, the spread never 0."""
    return round(float(np.mean(values)), 6), max(round(float(np.std(values)), 6), 1e-6)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Interpreter(Protocol):
    """The part of the TFLite Interpreter API we use (tflite-runtime and ai-edge-litert agree)."""

    def get_input_details(self) -> list[dict[str, Any]]: ...
    def get_output_details(self) -> list[dict[str, Any]]: ...
    def resize_tensor_input(self, index: int, shape: Sequence[int]) -> None: ...
    def allocate_tensors(self) -> None: ...
    def set_tensor(self, index: int, value: np.ndarray) -> None: ...
    def invoke(self) -> None: ...
    def get_tensor(self, index: int) -> np.ndarray: ...


@dataclass(frozen=True)
class Quantization:
    scale: float
    zero_point: int
    dtype: str

    @classmethod
    def of(cls, details: dict[str, Any]) -> Quantization:
        scale, zero_point = details["quantization"]
        return cls(float(scale), int(zero_point), np.dtype(details["dtype"]).name)


@dataclass(frozen=True)
class Prediction:
    category: str
    confidence: float
    probabilities: dict[str, float]
    model_version: str
    unsure: bool = False  # confidence below the model's doubt threshold
    runner_up: str = ""  # the second most likely category
    none_of_these: bool = False  # looks like none of the categories ("category" is the closest)

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "confidence": self.confidence,
            "unsure": self.unsure,
            "runner_up": self.runner_up,
            "none_of_these": self.none_of_these,
            "probabilities": self.probabilities,
            "model_version": self.model_version,
        }


@dataclass(frozen=True)
class Inference:
    """How the model's outputs become probabilities, as its manifest says."""

    tta: str = "none"  # test-time views, a key of TTA_VIEWS, batched into one invoke
    outputs: str = "probabilities"  # what the network outputs: "probabilities" or "logits"
    temperature: float = 1.0  # logits are divided by it (fitted on validation)
    unsure_below: float = 0.0  # an answer less confident than this is flagged "unsure"
    # An image whose novelty score is above this is "none of these" (None: never; fitted on
    # validation so that at most 5% of in-distribution images are flagged).
    novel_above: float | None = None
    novelty: str = "energy"  # a key of NOVELTY_SCORES
    # FEATURE_NORM_SCORE's validation (mean, spread) of the energy and of the feature norm.
    novelty_moments: tuple[tuple[float, float], tuple[float, float]] | None = None


class Outputs(NamedTuple):
    """What the model computes for a batch of images, averaged over the test-time views."""

    answers: np.ndarray  # logits or probabilities, as ``Inference.outputs`` says
    feature_norms: np.ndarray | None  # per image (models with a features output; else None)


def answers_and_features(
    outputs: list[dict[str, Any]], classes: int
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A model's answers output (one value per class) and its pooled features output, if any,
    told apart by width (the converter may list the features first). With none of that width
    the manifest is wrong: the narrower output is taken, so the error names its width."""
    answers = [o for o in outputs if int(o["shape"][-1]) == classes] or [
        min(outputs, key=lambda o: int(o["shape"][-1]))
    ]
    if len(answers) > 1:
        raise ModelError(
            f"the model has {len(outputs)} outputs of {classes} values: which are the answers "
            "cannot be told"
        )
    features = [o for o in outputs if o is not answers[0]]
    return answers[0], features[0] if features else None


class Classifier:
    """An int8 TFLite image classifier: image bytes or pixel arrays in, probabilities out."""

    def __init__(
        self,
        interpreter: Interpreter,
        *,
        class_names: Sequence[str],
        model_version: str,
        runtime: str,
        max_pixels: int = MAX_PIXELS,
        metadata: dict[str, Any] | None = None,
        inference: Inference = Inference(),
    ) -> None:
        self._interpreter = interpreter
        self.inference = inference
        self.metadata = dict(metadata or {})
        self.class_names = tuple(class_names)
        self.model_version = model_version
        self.runtime = runtime
        self.max_pixels = max_pixels
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) not in (1, 2):
            raise ModelError(
                f"the model has {len(inputs)} inputs and {len(outputs)} outputs; expected 1 "
                "and 1 (its answers) or 2 (its answers and its pooled features)"
            )
        self._input = inputs[0]
        self._output, self._features = answers_and_features(outputs, len(class_names))
        if inference.novelty == FEATURE_NORM_SCORE and (
            self._features is None or inference.novelty_moments is None
        ):
            raise ModelError(
                f"the manifest's novelty score {FEATURE_NORM_SCORE!r} needs a features output "
                "and inference.novelty_moments"
            )
        shape = tuple(int(v) for v in self._input["shape"][1:])
        if len(shape) != 3 or shape[0] != shape[1] or shape[2] != 3:
            raise ModelError(f"the model's input shape is {shape}; expected (N, N, 3)")
        self.input_shape: tuple[int, int, int] = (shape[0], shape[1], shape[2])
        n_out = int(self._output["shape"][-1])
        if n_out != len(self.class_names):
            raise ModelError(
                f"the model has {n_out} outputs but the manifest names "
                f"{len(self.class_names)} classes"
            )
        self.input_quantization = Quantization.of(self._input)
        self.output_quantization = Quantization.of(self._output)
        self._features_quantization = (
            Quantization.of(self._features) if self._features is not None else None
        )
        self._batch = int(self._input["shape"][0])
        # A TFLite interpreter is not thread-safe: one invoke at a time (decoding runs in
        # parallel outside it, e.g. in the API's thread pool).
        self._invoking = threading.Lock()
        interpreter.allocate_tensors()

    @property
    def image_size(self) -> int:
        return self.input_shape[0]

    @property
    def has_features(self) -> bool:
        return self._features is not None

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The answers for a batch, and its pooled features when the model has them."""
        if batch.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], batch.shape)
            self._interpreter.allocate_tensors()
            self._batch = batch.shape[0]
        q = self.input_quantization
        self._interpreter.set_tensor(
            self._input["index"],
            quantize(batch, scale=q.scale, zero_point=q.zero_point, dtype=q.dtype),
        )
        self._interpreter.invoke()
        answers = self._dequantized(self._output, self.output_quantization)
        if self._features is None or self._features_quantization is None:
            return answers, None
        return answers, self._dequantized(self._features, self._features_quantization)

    def _dequantized(self, details: dict[str, Any], q: Quantization) -> np.ndarray:
        raw = self._interpreter.get_tensor(details["index"])
        return dequantize(raw, scale=q.scale, zero_point=q.zero_point)

    def to_probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """Probabilities from ``predict_outputs``: the manifest's temperature applied."""
        if self.inference.outputs == "logits":
            return softmax(outputs, self.inference.temperature).astype(np.float32)
        probs = np.clip(outputs, 0.0, None)
        # An int8 softmax is quantised in steps of 1/256: renormalise so each row sums to 1.
        totals = probs.sum(axis=1, keepdims=True)
        probs = np.divide(
            probs, totals, out=np.full_like(probs, 1 / probs.shape[1]), where=totals > 0
        )
        if self.inference.temperature == 1.0:
            return probs
        # A probability model's temperature acts on its log-probabilities (as fitted).
        return softmax(np.log(np.clip(probs, 1e-7, None)), self.inference.temperature).astype(
            np.float32
        )

    def predict_arrays(self, pixels: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Probabilities (N, classes) for uint8 RGB pixels (N, H, W, 3); each row sums to 1."""
        return self.to_probabilities(self.predict_outputs(pixels, batch_size=batch_size))

    def predict_outputs(self, pixels: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """The network's outputs averaged over the test-time views, before any temperature
        (logits or probabilities, as ``inference.outputs`` says): what calibration fits on."""
        return self.predict_views(pixels, batch_size=batch_size).answers

    def predict_views(self, pixels: np.ndarray, *, batch_size: int = 256) -> Outputs:
        """The outputs averaged over the test-time views, and the norm of the features so
        averaged (models with a features output)."""
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != self.input_shape:
            expected = ", ".join(map(str, self.input_shape))
            raise ValueError(f"pixels have shape {pixels.shape}; expected (N, {expected})")
        answers = [np.zeros((0, len(self.class_names)), np.float32)]
        norms = [np.zeros(0, np.float32)]
        with self._invoking:
            for i in range(0, len(pixels), batch_size):
                chunk = pixels[i : i + batch_size]
                # All views of a chunk in one batch: one invoke, however many views.
                views, weights = tta_views(chunk, self.inference.tta)
                outputs, features = self._run(views)
                answers.append(combine_views(outputs, weights))
                if features is not None:
                    pooled = combine_views(features.reshape(len(views), -1), weights)
                    norms.append(np.linalg.norm(pooled, axis=1).astype(np.float32))
        return Outputs(
            np.concatenate(answers), np.concatenate(norms) if self.has_features else None
        )

    def novelty_scores(self, outputs: Outputs) -> np.ndarray:
        """The manifest's novelty score of each image of ``predict_views``."""
        return novelty(
            outputs.answers,
            outputs_kind=self.inference.outputs,
            score=self.inference.novelty,
            temperature=self.inference.temperature,
            feature_norms=outputs.feature_norms,
            moments=self.inference.novelty_moments,
        )

    def _prediction(self, row: np.ndarray, novelty_score: float) -> Prediction:
        best, second = (int(i) for i in np.argsort(row)[::-1][:2]) if len(row) > 1 else (0, 0)
        confidence = round(float(row[best]), 6)
        threshold = self.inference.novel_above
        return Prediction(
            category=self.class_names[best],
            confidence=confidence,
            probabilities={n: round(float(p), 6) for n, p in zip(self.class_names, row)},
            model_version=self.model_version,
            unsure=confidence < self.inference.unsure_below,
            runner_up=self.class_names[second],
            none_of_these=threshold is not None and novelty_score > threshold,
        )

    def decode_cost(self, data: bytes) -> int:
        """Pixels that decoding ``data`` for this model will produce (from the header)."""
        return decode_cost(data, size=self.image_size, max_pixels=self.max_pixels)

    def to_array(self, data: bytes) -> np.ndarray:
        return image_to_array(data, size=self.image_size, max_pixels=self.max_pixels)

    def predict(self, data: bytes) -> Prediction:
        """Classify one PNG or JPEG image."""
        return self.predict_many([data])[0]

    def predict_many(self, images: Sequence[bytes]) -> list[Prediction]:
        """Classify several images; every image is decoded before any is run."""
        if not images:
            return []
        pixels = np.stack([self.to_array(data) for data in images])
        outputs = self.predict_views(pixels)
        scores = self.novelty_scores(outputs)
        return [
            self._prediction(row, float(score))
            for row, score in zip(self.to_probabilities(outputs.answers), scores)
        ]

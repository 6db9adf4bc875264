"""The API's routers, one per resource; classifier.api assembles them.

Before any router is made: FastAPI checks each response model (and values it encodes) against
``pydantic.v1``, and the check imports that whole package, about 45 ms of every Lambda cold start
(fastapi/fastapi#16374) for models that cannot be v1 ones. A v1 model cannot exist unless
``pydantic.v1`` was imported, so until then the checks answer False without importing it; once
anything imports it they are FastAPI's own. ``tests/functional/test_api.py`` fails if a FastAPI
release makes this stop working (the cold start would grow again, nothing else).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def _unless_v1_imported(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def checked(value: Any) -> bool:
        return "pydantic.v1" in sys.modules and check(value)

    return checked


def _skip_pydantic_v1_import() -> None:
    from fastapi import encoders
    from fastapi._compat import shared

    for module, name in (
        (shared, "is_pydantic_v1_model_class"),  # annotation_is_pydantic_v1 calls it
        (shared, "is_pydantic_v1_model_instance"),
        (encoders, "is_pydantic_v1_model_instance"),  # bound there by a from-import
    ):
        original = getattr(module, name, None)
        if original is not None and not hasattr(original, "__wrapped_check__"):
            wrapped = _unless_v1_imported(original)
            wrapped.__wrapped_check__ = original  # type: ignore[attr-defined]
            setattr(module, name, wrapped)


_skip_pydantic_v1_import()

"""One JSON line per log record, with the Lambda invocation's fields: the functions' logger.

The lines keep the field names of AWS Lambda Powertools' Logger (``level``, ``location``,
``message``, ``timestamp``, ``service``, ``cold_start``, ``function_name``,
``function_request_id``, ``xray_trace_id``, a call's ``extra`` keys), so CloudWatch Logs
Insights queries written for Powertools work on them. It is written here rather than imported
because Powertools' Logger brings jmespath and its utilities into every cold start of the API
(issue 37: a cold request imports only what it needs; docs/measurements.md).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from classifier.contract import Env

Handler = TypeVar("Handler", bound=Callable[..., Any])
TRACE_HEADER = "_X_AMZN_TRACE_ID"  # set by Lambda per invocation when tracing is on
# Set by Lambda: a provisioned environment was initialised ahead of any request, so its first
# request is not a cold start.
INITIALIZATION_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"
# What every LogRecord has; anything else on a record came from a call's ``extra``.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class _Stdout(logging.StreamHandler):
    """Writes to the sys.stdout of the moment (Lambda's, or a test's capture)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


class _JsonLines(logging.Formatter):
    def __init__(self, owner: Logger) -> None:
        super().__init__()
        self.owner = owner

    def format(self, record: logging.LogRecord) -> str:
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
            "timestamp": f"{created}.{int(record.msecs):03d}Z",
            "service": self.owner.service,
            **self.owner.context,
        }
        trace = os.environ.get(TRACE_HEADER, "")
        if trace:
            line["xray_trace_id"] = trace.split(";")[0].removeprefix("Root=")
        line.update({k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS})
        if record.exc_info and record.exc_info[0] is not None:
            line["exception_name"] = record.exc_info[0].__name__
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class Logger:
    """A service's structured logger: ``logger.info("message", extra={...})``."""

    def __init__(self, service: str) -> None:
        self.service = os.environ.get(Env.SERVICE_NAME) or service
        self.context: dict[str, Any] = {}
        self._cold = os.environ.get(INITIALIZATION_TYPE) != "provisioned-concurrency"
        self._log = logging.getLogger(f"classifier.{service}")
        self._log.propagate = False  # Lambda's root handler would print each line again
        for previous in list(self._log.handlers):  # one Logger per service writes its lines
            self._log.removeHandler(previous)
        handler = _Stdout()
        handler.setFormatter(_JsonLines(self))
        self._log.addHandler(handler)
        self._log.setLevel(os.environ.get(Env.LOG_LEVEL, "INFO").upper())

    def setLevel(self, level: int | str) -> None:
        self._log.setLevel(level)

    def debug(self, message: str, **kwargs: Any) -> None:
        self._log.debug(message, stacklevel=2, **kwargs)

    def info(self, message: str, **kwargs: Any) -> None:
        self._log.info(message, stacklevel=2, **kwargs)

    def warning(self, message: str, **kwargs: Any) -> None:
        self._log.warning(message, stacklevel=2, **kwargs)

    def error(self, message: str, **kwargs: Any) -> None:
        self._log.error(message, stacklevel=2, **kwargs)

    def exception(self, message: str, **kwargs: Any) -> None:
        self._log.exception(message, stacklevel=2, **kwargs)

    def inject_lambda_context(self, handler: Handler) -> Handler:
        """A Lambda handler whose log lines carry its invocation (request id, cold start)."""

        @functools.wraps(handler)
        def wrapper(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            self.context = {
                "cold_start": self._cold,
                "function_name": getattr(context, "function_name", None),
                "function_memory_size": getattr(context, "memory_limit_in_mb", None),
                "function_arn": getattr(context, "invoked_function_arn", None),
                "function_request_id": getattr(context, "aws_request_id", None),
            }
            self._cold = False
            try:
                return handler(event, context, *args, **kwargs)
            finally:
                self.context = {}  # nothing of this invocation leaks into the next one's lines

        return wrapper  # type: ignore[return-value]

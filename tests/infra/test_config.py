"""infra/config.py: every setting the stack cannot honour is refused by name before anything is
built (cdk synth fails with the setting, its value and what would do)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.conftest import synth

pytestmark = [pytest.mark.slow, pytest.mark.infra]


@pytest.mark.parametrize(
    ("context", "message"),
    [
        # auth (components/inference_api.py)
        ({"auth": "password"}, "auth='password'; expected one of"),
        ({"auth": "jwt"}, "needs jwtIssuer"),
        # the feedback loop (components/review_store.py)
        ({"capture": "some"}, "capture='some'; expected one of"),
        ({"captureSample": "0"}, "captureSample=0"),
        ({"captureDays": "0"}, "captureDays=0"),
        ({"labelDays": "10"}, "labelDays=10"),
        ({"capturePerHour": "0"}, "capturePerHour=0"),
        ({"reviewerClaim": "review"}, "reviewerClaim='review'"),
        # rollout (components/rollout.py)
        ({"deployment": "blue-green"}, "deployment='blue-green'"),
        # cold starts (components/serving_function.py)
        ({"snapStart": "true", "runtime": "python3.11-x86_64"}, "needs a python3.12"),
        ({"snapStart": "true", "provisionedConcurrency": "1"}, "cannot be combined"),
        (
            {"provisionedConcurrency": "11", "apiReservedConcurrency": "10"},
            "exceeds apiReservedConcurrency=10",
        ),
    ],
)
def test_settings_the_stack_cannot_honour_are_refused_by_name(
    context: dict[str, str], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        synth(tmp_path, **context, **{"aws:cdk:bundling-stacks": []})

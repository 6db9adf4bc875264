"""The benchmark's cold starts: today's model and a candidate take turns."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scripts.bench import alternating_medians

# Prints its VALUE (seconds) after noting it in ORDER: which environment ran when.
NOTE_AND_PRINT = (
    "import os; open(os.environ['ORDER'], 'a').write(os.environ['VALUE'] + ' '); "
    "print(os.environ['VALUE'])"
)


def test_each_environment_runs_in_turn_and_gets_its_own_median(tmp_path: Path) -> None:
    order = tmp_path / "order"
    envs: list[dict[str, str] | None] = [
        {**os.environ, "ORDER": str(order), "VALUE": value} for value in ("0.25", "0.5")
    ]
    found = alternating_medians(3, [sys.executable, "-c", NOTE_AND_PRINT], envs)
    assert found == [250.0, 500.0]
    assert order.read_text().split() == ["0.25", "0.5"] * 3


def test_the_http_api_meters_each_started_512_kb_and_cold_starts_bill_their_init() -> None:
    from scripts.bench import cost_per_million

    thumbnail = cost_per_million(4.0, "x86_64", request_bytes=3_000)
    assert thumbnail == round(0.20 + 1e6 * 0.004 * 0.0000166667 + 1.00, 2)
    # A 4 MB photo is eight requests to the HTTP API: $7 more per million than a thumbnail.
    assert cost_per_million(4.0, "x86_64", request_bytes=4 * 1024 * 1024) == thumbnail + 7
    assert cost_per_million(4.0, "x86_64", request_bytes=512 * 1024 + 1) == thumbnail + 1
    # One request in ten starting cold bills a tenth of a 500 ms init on top.
    cold = cost_per_million(4.0, "x86_64", request_bytes=3_000, cold_rate=0.1, init_ms=500)
    assert cold == round(thumbnail + 1e6 * 0.05 * 0.0000166667, 2)


def test_the_cost_rows_send_each_upload_as_the_file_and_as_the_page_would() -> None:
    from scripts.bench import upload_costs

    rows = upload_costs(3, init_ms=400.0, cold_rate=0.01)
    assert len(rows) == 6
    photo_file, photo_reduced = (
        rows["4 MB photo (4032x3024), file"],
        rows["4 MB photo (4032x3024), reduced"],
    )
    assert photo_file["request_bytes"] > 3_000_000 > 300_000 > photo_reduced["request_bytes"]
    assert photo_file["usd_per_million_x86_64"] > photo_reduced["usd_per_million_x86_64"] + 6
    thumbnail = rows["32 px PNG, file"], rows["32 px PNG, reduced"]
    assert thumbnail[0]["request_bytes"] == thumbnail[1]["request_bytes"]  # small: sent as it is

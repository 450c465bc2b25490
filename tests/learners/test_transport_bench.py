"""`hilr bench transport` runs end to end (tiny sizes) and reports measured numbers."""

from __future__ import annotations

import json

import pytest

from learners.transport.bench import run

pytestmark = pytest.mark.timeout(120)


def test_bench_transport_runs_and_reports(capsys):
    result = run({"n": 60, "repeats": 1, "image_size": 32, "seed": 0, "paced_n": 20, "paced_hz": 200})
    json.dumps(result)
    for path in ("hilr", "raw_dealer_router", "raw_push_pull"):
        assert result[path]["transitions_per_s"] > 0 and result[path]["mb_per_s"] > 0
    assert result["frame_bytes"] > 2 * 32 * 32 * 3 and result["images_per_transition"] == 2
    assert 0 < result["ratio_vs_raw_dealer_router"] and result["hilr"]["transitions_per_message"] >= 1
    assert 0 < result["paired_ratio_vs_raw_dealer_router"]
    assert result["paced"]["n"] == 20 and 0 < result["paced"]["send_p50_us"] <= result["paced"]["send_max_us"]
    assert "transitions/s" in capsys.readouterr().out

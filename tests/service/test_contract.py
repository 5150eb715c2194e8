"""The HTTP contract: `/openapi.json` is valid and the server keeps it under an API fuzzer.

schemathesis (all checks, all phases: examples, coverage, fuzzing, stateful) runs against a real
server on loopback with a fixed seed and a bounded number of examples per operation.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from hotpose.service.app import create_app
from hotpose.service.settings import Settings
from tests.conftest import serve

MAX_EXAMPLES = 25  # per operation and phase: about 30 s here


def test_the_openapi_document_declares_what_the_routes_answer(make_settings: Callable[..., Settings]) -> None:
    with serve(create_app(make_settings())) as url:
        doc = httpx.get(f"{url}/openapi.json").json()
    paths = doc["paths"]
    upload = paths["/v1/clips"]["post"]
    assert upload["requestBody"]["required"] is True
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"] and set(form["properties"]) == {
        "file",
        "focal_px",
        "fov_deg",
        "person_height_m",
    }
    for path, ops in paths.items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if status[0] in "45":  # every error has the one error body
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
    assert "404" in paths["/v1/jobs/{job_id}"]["get"]["responses"]
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    edges = doc["components"]["schemas"]["InfoResponse"]["properties"]["skeleton_edges"]["items"]
    assert edges["type"] == "array" and (edges["minItems"], edges["maxItems"]) == (2, 2)


@pytest.mark.slow
def test_schemathesis_finds_nothing(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    with serve(create_app(make_settings())) as url:
        run = subprocess.run(
            [cli, "run", f"{url}/openapi.json", "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", "1",
             "--no-color"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    assert "Coverage" in out and "Fuzzing" in out and "Stateful" in out

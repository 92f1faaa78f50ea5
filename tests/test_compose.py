"""`docker-compose.yml` against the Compose Specification's JSON schema (no Docker engine in CI).

`tests/assets/compose-spec.json` is `schema/compose-spec.json` from compose-spec/compose-spec
(commit 170098ba07d9, Apache-2.0), the schema `docker compose config` itself validates with.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from bot.config import Settings

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "tests" / "assets" / "compose-spec.json"


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(compose())


def test_a_schema_violation_would_be_caught() -> None:
    """The check above can fail: a misspelt key is refused."""
    broken = compose()
    broken["services"]["bot"]["restart_policy"] = "always"
    errors = list(jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).iter_errors(broken))
    assert errors


def test_bot_and_gpu_server_as_documented() -> None:
    services = compose()["services"]
    bot, inference = services["bot"], services["inference"]
    assert bot["restart"] == "on-failure:5"
    assert bot["environment"]["CLIP_BACKEND"] == "remote"
    assert "http://inference:9001" in bot["environment"]["INFERENCE_SERVER_URL"]
    for name in bot["environment"]:  # every variable the bot is given is one of its settings
        assert name.lower() in Settings.model_fields, name
    assert inference["image"].startswith("roboflow/roboflow-inference-server-gpu")
    [device] = inference["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    cache = inference["environment"]["MODEL_CACHE_DIR"]
    assert any(volume.endswith(f":{cache}") for volume in inference["volumes"]), "the model cache is on a volume"
    assert services["inference-2"]["profiles"] == ["pool"]

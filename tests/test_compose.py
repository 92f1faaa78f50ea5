"""`docker-compose.yml` against the Compose Specification's JSON schema (no Docker engine in CI).

`tests/assets/compose-spec.json` is `schema/compose-spec.json` from compose-spec/compose-spec
(commit 170098ba07d9, Apache-2.0), the schema `docker compose config` itself validates with.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
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


BOTS = ("bot", "bot-gpu", "bot-remote")
#: The README's commands: `docker compose [--profile P ...] up -d [SERVICE ...]`, and its one bot.
COMMANDS = [
    ([], [], "bot"),
    (["postgres"], [], "bot"),
    (["gpu"], ["bot-gpu"], "bot-gpu"),
    (["postgres"], ["bot-gpu", "postgres"], "bot-gpu"),
    (["remote"], ["bot-remote"], "bot-remote"),
    (["remote", "pool"], ["bot-remote", "inference-2"], "bot-remote"),
    (["remote", "postgres"], ["bot-remote", "postgres"], "bot-remote"),
]


def started(services: dict, profiles: list[str], targets: list[str]) -> set[str]:
    """The services a command starts, as Compose selects them: the named ones (their profiles
    enabled by naming them) with their dependencies, else all those without or in a profile given."""
    for target in targets:
        profiles = profiles + services[target].get("profiles", [])
    enabled = {name for name, s in services.items() if not s.get("profiles") or set(s["profiles"]) & set(profiles)}
    chosen = set(targets) if targets else set(enabled)
    pending = list(chosen)
    while pending:
        for dependency, condition in services[pending.pop()].get("depends_on", {}).items():
            assert dependency in services, dependency
            if dependency in enabled and dependency not in chosen:
                chosen.add(dependency)
                pending.append(dependency)
            else:  # Compose refuses a required dependency whose profile is off
                assert dependency in enabled or condition.get("required") is False, (profiles, dependency)
    return chosen


def command_id(part: list[str] | str) -> str:
    return "+".join(part) if isinstance(part, list) else part


@pytest.mark.parametrize(("profiles", "targets", "bot"), COMMANDS, ids=command_id)
def test_every_documented_command_starts_one_bot(profiles: list[str], targets: list[str], bot: str) -> None:
    """What `docker compose config`/`up` check beyond the schema (dependencies enabled or optional,
    named volumes declared), and one bot per token: two would both answer every command."""
    document = compose()
    services = document["services"]
    chosen = started(services, profiles, targets)
    assert chosen & set(BOTS) == {bot}
    for name in chosen:
        for volume in services[name].get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(("/", ".")) or source in document["volumes"], (name, volume)
    readme = (REPO / "docker-compose.yml").read_text() + (REPO / "README.md").read_text()
    command = " ".join(["docker compose", *(f"--profile {p}" for p in profiles), "up -d", *targets]).strip()
    assert command in readme, f"documented: {command}"


def test_gpu_profile_builds_the_gpu_image_and_reserves_a_gpu() -> None:
    bot = compose()["services"]["bot-gpu"]
    assert bot["profiles"] == ["gpu"]
    assert bot["build"]["args"]["VARIANT"] == "gpu"
    assert bot["environment"]["CLIP_EXECUTION_PROVIDERS"].split(",")[0] == "CUDAExecutionProvider"
    [device] = bot["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]


def test_remote_profile_keeps_the_inference_server_setup() -> None:
    services = compose()["services"]
    bot, inference = services["bot-remote"], services["inference"]
    assert bot["environment"]["CLIP_BACKEND"] == "remote"
    assert "http://inference:9001" in bot["environment"]["INFERENCE_SERVER_URL"]
    assert "inference" in bot["depends_on"]
    assert inference["image"].startswith("roboflow/roboflow-inference-server-gpu")
    [device] = inference["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    cache = inference["environment"]["MODEL_CACHE_DIR"]
    assert any(volume.endswith(f":{cache}") for volume in inference["volumes"]), "the model cache is on a volume"
    assert services["inference-2"]["profiles"] == ["pool"]


def test_postgres_profile_is_waited_for_when_it_runs() -> None:
    services = compose()["services"]
    assert services["postgres"]["profiles"] == ["postgres"]
    assert "healthcheck" in services["postgres"]
    for name in BOTS:
        dependency = services[name]["depends_on"]["postgres"]
        assert dependency == {"condition": "service_healthy", "required": False}


@pytest.mark.parametrize("name", BOTS)
def test_bots_are_given_only_settings_and_a_healthz_check(name: str) -> None:
    bot = compose()["services"][name]
    for variable in bot["environment"]:  # every variable the bot is given is one of its settings
        assert variable.lower() in Settings.model_fields, variable
    check = " ".join(bot["healthcheck"]["test"])
    assert f"127.0.0.1:{bot['environment']['METRICS_PORT']}/healthz" in check
    assert bot["restart"] == "on-failure:5"

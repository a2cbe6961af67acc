"""The wire protocol's JSON Schema files: the shipped ones are what the declarations generate, they
are valid JSON Schema, and they take the documentation's examples as the server does."""

import json
import re
from importlib import resources
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from pilotage.core import protocol as wire
from pilotage.core.protocol.schema import json_schemas, write_json_schemas

PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
SHIPPED = resources.files("pilotage.core.protocol") / "schemas"


def documentation_examples() -> list[tuple[str, dict]]:
    """Every example message of docs/protocol.md, in order, with its kind: ``request``, ``reply`` or
    ``event TOPIC``."""
    blocks = re.findall(r"```json (request|reply|event \w+)\n(.*?)```", PROTOCOL_DOC.read_text(), re.DOTALL)
    return [(kind, json.loads(text)) for kind, text in blocks]


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json_schemas()[name])


def test_the_shipped_files_are_what_the_declarations_generate(tmp_path: Path) -> None:
    generated = {path.name: path.read_text(encoding="utf-8") for path in write_json_schemas(tmp_path)}
    shipped = {path.name: path.read_text(encoding="utf-8") for path in SHIPPED.iterdir() if path.name.endswith(".json")}
    assert shipped == generated, "the JSON Schema files are stale: run `pilotage schema --out core/protocol/schemas` " \
                                 "from the repository's root, after removing the files of messages that are gone"


def test_there_is_a_document_per_request_reply_and_event_and_each_is_valid_json_schema() -> None:
    documents = json_schemas()
    assert set(documents) == {"request", "reply", *(f"{kind}.{name}" for name in wire.MESSAGES
                                                    for kind in ("request", "reply")),
                              *(f"event.{topic}" for topic in wire.EVENTS)}
    for document in documents.values():
        Draft202012Validator.check_schema(document)


def test_the_documentation_examples_validate_unless_the_server_refused_their_schema() -> None:
    examples = documentation_examples()
    requests = [message for kind, message in examples if kind == "request"]
    replies = [message for kind, message in examples if kind == "reply"]
    assert len(requests) == len(replies) >= len(wire.MESSAGES)
    for request, reply in zip(requests, replies, strict=True):
        refused = not reply["ok"] and reply["error"]["code"] == "BAD_SCHEMA"
        request_errors = list(validator(f"request.{request['type']}").iter_errors(request))
        assert bool(request_errors) == refused, (request, request_errors)
        assert validator("request").is_valid(request)
        for name in (f"reply.{request['type']}", "reply"):
            validator(name).validate(reply)
    events = [(kind.split()[1], message) for kind, message in examples if kind.startswith("event")]
    assert events
    for topic, event in events:
        validator(f"event.{topic}").validate(event)


@pytest.mark.parametrize(("name", "message"), [
    ("request.ping", {"v": 2, "id": "1", "type": "ping"}),
    ("request.ping", {"v": 1, "id": "1", "type": "health"}),
    ("request.ping", {"v": 1, "id": "", "type": "ping"}),
    ("request.priority.request", {"v": 1, "id": "1", "type": "priority.request"}),
    ("reply.ping", {"v": 1, "id": "1", "ok": True, "body": {}}),
    ("reply.ping", {"v": 1, "id": "1", "ok": False, "body": {"time": 1.0}}),
])
def test_a_message_the_server_would_refuse_or_never_send_does_not_validate(name: str, message: dict) -> None:
    assert not validator(name).is_valid(message)


def test_a_body_without_required_fields_may_be_left_out_and_one_with_them_may_not() -> None:
    assert validator("request.signals.state").is_valid({"v": 1, "id": "1", "type": "signals.state"})
    assert not validator("request.priority.checkout").is_valid({"v": 1, "id": "1", "type": "priority.checkout"})

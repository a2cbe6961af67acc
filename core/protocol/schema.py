"""The wire protocol as JSON Schema files, generated from the msgspec declarations of this package.

One self-contained document per message: ``request.<type>`` (the envelope with that type's body),
``reply.<type>`` (the ``ok`` envelope with that type's reply body, or the error envelope),
``event.<topic>`` (an event's body), and the generic envelopes ``request`` and ``reply``. Each holds
under ``$defs`` only the definitions it refers to, named as their Structs are (``IntersectionState``
is the same in every file that uses it), so a validator or a code generator takes one file and
resolves nothing across files, and a client builds the types of only the messages it uses. The
definitions come from one call to :func:`msgspec.json.schema_components`, shared by every document.

The files ship in the package, in ``pilotage/core/protocol/schemas/``; ``pilotage schema --out
core/protocol/schemas`` (from the repository's root) writes them again after a change of the
declarations, and the tests fail while they differ from what :func:`json_schemas` generates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import msgspec
from msgspec import Struct

from pilotage.core.protocol import EVENTS, MESSAGES, VERSION, Error, Reply, Request

#: The dialect of the documents: msgspec writes JSON Schema 2020-12.
DIALECT = "https://json-schema.org/draft/2020-12/schema"
_REF_PREFIX = "#/$defs/"


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every JSON Schema document of the wire, by name: ``request``, ``reply``, ``request.<type>`` and
    ``reply.<type>`` for each request type of :data:`~pilotage.core.protocol.MESSAGES`, and
    ``event.<topic>`` for each topic of :data:`~pilotage.core.protocol.EVENTS`."""
    error_reply = _envelope("ErrorReply", Reply, "An error reply: what went wrong with the request.",
                            ok=Literal[False], error=Error, body=None)
    roots: dict[str, list[type[Struct]]] = {
        "request": [_envelope("AnyRequest", Request, "A request of any type; its body as its type's schema says.",
                              optional=("body",), body=dict[str, Any])],
        "reply": [_envelope("AnyReply", Reply, "The ok reply to a request of any type.",
                            ok=Literal[True], body=dict[str, Any], error=None), error_reply]}
    for name, message in MESSAGES.items():
        title = "".join(part.capitalize() for part in name.split("."))
        body_optional = not any(info.required for info in msgspec.structs.fields(message.body))
        roots[f"request.{name}"] = [_envelope(
            f"Request{title}", Request, f"A `{name}` request: {message.summary}.",
            optional=("body",) if body_optional else (), type=Literal[name], body=message.body)]
        roots[f"reply.{name}"] = [_envelope(f"Reply{title}", Reply, f"The ok reply to a `{name}` request.",
                                            ok=Literal[True], body=message.reply, error=None), error_reply]
    roots |= {f"event.{topic}": [event] for topic, event in EVENTS.items()}
    structs = dict.fromkeys(kind for kinds in roots.values() for kind in kinds)
    _, definitions = msgspec.json.schema_components(list(structs), ref_template=_REF_PREFIX + "{name}")
    return {name: _document(kinds, definitions) for name, kinds in roots.items()}


def write_json_schemas(directory: str | Path, name: str | None = None) -> list[Path]:
    """Write the document ``name`` of :func:`json_schemas`, or every one, to ``directory/<name>.json``
    (the directory made if need be); returns the files written.

    Raises:
        KeyError: ``name`` is not a document of :func:`json_schemas`.
        OSError: the directory cannot be made or a file written.
    """
    documents = json_schemas()
    chosen = documents if name is None else {name: documents[name]}
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for chosen_name, document in chosen.items():
        path = folder / f"{chosen_name}.json"
        path.write_text(schema_text(document), encoding="utf-8")
        written.append(path)
    return written


def schema_text(document: dict[str, Any]) -> str:
    """A document as its file holds it: indented JSON, its keys in the declarations' order."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _envelope(title: str, declared: type[Struct], description: str, *, optional: tuple[str, ...] = (),
              **changed: Any) -> type[Struct]:
    """The envelope ``declared`` with the fields ``changed`` names given those types (required, but
    those ``optional`` names) or, given None, left out; its ``v`` is :data:`VERSION`."""
    changed = {"v": Literal[VERSION]} | changed
    fields: list[tuple[str, Any, Any]] = []
    for info in msgspec.structs.fields(declared):
        if info.name not in changed:
            kept = (msgspec.field(default_factory=info.default_factory)
                    if callable(info.default_factory) else info.default)
            fields.append((info.encode_name, info.type, kept))
        elif changed[info.name] is not None:
            kind = changed[info.name]
            fields.append((info.encode_name, kind,
                           msgspec.field(default_factory=kind) if info.name in optional else msgspec.NODEFAULT))
    return msgspec.defstruct(title, fields, namespace={"__doc__": description},
                             forbid_unknown_fields=declared.__struct_config__.forbid_unknown_fields)


def _document(kinds: list[type[Struct]], definitions: dict[str, Any]) -> dict[str, Any]:
    """A self-contained document: the definition of ``kinds``' one Struct as its root (else any of
    theirs), with every definition it reaches under ``$defs``."""
    root = dict(definitions[kinds[0].__name__]) if len(kinds) == 1 else {
        "anyOf": [{"$ref": _REF_PREFIX + kind.__name__} for kind in kinds]}
    reached: dict[str, Any] = {}
    pending = [root]
    while pending:
        for ref in _refs(pending.pop()):
            name = ref.removeprefix(_REF_PREFIX)
            if name not in reached:
                reached[name] = definitions[name]
                pending.append(definitions[name])
    return {"$schema": DIALECT, **root, "$defs": dict(sorted(reached.items()))}


def _refs(schema: object) -> list[str]:
    """Every ``$ref`` inside ``schema``, at any depth."""
    if isinstance(schema, dict):
        own = [schema["$ref"]] if "$ref" in schema else []
        return own + [ref for value in schema.values() for ref in _refs(value)]
    if isinstance(schema, list):
        return [ref for value in schema for ref in _refs(value)]
    return []

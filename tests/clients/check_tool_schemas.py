"""Checks MCP tool input schemas with the `jsonschema` package (tests/it/mcp.rs runs it with the pinned venv).

stdin: a JSON list of {"name", "schema", "valid": [instances], "invalid": [instances]}. Each schema must be a
valid JSON Schema 2020-12 document using only formats the draft defines; each `valid` instance must validate and
each `invalid` one must not (format assertions on). Exits non-zero on the first failure; prints "schemas: ok".
"""

import json
import sys

from jsonschema import Draft202012Validator

STANDARD_FORMATS = {
    "date-time", "date", "time", "duration", "email", "idn-email", "hostname", "idn-hostname", "ipv4", "ipv6",
    "uri", "uri-reference", "iri", "iri-reference", "uuid", "uri-template", "json-pointer",
    "relative-json-pointer", "regex",
}


def formats(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "format" and isinstance(value, str):
                yield value
            else:
                yield from formats(value)
    elif isinstance(node, list):
        for item in node:
            yield from formats(item)


def main():
    tools = json.load(sys.stdin)
    for tool in tools:
        name, schema = tool["name"], tool["schema"]
        Draft202012Validator.check_schema(schema)
        odd = set(formats(schema)) - STANDARD_FORMATS
        assert not odd, f"{name}: formats JSON Schema 2020-12 does not define: {odd}"
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        for instance in tool["valid"]:
            errors = [e.message for e in validator.iter_errors(instance)]
            assert not errors, f"{name}: {instance} should be valid: {errors}"
        for instance in tool["invalid"]:
            assert not validator.is_valid(instance), f"{name}: {instance} should be invalid"
    print(f"schemas: ok ({len(tools)} tools)")


if __name__ == "__main__":
    main()

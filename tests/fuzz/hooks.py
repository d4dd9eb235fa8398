"""schemathesis hooks for scripts/fuzz-api.

`before_call` keeps the fuzzer's effects on the test: every backup goes to WAIAAS_FUZZ_BACKUP_DIR (any absolute
directory is valid, and the daemon would create it wherever it was told), and every webhook that could be
delivered points at a closed loopback port (a fuzzed host would be looked up and called).

`positive_data_acceptance` asks that a request the document allows is never refused with 400. The daemon answers
400 only for a request the document forbids, except for the refusals below, which depend on what no schema can
state: state the daemon or the chain holds, or a relation between fields. This check is the built-in one with
exactly those refusals let through (by error code, and for VALIDATION_FAILED by field); run it in place of the
built-in (`--exclude-checks positive_data_acceptance`). Each entry says why.
"""

import json
import os
import re
from urllib.parse import urlsplit

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance, use_after_free

# The document's rule for a webhook URL (CreateWebhookRequest.url), read from the committed document, which a test
# keeps equal to the one the daemon serves.
with open(os.path.join(os.path.dirname(__file__), "..", "..", "openapi", "waiaas.json"), encoding="utf-8") as f:
    _URL_SCHEMA = json.load(f)["components"]["schemas"]["CreateWebhookRequest"]["properties"]["url"]
WEBHOOK_URL = re.compile(_URL_SCHEMA["pattern"])
WEBHOOK_URL_MAX = _URL_SCHEMA["maxLength"]

# Error codes whose 400 depends on state: what the daemon issued, the chain holds or the config names.
STATE_DEPENDENT_CODES = {
    "INVALID_CURSOR": "a cursor is valid only when the daemon issued it for that list",
    "NOT_A_TOKEN": "whether a contract answers as an ERC-20 is on-chain state",
    "INSUFFICIENT_BALANCE": "the agent's balance is on-chain state",
    "NETWORK_NOT_CONFIGURED": "the networks are the operator's [rpc] config",
    "CHANNEL_NOT_CONFIGURED": "the notification channels are the operator's [notifications] config",
    "WEBHOOK_URL_FORBIDDEN": "a webhook host is judged by the addresses it resolves to",
}

# VALIDATION_FAILED issues (field path -> why) that no schema states.
UNSTATABLE_FIELDS = {
    "bucket": "the period (to - from) may hold at most 10000 buckets: a relation between three parameters",
    "ttlSeconds": "the longest session is the operator's [security] session_max_ttl_seconds",
    "rules.token_limits": "the keys of token_limits are token addresses: OpenAPI 3.0 cannot constrain keys",
    "constraints.maxAmountPerTx": "the keys are `native` or a token address: OpenAPI 3.0 cannot constrain keys",
    "constraints.allowedCidrs": "the pattern states the characters and the prefix; the IPv6 text grammar (RFC 4291, with an embedded IPv4) is more than a pattern can state",
    "url": "the pattern states the scheme, the host part and no credentials; a host is parsed by the WHATWG URL rules (IP literals, IDNA, percent-decoding), more than a pattern can state",
}

# VALIDATION_FAILED messages (fragment -> why) that no schema states.
UNSTATABLE_MESSAGES = {
    "must satisfy instant_max <= notify_max <= delay_max": "thresholds are ordered: a relation between three fields",
    "the same token is named twice": "two spellings of one token address: a relation between keys",
    "does not fit in 256 bits": "a decimal string of any length (leading zeros allowed) must stay below 2^256",
    "Solana address (base58, 32 bytes)": "a base58 string must decode to exactly 32 bytes",
    "does not answer as an ERC-20": "whether a contract answers as an ERC-20 is on-chain state",
    "must not be after `to`": "`from` must not be after `to`: a relation between two parameters",
    "is not supported on": "BATCH needs a chain that executes several calls atomically: it depends on the agent's chain",
    "accounts belong to Solana program calls": "program accounts are Solana's: they follow the agent's chain family",
    "address must start with 0x": "an address's form follows the agent's chain family (0x on EVM, base58 on Solana)",
    "agent needs a": "a network's chain family (EVM or Solana) is the operator's [rpc] config",
    "is not an address of the agent's chain family": "an owner's address follows the stored agent's chain family",
    "checksum": "an address in mixed case must be a valid EIP-55 checksum (a Keccak hash of the address)",
}


def unstatable_field(path: str) -> bool:
    """`path` or a parent of it (list indexes and map keys dropped) is in UNSTATABLE_FIELDS."""
    path = re.sub(r"\[\d+\]", "", path)
    parts = path.split(".")
    return any(".".join(parts[:n]) in UNSTATABLE_FIELDS for n in range(1, len(parts) + 1))


# Operations whose VALIDATION_FAILED on a field depends on stored state (field -> why).
STATE_DEPENDENT_FIELDS = {
    "PUT /v1/policies/{id}": {"rules": "the rules must be of the stored policy's type, which the request does not carry"},
}


def allowed_refusal(response, case=None) -> bool:
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    code = body.get("code")
    if code in STATE_DEPENDENT_CODES:
        return True
    if code != "VALIDATION_FAILED":
        return False
    issues = (body.get("details") or {}).get("issues") or []
    state_fields = STATE_DEPENDENT_FIELDS.get(getattr(getattr(case, "operation", None), "label", None), {})
    return bool(issues) and all(
        unstatable_field(issue.get("path", ""))
        or issue.get("path", "").split(".")[0] in state_fields
        or any(fragment in issue.get("message", "") for fragment in UNSTATABLE_MESSAGES)
        for issue in issues
    )


@schemathesis.check
def positive_data_acceptance_unless_state_dependent(ctx, response, case):
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if response.status_code == 400 and allowed_refusal(response, case):
            return None
        raise



# `DELETE /v1/agents/{id}` terminates an agent; its row stays readable as TERMINATED (its address may still hold
# funds, and its audit trail names it), so reading it or what hangs below it afterwards is not a use after free.
TERMINATED_AGENT_PATHS = re.compile(r"^/v1/agents/\{id\}")


@schemathesis.check
def use_after_free_unless_terminated(ctx, response, case):
    """The built-in use_after_free (ST301), except under a terminated agent; run it in place of the built-in
    (`--exclude-checks use_after_free`)."""
    if TERMINATED_AGENT_PATHS.match(case.operation.path):
        return None
    return use_after_free(ctx, response, case)


@schemathesis.hook
def before_call(ctx, case, kwargs):
    body = case.body if isinstance(case.body, dict) else None
    if body is None:
        return
    label = case.operation.label
    if label == "POST /v1/admin/backup":
        output_dir = body.get("outputDir")
        if isinstance(output_dir, str) and output_dir.startswith("/"):
            body["outputDir"] = os.environ["WAIAAS_FUZZ_BACKUP_DIR"]
    if label in ("POST /v1/webhooks", "PATCH /v1/webhooks/{id}"):
        url = body.get("url")
        if isinstance(url, str):
            try:
                parts = urlsplit(url)
                deliverable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
            except ValueError:
                deliverable = False
            # Only a URL the document allows is redirected: a negative case keeps its invalid URL.
            if deliverable and len(url) <= WEBHOOK_URL_MAX and WEBHOOK_URL.fullmatch(url):
                body["url"] = "http://127.0.0.1:9/fuzz"

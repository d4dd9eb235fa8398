"""Smoke test of the client openapi-python-client generates from openapi/waiaas.json (target/clients/python-client).

Drives a real daemon (WAIAAS_URL, WAIAAS_MASTER_PASSWORD) on a real anvil node (ANVIL_URL): creates an agent and a
session, simulates and sends a transfer until CONFIRMED, lists transactions page by page with the cursor, and reads
the error code of a refused request. Run by tests/it/clients.rs; exits non-zero on the first failed expectation.
"""

import json
import os
import sys
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.join(sys.argv[1]))

from waiaas_api import AuthenticatedClient  # noqa: E402
from waiaas_api.api.agents import create_agent, list_agents  # noqa: E402
from waiaas_api.api.sessions import create_session  # noqa: E402
from waiaas_api.api.transactions import (  # noqa: E402
    get_transaction,
    list_transactions,
    send_transaction,
    simulate_transaction,
)
from waiaas_api.models import (  # noqa: E402
    Chain,
    CreateAgentRequest,
    CreateSessionRequest,
    ErrorBody,
    ErrorCode,
    TransactionRequestTransferRequest,
    TransactionRequestTransferRequestType,
    TransactionStatus,
)

URL = os.environ["WAIAAS_URL"]
PASSWORD = os.environ["WAIAAS_MASTER_PASSWORD"]
ANVIL = os.environ["ANVIL_URL"]
RECIPIENT = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def check(condition, what):
    if not condition:
        raise SystemExit(f"python-client smoke: {what}")


def anvil(method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(ANVIL, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


master = AuthenticatedClient(base_url=URL, token=PASSWORD, prefix="", auth_header_name="X-Master-Password")
agent = create_agent.sync(
    client=master, body=CreateAgentRequest(name="py-client", chain=Chain.ETHEREUM, network="anvil")
)
check(not isinstance(agent, ErrorBody) and agent is not None, f"create agent: {agent}")
anvil("anvil_setBalance", [agent.address, hex(10**18)])
issued = create_session.sync(client=master, body=CreateSessionRequest(agent_id=agent.id))
check(not isinstance(issued, ErrorBody) and issued is not None, f"create session: {issued}")
session = AuthenticatedClient(base_url=URL, token=issued.token)

transfer = TransactionRequestTransferRequest(
    type_=TransactionRequestTransferRequestType.TRANSFER, to=RECIPIENT, amount="1000"
)
simulation = simulate_transaction.sync(client=session, body=transfer)
check(not isinstance(simulation, ErrorBody) and simulation.success, f"simulate: {simulation}")

ids = []
for _ in range(2):
    sent = send_transaction.sync(client=session, body=transfer)
    check(not isinstance(sent, ErrorBody) and sent is not None, f"send: {sent}")
    ids.append(sent.id)
deadline = time.monotonic() + 60
for tx_id in ids:
    while True:
        tx = get_transaction.sync(client=session, id=tx_id)
        check(not isinstance(tx, ErrorBody), f"get transaction: {tx}")
        if tx.status == TransactionStatus.CONFIRMED:
            break
        check(time.monotonic() < deadline and tx.status != TransactionStatus.FAILED, f"not confirmed: {tx}")
        time.sleep(0.2)

first = list_transactions.sync(client=session, limit=1)
check(len(first.data) == 1 and first.has_more and isinstance(first.next_cursor, str), f"first page: {first}")
second = list_transactions.sync(client=session, limit=1, cursor=first.next_cursor)
check(len(second.data) == 1 and second.data[0].id != first.data[0].id, f"second page: {second}")
check({first.data[0].id, second.data[0].id} == set(ids), "the pages hold the two transfers")

missing = get_transaction.sync(client=session, id=uuid.uuid4())
check(isinstance(missing, ErrorBody) and missing.code == ErrorCode.TX_NOT_FOUND, f"missing: {missing}")
check(missing.retryable is False, "TX_NOT_FOUND is not retryable")
wrong = AuthenticatedClient(base_url=URL, token="wrong-password", prefix="", auth_header_name="X-Master-Password")
refused = list_agents.sync(client=wrong)
check(isinstance(refused, ErrorBody) and refused.code == ErrorCode.INVALID_MASTER_PASSWORD, f"refused: {refused}")
print("python-client smoke: ok")

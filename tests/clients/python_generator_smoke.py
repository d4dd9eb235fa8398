"""Smoke test of the Python client openapi-generator generates from openapi/waiaas.json (target/clients/python).

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

sys.path.insert(0, sys.argv[1])

import openapi_client  # noqa: E402
from openapi_client.exceptions import ApiException  # noqa: E402
from openapi_client.models import (  # noqa: E402
    Chain,
    CreateAgentRequest,
    CreateSessionRequest,
    TransactionRequest,
    TransactionRequestTransferRequest,
    TransactionStatus,
)

URL = os.environ["WAIAAS_URL"]
PASSWORD = os.environ["WAIAAS_MASTER_PASSWORD"]
ANVIL = os.environ["ANVIL_URL"]
RECIPIENT = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def check(condition, what):
    if not condition:
        raise SystemExit(f"python-generator smoke: {what}")


def anvil(method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(ANVIL, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def client(password=None, token=None):
    configuration = openapi_client.Configuration(host=URL)
    if password is not None:
        configuration.api_key["masterAuth"] = password
    if token is not None:
        configuration.access_token = token
    return openapi_client.ApiClient(configuration)


def error_code(call):
    try:
        call()
    except ApiException as error:
        return json.loads(error.body)["code"], error.status
    raise SystemExit("python-generator smoke: the call should have failed")


master = client(password=PASSWORD)
agent = openapi_client.AgentsApi(master).create_agent(
    CreateAgentRequest(name="py-generator", chain=Chain.ETHEREUM, network="anvil")
)
anvil("anvil_setBalance", [agent.address, hex(10**18)])
issued = openapi_client.SessionsApi(master).create_session(CreateSessionRequest(agent_id=agent.id))
transactions = openapi_client.TransactionsApi(client(token=issued.token))

transfer = TransactionRequest(
    TransactionRequestTransferRequest(type="TRANSFER", to=RECIPIENT, amount="1000")
)
simulation = transactions.simulate_transaction(transfer)
check(simulation.success, f"simulate: {simulation}")
ids = [transactions.send_transaction(transfer).id for _ in range(2)]
deadline = time.monotonic() + 60
for tx_id in ids:
    while (tx := transactions.get_transaction(tx_id)).status != TransactionStatus.CONFIRMED:
        check(time.monotonic() < deadline and tx.status != TransactionStatus.FAILED, f"not confirmed: {tx}")
        time.sleep(0.2)

first = transactions.list_transactions(limit=1)
check(len(first.data) == 1 and first.has_more and first.next_cursor, f"first page: {first}")
second = transactions.list_transactions(limit=1, cursor=first.next_cursor)
check(len(second.data) == 1 and second.data[0].id != first.data[0].id, f"second page: {second}")
check({first.data[0].id, second.data[0].id} == set(ids), "the pages hold the two transfers")

code = error_code(lambda: transactions.get_transaction(str(uuid.uuid4())))
check(code == ("TX_NOT_FOUND", 404), f"missing transaction: {code}")
code = error_code(lambda: openapi_client.AgentsApi(client(password="wrong-password")).list_agents())
check(code == ("INVALID_MASTER_PASSWORD", 401), f"wrong password: {code}")
print("python-generator smoke: ok")

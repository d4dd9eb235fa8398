// Smoke test of the Go client openapi-generator generates from openapi/waiaas.json (target/clients/go, built by
// run.sh with the standard library and Debian's gopkg.in/validator.v2 only). Drives a real daemon (WAIAAS_URL,
// WAIAAS_MASTER_PASSWORD) on a real anvil node (ANVIL_URL): creates an agent and a session, simulates and sends a
// transfer until CONFIRMED, lists transactions page by page with the cursor, and reads the error code of a refused
// request. Exits non-zero on the first failed expectation.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	waiaas "github.com/GIT_USER_ID/GIT_REPO_ID"
)

const recipient = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"

func check(condition bool, format string, args ...any) {
	if !condition {
		fmt.Fprintf(os.Stderr, "go smoke: "+format+"\n", args...)
		os.Exit(1)
	}
}

func must[T any](value T, response *http.Response, err error) T {
	check(err == nil, "unexpected error %v (HTTP %v)", err, response)
	return value
}

// errorCode is the error code and HTTP status of a call that must fail with the daemon's error body.
func errorCode(response *http.Response, err error) (string, int) {
	var apiError *waiaas.GenericOpenAPIError
	check(errors.As(err, &apiError), "the call should have failed with an API error, got %v", err)
	body, ok := apiError.Model().(waiaas.ErrorBody)
	check(ok, "the error body was not decoded as ErrorBody: %T %s", apiError.Model(), apiError.Body())
	return string(body.GetCode()), response.StatusCode
}

func main() {
	url, password, anvil := os.Getenv("WAIAAS_URL"), os.Getenv("WAIAAS_MASTER_PASSWORD"), os.Getenv("ANVIL_URL")
	config := waiaas.NewConfiguration()
	config.Servers = waiaas.ServerConfigurations{{URL: url}}
	client := waiaas.NewAPIClient(config)
	master := context.WithValue(context.Background(), waiaas.ContextAPIKeys,
		map[string]waiaas.APIKey{"masterAuth": {Key: password}})

	agent := must(client.AgentsAPI.CreateAgent(master).
		CreateAgentRequest(*waiaas.NewCreateAgentRequest(waiaas.CHAIN_ETHEREUM, "go-client", "anvil")).Execute())
	fund := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"anvil_setBalance","params":["%s","0xde0b6b3a7640000"]}`,
		agent.GetAddress())
	funded, err := http.Post(anvil, "application/json", bytes.NewBufferString(fund))
	check(err == nil && funded.StatusCode == 200, "anvil_setBalance: %v", err)
	issued := must(client.SessionsAPI.CreateSession(master).
		CreateSessionRequest(*waiaas.NewCreateSessionRequest(agent.GetId())).Execute())
	session := context.WithValue(context.Background(), waiaas.ContextAccessToken, issued.GetToken())
	transactions := client.TransactionsAPI

	transfer := waiaas.TransactionRequestTransferRequestAsTransactionRequest(
		waiaas.NewTransactionRequestTransferRequest("1000", recipient, "TRANSFER"))
	simulation := must(transactions.SimulateTransaction(session).TransactionRequest(transfer).Execute())
	check(simulation.GetSuccess(), "simulate: %+v", simulation)
	var ids []string
	for i := 0; i < 2; i++ {
		sent := must(transactions.SendTransaction(session).TransactionRequest(transfer).Execute())
		ids = append(ids, sent.GetId())
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, id := range ids {
		for {
			tx := must(transactions.GetTransaction(session, id).Execute())
			status := string(tx.GetStatus())
			if status == "CONFIRMED" {
				break
			}
			check(time.Now().Before(deadline) && status != "FAILED", "not confirmed: %+v", tx)
			time.Sleep(200 * time.Millisecond)
		}
	}

	first := must(transactions.ListTransactions(session).Limit(1).Execute())
	check(len(first.GetData()) == 1 && first.GetHasMore() && first.GetNextCursor() != "", "first page: %+v", first)
	second := must(transactions.ListTransactions(session).Limit(1).Cursor(first.GetNextCursor()).Execute())
	check(len(second.GetData()) == 1 && second.GetData()[0].GetId() != first.GetData()[0].GetId(),
		"second page: %+v", second)
	seen := map[string]bool{first.GetData()[0].GetId(): true, second.GetData()[0].GetId(): true}
	check(seen[ids[0]] && seen[ids[1]], "the pages hold the two transfers: %v %v", seen, ids)

	_, response, err := transactions.GetTransaction(session, "01900000-0000-7000-8000-000000000000").Execute()
	code, status := errorCode(response, err)
	check(code == "TX_NOT_FOUND" && status == 404, "missing transaction: %s %d", code, status)
	wrong := context.WithValue(context.Background(), waiaas.ContextAPIKeys,
		map[string]waiaas.APIKey{"masterAuth": {Key: "wrong-password"}})
	_, response, err = client.AgentsAPI.ListAgents(wrong).Execute()
	code, status = errorCode(response, err)
	check(code == "INVALID_MASTER_PASSWORD" && status == 401, "wrong password: %s %d", code, status)
	fmt.Println("go smoke: ok")
}

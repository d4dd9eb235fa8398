//! Error classes against a real anvil (issue 16, item 4): input the chain rejects (an address without code, a
//! contract that is no ERC-20, a reverting call) is a final 4xx with a code, never the retryable `CHAIN_ERROR`
//! that makes an agent retry forever; only a node that fails or cannot be reached is a retryable 5xx.

use serde_json::json;
use waiaas_client::ClientError;

use crate::support::{Anvil, FundedAgent, fail_calldata, transfer_calldata};

/// An address no contract lives at.
const NO_CODE: &str = "0x1111111111111111111111111111111111111111";
const RECIPIENT: &str = "0x2222222222222222222222222222222222222222";

/// (status, code, retryable, details) of a call that must fail with an API error.
#[track_caller]
fn refused<T: std::fmt::Debug>(result: waiaas_client::Result<T>) -> (u16, String, bool, serde_json::Value) {
    match result {
        Err(ClientError::Api { status, code, retryable, details, .. }) => {
            (status, code, retryable, details.unwrap_or_default())
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[test]
fn a_token_balance_of_what_is_no_token_is_a_final_4xx() {
    let s = FundedAgent::start(Anvil::start(), &[], "errors");
    let (token, reverter) = (s.anvil.deploy_token(1_000), s.anvil.deploy_reverter());
    s.anvil.give_tokens(&token, &s.address, 7);
    // A real ERC-20 answers.
    assert_eq!(s.agent.wallet_token_balance(&token).expect("token balance").balance, "7");

    for (what, address) in [("an address without code", NO_CODE), ("a contract that is no ERC-20", &reverter)] {
        let (status, code, retryable, details) = refused(s.agent.wallet_token_balance(address));
        assert_eq!((status, code.as_str(), retryable), (400, "NOT_A_TOKEN", false), "{what}");
        assert_eq!(details["network"], "anvil", "{what}: {details}");
        assert!(details["token"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(address)), "{what}: {details}");
    }

    // A node that cannot be reached is still the retryable CHAIN_ERROR.
    let mut s = s;
    s.anvil.stop();
    let (status, code, retryable, _) = refused(s.agent.wallet_token_balance(&token));
    assert_eq!((status, code.as_str(), retryable), (502, "CHAIN_ERROR", true));
}

#[test]
fn simulate_answers_what_the_chain_rejects_without_a_retryable_error() {
    let s = FundedAgent::start(Anvil::start(), &[], "errors");
    let reverter = s.anvil.deploy_reverter();

    // Calldata that reads as an ERC-20 transfer, sent to an address without code and to a contract that is no
    // token: the dry-run answers (no 502); the token's balance change is unknown and says so.
    for (what, to, executes) in [("no code", NO_CODE, true), ("no ERC-20", reverter.as_str(), false)] {
        let body = json!({"type": "CONTRACT_CALL", "to": to, "calldata": transfer_calldata(RECIPIENT, 5)});
        let result = s.agent.simulate(&body).unwrap_or_else(|e| panic!("{what}: simulate refused: {e:?}"));
        let warning = result.warnings.iter().find(|w| w.code == "NOT_A_TOKEN").unwrap_or_else(|| panic!("{what}"));
        assert_eq!(warning.severity, "warning", "{what}: {warning:?}");
        assert!(
            result.balance_changes.iter().all(|c| !c.asset.eq_ignore_ascii_case(to)),
            "{what}: no balance change for a token whose balance the chain does not answer: {result:?}"
        );
        assert!(result.balance_changes.iter().any(|c| c.asset == "native"), "{what}: {result:?}");
        // Calling an account without code succeeds on chain; the reverter has no `transfer` and reverts.
        assert_eq!(result.simulation.success, executes, "{what}: {result:?}");
        assert_eq!(result.has_warning("SIMULATION_FAILED"), !executes, "{what}: {result:?}");
    }

    // A reverting call: the dry-run reports the revert reason; it is not an error response.
    let body = json!({"type": "CONTRACT_CALL", "to": reverter, "calldata": fail_calldata()});
    let result = s.agent.simulate(&body).expect("a reverting call is simulated, not refused");
    assert!(!result.success && !result.simulation.success, "{result:?}");
    assert!(result.simulation.error.as_deref().is_some_and(|e| e.contains("always fails")), "{result:?}");
    let warning = result.warnings.iter().find(|w| w.code == "SIMULATION_FAILED").expect("SIMULATION_FAILED");
    assert_eq!(warning.severity, "error");

    // A TOKEN_TRANSFER naming something that is no ERC-20: the request is refused as invalid, finally.
    for address in [NO_CODE, reverter.as_str()] {
        let body = json!({"type": "TOKEN_TRANSFER", "to": RECIPIENT, "amount": "1",
            "token": {"address": address, "decimals": 6, "symbol": "FAKE"}});
        let (status, code, retryable, details) = refused(s.agent.simulate(&body));
        assert_eq!((status, code.as_str(), retryable), (400, "VALIDATION_FAILED", false), "{address}: {details}");
        assert_eq!(details["issues"][0]["path"], "token.address", "{details}");
    }
}

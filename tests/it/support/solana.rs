//! A real Solana JSON-RPC on a free loopback port: the helper binary `tools/solana-node` (an embedded Surfnet),
//! built by scripts/test. Also a test payer that creates SPL mints and mints tokens, and on-chain reads.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use solana_keypair::Keypair;
use solana_pubkey::Pubkey;
use solana_signer::Signer;
use solana_transaction::Transaction;
use spl_associated_token_account_interface::address::get_associated_token_address;

use super::eventually;

pub struct SolanaNode {
    child: Child,
    /// Held open: the helper runs until its stdin closes.
    _stdin: ChildStdin,
    pub url: String,
    payer: Keypair,
}

fn binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin/waiaas-solana-node");
    assert!(
        path.exists(),
        "the Solana test runtime is not built: run scripts/build-solana-node (scripts/test does) to build {}",
        path.display()
    );
    path
}

impl SolanaNode {
    pub fn start() -> SolanaNode {
        let mut child = Command::new(binary())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the Solana test runtime");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.trim().to_owned());
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(60)).expect("the Solana runtime did not print its RPC URL");
        let node = SolanaNode { child, _stdin: stdin, url, payer: Keypair::new() };
        node.airdrop(&node.payer.pubkey().to_string(), 100_000_000_000);
        node
    }

    /// One JSON-RPC call; panics on an RPC error.
    pub fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut response = ureq::post(&self.url).send_json(&body).expect("solana rpc");
        let value: serde_json::Value = response.body_mut().read_json().expect("solana json");
        assert!(value.get("error").is_none(), "{method} failed: {value}");
        value["result"].clone()
    }

    /// Lamports of `address` at `confirmed`.
    pub fn balance(&self, address: &str) -> u64 {
        self.rpc("getBalance", serde_json::json!([address, {"commitment": "confirmed"}]))["value"]
            .as_u64()
            .expect("balance")
    }

    /// Airdrops `lamports` to `address` and waits until they show.
    pub fn airdrop(&self, address: &str, lamports: u64) {
        let before = self.balance(address);
        self.rpc("requestAirdrop", serde_json::json!([address, lamports]));
        eventually(30, "the airdrop", || (self.balance(address) >= before + lamports).then_some(()));
    }

    /// Produces `blocks` blocks (each airdrop makes one), ageing every earlier blockhash.
    pub fn advance_blocks(&self, blocks: u64) {
        let sink = Keypair::new().pubkey().to_string();
        let start = self.block_height();
        for _ in 0..blocks {
            self.rpc("requestAirdrop", serde_json::json!([sink, 1_000_000]));
        }
        eventually(30, "the blocks", || (self.block_height() >= start + blocks).then_some(()));
    }

    pub fn block_height(&self) -> u64 {
        self.rpc("getBlockHeight", serde_json::json!([{"commitment": "confirmed"}])).as_u64().expect("height")
    }

    /// Sends a transaction of `instructions` paid by the test payer and signed by it and `signers`; waits for it.
    fn send(&self, instructions: &[solana_instruction::Instruction], signers: &[&Keypair]) {
        let blockhash =
            self.rpc("getLatestBlockhash", serde_json::json!([{"commitment": "confirmed"}]))["value"]["blockhash"]
                .as_str()
                .expect("blockhash")
                .parse()
                .expect("hash");
        let mut all: Vec<&Keypair> = vec![&self.payer];
        all.extend_from_slice(signers);
        let tx = Transaction::new_signed_with_payer(instructions, Some(&self.payer.pubkey()), &all, blockhash);
        let raw = base64::engine::general_purpose::STANDARD.encode(bincode::serialize(&tx).expect("encode"));
        let signature = self.rpc(
            "sendTransaction",
            serde_json::json!([raw, {"encoding": "base64", "preflightCommitment": "confirmed"}]),
        );
        eventually(30, "the test transaction", || {
            let status = self.rpc("getSignatureStatuses", serde_json::json!([[signature]]));
            let status = &status["value"][0];
            assert!(status.is_null() || status["err"].is_null(), "test transaction failed: {status}");
            (status["confirmationStatus"] == "confirmed" || status["confirmationStatus"] == "finalized").then_some(())
        });
    }

    /// A new SPL Token mint with `decimals`, minted by the test payer.
    pub fn create_mint(&self, decimals: u8) -> String {
        use solana_program_pack::Pack;
        let mint = Keypair::new();
        let len = spl_token_interface::state::Mint::LEN;
        let rent = self.rpc("getMinimumBalanceForRentExemption", serde_json::json!([len])).as_u64().expect("rent");
        let create = solana_system_interface::instruction::create_account(
            &self.payer.pubkey(),
            &mint.pubkey(),
            rent,
            len as u64,
            &spl_token_interface::id(),
        );
        let init = spl_token_interface::instruction::initialize_mint2(
            &spl_token_interface::id(),
            &mint.pubkey(),
            &self.payer.pubkey(),
            None,
            decimals,
        )
        .expect("initialize_mint2");
        self.send(&[create, init], &[&mint]);
        mint.pubkey().to_string()
    }

    /// Mints `amount` of `mint` to `owner`'s associated token account (created when missing).
    pub fn mint_to(&self, mint: &str, owner: &str, amount: u64) {
        let (mint, owner) = (Pubkey::from_str(mint).expect("mint"), Pubkey::from_str(owner).expect("owner"));
        let ata = get_associated_token_address(&owner, &mint);
        let create = spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
            &self.payer.pubkey(),
            &owner,
            &mint,
            &spl_token_interface::id(),
        );
        let mint_to = spl_token_interface::instruction::mint_to(
            &spl_token_interface::id(),
            &mint,
            &ata,
            &self.payer.pubkey(),
            &[],
            amount,
        )
        .expect("mint_to");
        self.send(&[create, mint_to], &[]);
    }

    /// `owner`'s balance of `mint` (its associated token account; `None` when it has none).
    pub fn token_balance(&self, mint: &str, owner: &str) -> Option<u64> {
        let (mint, owner) = (Pubkey::from_str(mint).expect("mint"), Pubkey::from_str(owner).expect("owner"));
        let ata = get_associated_token_address(&owner, &mint).to_string();
        let info =
            self.rpc("getAccountInfo", serde_json::json!([ata, {"encoding": "base64", "commitment": "confirmed"}]));
        if info["value"].is_null() {
            return None;
        }
        let balance = self.rpc("getTokenAccountBalance", serde_json::json!([ata, {"commitment": "confirmed"}]));
        Some(balance["value"]["amount"].as_str().expect("amount").parse().expect("u64"))
    }

    /// The delegate and delegated amount of `owner`'s token account of `mint`.
    pub fn delegation(&self, mint: &str, owner: &str) -> Option<(String, u64)> {
        use solana_program_pack::Pack;
        let (mint, owner) = (Pubkey::from_str(mint).expect("mint"), Pubkey::from_str(owner).expect("owner"));
        let ata = get_associated_token_address(&owner, &mint).to_string();
        let info =
            self.rpc("getAccountInfo", serde_json::json!([ata, {"encoding": "base64", "commitment": "confirmed"}]));
        let data = base64::engine::general_purpose::STANDARD
            .decode(info["value"]["data"][0].as_str().expect("data"))
            .expect("base64");
        let account = spl_token_interface::state::Account::unpack(&data).expect("token account");
        Option::<Pubkey>::from(account.delegate).map(|d| (d.to_string(), account.delegated_amount))
    }
}

/// A fresh address that holds nothing.
pub fn fresh_address() -> String {
    Keypair::new().pubkey().to_string()
}

impl Drop for SolanaNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

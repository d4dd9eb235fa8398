//! What a request does on chain, whatever its `type` label says. Policies and session constraints judge these
//! effects, never the label: a CONTRACT_CALL with empty calldata is a native transfer, one whose calldata is an
//! ERC-20 `transfer` / `transferFrom` / `approve` / `increaseAllowance` is also that token transfer or approval,
//! and native `value` on any call goes to its `to`.

use alloy_primitives::U256;
use alloy_sol_types::{SolCall, sol};

use super::address::{Address, EvmAddress, SolanaAddress};
use super::request::{Asset, ProgramAccount, TxKind};
use crate::Amount;

sol! {
    function transfer(address to, uint256 value) returns (bool);
    function transferFrom(address from, address to, uint256 value) returns (bool);
    function approve(address spender, uint256 value) returns (bool);
    function increaseAllowance(address spender, uint256 addedValue) returns (bool);
}

/// One thing a transaction does on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Native coin sent to `to`: a TRANSFER, or the `value` of any call.
    NativeTransfer {
        /// The recipient.
        to: Address,
        /// In wei.
        amount: Amount,
    },
    /// ERC-20 tokens moved to `to`: a TOKEN_TRANSFER, or `transfer` / `transferFrom` calldata.
    TokenTransfer {
        /// The token contract (or mint).
        token: Address,
        /// The recipient.
        to: Address,
        /// In the token's smallest unit.
        amount: Amount,
    },
    /// An ERC-20 allowance granted to `spender`: an APPROVE, or `approve` / `increaseAllowance` calldata.
    TokenApproval {
        /// The token contract (or mint).
        token: Address,
        /// Who may spend.
        spender: Address,
        /// In the token's smallest unit.
        amount: Amount,
    },
    /// Code of `contract` runs: a CONTRACT_CALL with calldata.
    ContractCall {
        /// The called contract (or program).
        contract: Address,
    },
}

/// The request type an effect amounts to (what a session's `allowedTypes` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EffectKind {
    /// A native transfer.
    Transfer,
    /// An ERC-20 transfer.
    TokenTransfer,
    /// An ERC-20 allowance.
    Approve,
    /// Contract code runs.
    ContractCall,
}

impl EffectKind {
    /// Every kind.
    pub const ALL: [EffectKind; 4] =
        [EffectKind::Transfer, EffectKind::TokenTransfer, EffectKind::Approve, EffectKind::ContractCall];

    /// The request `type` name of this kind of effect.
    pub fn as_str(self) -> &'static str {
        match self {
            EffectKind::Transfer => "TRANSFER",
            EffectKind::TokenTransfer => "TOKEN_TRANSFER",
            EffectKind::Approve => "APPROVE",
            EffectKind::ContractCall => "CONTRACT_CALL",
        }
    }

    /// The kind of a request `type` name.
    pub fn parse(s: &str) -> Option<EffectKind> {
        EffectKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An approval of `token` is "unlimited" (denied unless a policy allows it explicitly) from 2^255 on EVM, and at
/// `u64::MAX` on Solana (the largest allowance SPL Token holds, which the adapter also gives any larger request).
pub fn is_unlimited_approval(token: Address, amount: Amount) -> bool {
    match token {
        Address::Evm(_) => amount.0 >= U256::from(1u8) << 255,
        Address::Solana(_) => amount.0 >= U256::from(u64::MAX),
    }
}

impl Effect {
    /// The request type this effect amounts to.
    pub fn kind(&self) -> EffectKind {
        match self {
            Effect::NativeTransfer { .. } => EffectKind::Transfer,
            Effect::TokenTransfer { .. } => EffectKind::TokenTransfer,
            Effect::TokenApproval { .. } => EffectKind::Approve,
            Effect::ContractCall { .. } => EffectKind::ContractCall,
        }
    }

    /// The address that benefits: recipient, spender or called contract.
    pub fn counterparty(&self) -> Address {
        match self {
            Effect::NativeTransfer { to, .. } | Effect::TokenTransfer { to, .. } => *to,
            Effect::TokenApproval { spender, .. } => *spender,
            Effect::ContractCall { contract } => *contract,
        }
    }

    /// The asset and amount this effect exposes the wallet to (an approval counts as the exposure it creates);
    /// none for the call itself.
    pub fn exposure(&self) -> Option<(Asset, Amount)> {
        match self {
            Effect::NativeTransfer { amount, .. } => Some((Asset::Native, *amount)),
            Effect::TokenTransfer { token, amount, .. } | Effect::TokenApproval { token, amount, .. } => {
                Some((Asset::Token(*token), *amount))
            }
            Effect::ContractCall { .. } => None,
        }
    }

    /// The token contract this effect touches, if any.
    pub fn token(&self) -> Option<Address> {
        match self {
            Effect::TokenTransfer { token, .. } | Effect::TokenApproval { token, .. } => Some(*token),
            Effect::NativeTransfer { .. } | Effect::ContractCall { .. } => None,
        }
    }
}

/// Why calldata that carries an ERC-20 selector was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MalformedCalldata(pub &'static str);

/// Decodes calldata sent to `contract` as an ERC-20 call. `Ok(None)`: not one of the four ERC-20 functions.
/// `Err`: the selector is one of them but the arguments do not decode strictly (refused, never guessed).
pub fn erc20_effect(contract: EvmAddress, calldata: &[u8]) -> Result<Option<Effect>, MalformedCalldata> {
    let Some(selector) = calldata.get(..4) else { return Ok(None) };
    let token = Address::Evm(contract);
    let evm = |address| Address::Evm(EvmAddress(address));
    let effect = if selector == transferCall::SELECTOR {
        let call = transferCall::abi_decode_validate(calldata).map_err(|_| MalformedCalldata("transfer"))?;
        Effect::TokenTransfer { token, to: evm(call.to), amount: Amount(call.value) }
    } else if selector == transferFromCall::SELECTOR {
        let call = transferFromCall::abi_decode_validate(calldata).map_err(|_| MalformedCalldata("transferFrom"))?;
        Effect::TokenTransfer { token, to: evm(call.to), amount: Amount(call.value) }
    } else if selector == approveCall::SELECTOR {
        let call = approveCall::abi_decode_validate(calldata).map_err(|_| MalformedCalldata("approve"))?;
        Effect::TokenApproval { token, spender: evm(call.spender), amount: Amount(call.value) }
    } else if selector == increaseAllowanceCall::SELECTOR {
        let call =
            increaseAllowanceCall::abi_decode_validate(calldata).map_err(|_| MalformedCalldata("increaseAllowance"))?;
        Effect::TokenApproval { token, spender: evm(call.spender), amount: Amount(call.addedValue) }
    } else {
        return Ok(None);
    };
    if calldata.len() != 4 + effect_args_len(&effect, selector) {
        return Err(MalformedCalldata("trailing bytes after the ERC-20 arguments"));
    }
    Ok(Some(effect))
}

/// Decodes the input of a call to `to` by the family of `to`: ERC-20 calldata on EVM; on Solana an instruction
/// of the System or SPL Token program over its `accounts` ([`solana_effect`]). `Ok(None)`: the call is judged as
/// a call only.
pub fn call_effect(
    to: Address,
    calldata: &[u8],
    accounts: &[ProgramAccount],
) -> Result<Option<Effect>, MalformedCalldata> {
    match to {
        Address::Evm(contract) => erc20_effect(contract, calldata),
        Address::Solana(program) => solana_effect(program, calldata, accounts),
    }
}

/// The SPL Token-2022 program, whose base instructions (transfer, approve, ...) are SPL Token's.
const TOKEN_2022: [u8; 32] = [
    6, 221, 246, 225, 238, 117, 143, 222, 24, 66, 93, 188, 228, 108, 205, 218, 182, 26, 252, 77, 131, 185, 13, 39, 254,
    189, 249, 40, 216, 161, 139, 252,
];

/// Decodes a Solana instruction of `program` as what it moves. The System program: `transfer`,
/// `transfer_with_seed`, `create_account`, `create_account_with_seed` and `withdraw_nonce_account` are native
/// transfers to the account that receives the lamports; any other System instruction (`assign`, `allocate`,
/// nonce administration) is refused, since it can hand the agent's account to another program. SPL Token (and
/// Token-2022): `transfer_checked` is a token transfer of its mint to its destination token account,
/// `approve_checked` an approval of its mint to its delegate; the unchecked `transfer` / `approve` (which do not
/// name the mint) and every other token instruction (`set_authority`, `close_account`, `burn`, ...) are refused.
/// Any other program: `Ok(None)`, judged as a call of that program.
pub fn solana_effect(
    program: SolanaAddress,
    data: &[u8],
    accounts: &[ProgramAccount],
) -> Result<Option<Effect>, MalformedCalldata> {
    use solana_system_interface::instruction::SystemInstruction;
    use spl_token_interface::instruction::TokenInstruction;
    let account = |i: usize| {
        accounts.get(i).map(|a| a.pubkey).ok_or(MalformedCalldata("the instruction names fewer accounts than it uses"))
    };
    let lamports = |to: usize, lamports: u64| -> Result<Option<Effect>, MalformedCalldata> {
        Ok(Some(Effect::NativeTransfer { to: account(to)?, amount: Amount::from_u128(u128::from(lamports)) }))
    };
    if program.0 == solana_system_interface::program::ID.to_bytes() {
        let instruction: SystemInstruction =
            bincode::deserialize(data).map_err(|_| MalformedCalldata("System program data that does not decode"))?;
        return match instruction {
            SystemInstruction::Transfer { lamports: n } => lamports(1, n),
            SystemInstruction::TransferWithSeed { lamports: n, .. } => lamports(2, n),
            SystemInstruction::CreateAccount { lamports: n, .. }
            | SystemInstruction::CreateAccountWithSeed { lamports: n, .. } => lamports(1, n),
            SystemInstruction::WithdrawNonceAccount(n) => lamports(1, n),
            _ => Err(MalformedCalldata(
                "only a System transfer or account creation may be called directly (use TRANSFER for SOL)",
            )),
        };
    }
    if program.0 == spl_token_interface::ID.to_bytes() || program.0 == TOKEN_2022 {
        let amount = |n: u64| Amount::from_u128(u128::from(n));
        return match TokenInstruction::unpack(data) {
            Ok(TokenInstruction::TransferChecked { amount: n, .. }) => {
                Ok(Some(Effect::TokenTransfer { token: account(1)?, to: account(2)?, amount: amount(n) }))
            }
            Ok(TokenInstruction::ApproveChecked { amount: n, .. }) => {
                Ok(Some(Effect::TokenApproval { token: account(1)?, spender: account(2)?, amount: amount(n) }))
            }
            Ok(_) => Err(MalformedCalldata(
                "only SPL Token transfer_checked and approve_checked may be called directly (they name the mint; \
                 use TOKEN_TRANSFER or APPROVE)",
            )),
            Err(_) => Err(MalformedCalldata("SPL Token program data that does not decode")),
        };
    }
    Ok(None)
}

/// Length of the ABI-encoded arguments of the decoded call (all static: 32 bytes each).
fn effect_args_len(effect: &Effect, selector: &[u8]) -> usize {
    match effect {
        Effect::TokenTransfer { .. } if selector == transferFromCall::SELECTOR => 96,
        _ => 64,
    }
}

impl TxKind {
    /// Everything this request does on chain, in order (a batch: its members' effects).
    pub fn effects(&self) -> Vec<Effect> {
        let mut out = Vec::new();
        push_effects(self, &mut out);
        out
    }

    /// Exposure per asset over all effects (what reservations and spending limits count).
    pub fn outflows(&self) -> Vec<(Asset, Amount)> {
        let mut totals: Vec<(Asset, Amount)> = Vec::new();
        for (asset, amount) in self.effects().iter().filter_map(Effect::exposure) {
            match totals.iter_mut().find(|(a, _)| *a == asset) {
                Some((_, total)) => *total = total.saturating_add(amount),
                None => totals.push((asset, amount)),
            }
        }
        totals
    }

    /// What actually leaves the wallet per asset (transfers only: an approval moves nothing yet).
    pub fn movements(&self) -> Vec<(Asset, Amount)> {
        let mut totals: Vec<(Asset, Amount)> = Vec::new();
        for effect in self.effects() {
            let (asset, amount) = match effect {
                Effect::NativeTransfer { amount, .. } => (Asset::Native, amount),
                Effect::TokenTransfer { token, amount, .. } => (Asset::Token(token), amount),
                Effect::TokenApproval { .. } | Effect::ContractCall { .. } => continue,
            };
            match totals.iter_mut().find(|(a, _)| *a == asset) {
                Some((_, total)) => *total = total.saturating_add(amount),
                None => totals.push((asset, amount)),
            }
        }
        totals
    }

    /// The token contracts this request touches (named or decoded from calldata), without repeats.
    pub fn tokens(&self) -> Vec<Address> {
        let mut tokens: Vec<Address> = Vec::new();
        for token in self.effects().iter().filter_map(Effect::token) {
            if !tokens.contains(&token) {
                tokens.push(token);
            }
        }
        tokens
    }
}

fn push_effects(kind: &TxKind, out: &mut Vec<Effect>) {
    match kind {
        TxKind::Transfer { to, amount } => out.push(Effect::NativeTransfer { to: *to, amount: *amount }),
        TxKind::TokenTransfer { to, amount, token } => {
            out.push(Effect::TokenTransfer { token: token.address, to: *to, amount: *amount })
        }
        TxKind::Approve { spender, amount, token } => {
            out.push(Effect::TokenApproval { token: token.address, spender: *spender, amount: *amount })
        }
        TxKind::ContractCall { to, calldata, value, accounts } => {
            if calldata.is_empty() {
                out.push(Effect::NativeTransfer { to: *to, amount: *value });
                return;
            }
            out.push(Effect::ContractCall { contract: *to });
            if *value > Amount::ZERO {
                out.push(Effect::NativeTransfer { to: *to, amount: *value });
            }
            // Parsing refused malformed ERC-20 calldata, so an error cannot reach here; were it to, the call
            // effect above still makes CONTRACT_WHITELIST judge it.
            if let Ok(Some(effect)) = call_effect(*to, calldata, accounts) {
                out.push(effect);
            }
        }
        TxKind::Batch { instructions } => instructions.iter().for_each(|leaf| push_effects(leaf, out)),
    }
}

/// A token movement a receipt logged (on EVM the ERC-20 `Transfer` and `Approval` events), read by the chain
/// adapter so the core can check that what a transaction was to do happened: a call that succeeds proves nothing
/// about a token that only says it moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenLog {
    /// `amount` of `token` moved from `from` to `to`.
    Transfer {
        /// The token contract that logged it.
        token: Address,
        /// The sender.
        from: Address,
        /// The recipient.
        to: Address,
        /// In the token's smallest unit.
        amount: Amount,
    },
    /// `owner` let `spender` move up to `amount` of `token` (the allowance after the call).
    Approval {
        /// The token contract that logged it.
        token: Address,
        /// Whose tokens.
        owner: Address,
        /// Who may spend them.
        spender: Address,
        /// The allowance now.
        amount: Amount,
    },
}

/// The first of `effects` that `logs` do not show: a token transfer needs a `Transfer` log of that token, to that
/// recipient, of that amount (each log backs one transfer); an approval needs an `Approval` log of that token by
/// `owner` for that spender (its amount is the allowance after the call, which `increaseAllowance` does not
/// name). Native transfers and calls are shown by the receipt itself. `None`: everything the transaction was to
/// do, it did.
pub fn unobserved_effect(effects: &[Effect], owner: Address, logs: &[TokenLog]) -> Option<Effect> {
    let mut unused: Vec<&TokenLog> = logs.iter().collect();
    for effect in effects {
        let backing = match *effect {
            Effect::TokenTransfer { token, to, amount } => unused.iter().position(|log| {
                matches!(**log, TokenLog::Transfer { token: t, to: r, amount: a, .. } if t == token && r == to && a == amount)
            }),
            Effect::TokenApproval { token, spender, .. } => unused.iter().position(|log| {
                matches!(**log, TokenLog::Approval { token: t, owner: o, spender: s, .. } if t == token && o == owner && s == spender)
            }),
            Effect::NativeTransfer { .. } | Effect::ContractCall { .. } => continue,
        };
        match backing {
            Some(at) => {
                unused.remove(at);
            }
            None => return Some(*effect),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0xdbf03b407c01e7cd3cbea99509d93f8dddc8c6fb";
    const BOB: &str = "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359";

    fn evm(s: &str) -> EvmAddress {
        s.parse().unwrap()
    }

    fn addr(s: &str) -> Address {
        Address::Evm(evm(s))
    }

    fn call(calldata: Vec<u8>, value: u128) -> TxKind {
        TxKind::ContractCall { to: addr(TOKEN), calldata, value: Amount::from_u128(value), accounts: Vec::new() }
    }

    #[test]
    fn contract_calls_are_judged_by_what_they_do() {
        let bob = addr(BOB);
        let token = addr(TOKEN);
        let seven = Amount::from_u128(7);
        assert_eq!(call(vec![], 5).effects(), vec![Effect::NativeTransfer { to: token, amount: Amount::from_u128(5) }]);
        let b = evm(BOB).0;
        let transfer = transferCall { to: b, value: seven.0 }.abi_encode();
        assert_eq!(
            call(transfer, 0).effects(),
            vec![Effect::ContractCall { contract: token }, Effect::TokenTransfer { token, to: bob, amount: seven }]
        );
        let from = transferFromCall { from: evm(TOKEN).0, to: b, value: seven.0 }.abi_encode();
        assert_eq!(call(from, 0).effects()[1], Effect::TokenTransfer { token, to: bob, amount: seven });
        let approve = approveCall { spender: b, value: seven.0 }.abi_encode();
        assert_eq!(call(approve, 3).effects().len(), 3, "call, value to the contract, approval");
        let more = increaseAllowanceCall { spender: b, addedValue: seven.0 }.abi_encode();
        assert_eq!(call(more, 0).effects()[1], Effect::TokenApproval { token, spender: bob, amount: seven });
        assert_eq!(call(vec![0xde, 0xad, 0xbe, 0xef], 0).effects(), vec![Effect::ContractCall { contract: token }]);
    }

    #[test]
    fn malformed_erc20_calldata_is_refused() {
        let bob = evm(BOB);
        let mut short = transferCall { to: bob.0, value: U256::from(1u8) }.abi_encode();
        short.truncate(40);
        assert!(erc20_effect(bob, &short).is_err());
        let mut long = transferCall { to: bob.0, value: U256::from(1u8) }.abi_encode();
        long.extend([0u8; 32]);
        assert!(erc20_effect(bob, &long).is_err(), "trailing bytes");
        let mut dirty = transferCall { to: bob.0, value: U256::from(1u8) }.abi_encode();
        dirty[4] = 0xff;
        assert!(erc20_effect(bob, &dirty).is_err(), "dirty high bits of an address");
        assert_eq!(erc20_effect(bob, &[1, 2, 3]), Ok(None));
    }

    #[test]
    fn unlimited_means_at_least_two_to_the_255_on_evm_and_u64_max_on_solana() {
        let (token, mint) = (addr(TOKEN), Address::Solana(SolanaAddress([7; 32])));
        assert!(is_unlimited_approval(token, Amount(U256::MAX)));
        assert!(is_unlimited_approval(token, Amount(U256::from(1u8) << 255)));
        assert!(!is_unlimited_approval(token, Amount((U256::from(1u8) << 255) - U256::from(1u8))));
        assert!(is_unlimited_approval(mint, Amount(U256::from(u64::MAX))));
        assert!(!is_unlimited_approval(mint, Amount(U256::from(u64::MAX - 1))));
    }

    fn sol(byte: u8) -> SolanaAddress {
        SolanaAddress([byte; 32])
    }

    fn program_call(instruction: solana_instruction::Instruction) -> TxKind {
        let key = |k: &solana_pubkey::Pubkey| Address::Solana(SolanaAddress(k.to_bytes()));
        TxKind::ContractCall {
            to: key(&instruction.program_id),
            calldata: instruction.data,
            value: Amount::ZERO,
            accounts: instruction
                .accounts
                .iter()
                .map(|m| ProgramAccount { pubkey: key(&m.pubkey), signer: m.is_signer, writable: m.is_writable })
                .collect(),
        }
    }

    #[test]
    fn solana_system_and_token_instructions_are_judged_by_what_they_move() {
        use solana_pubkey::Pubkey;
        let pk = |a: SolanaAddress| Pubkey::new_from_array(a.0);
        let (agent, bob, mint, account) = (sol(1), sol(2), sol(3), sol(4));
        let system = Address::Solana(SolanaAddress(solana_system_interface::program::ID.to_bytes()));
        let transfer = solana_system_interface::instruction::transfer(&pk(agent), &pk(bob), 7);
        assert_eq!(
            program_call(transfer).effects(),
            vec![
                Effect::ContractCall { contract: system },
                Effect::NativeTransfer { to: Address::Solana(bob), amount: Amount::from_u128(7) }
            ]
        );
        let create = solana_system_interface::instruction::create_account(&pk(agent), &pk(bob), 9, 0, &pk(mint));
        assert_eq!(program_call(create).effects()[1].counterparty(), Address::Solana(bob));
        let assign = solana_system_interface::instruction::assign(&pk(agent), &pk(bob));
        assert!(call_effect(system, &assign.data, &[]).is_err(), "handing the account to a program is refused");
        let mut short = solana_system_interface::instruction::transfer(&pk(agent), &pk(bob), 7);
        short.accounts.truncate(1);
        assert!(program_call(short.clone()).effects().len() == 1 && call_effect(system, &short.data, &[]).is_err());

        let token = spl_token_interface::id();
        // `transfer_checked` and `approve_checked` have the same accounts: the second effect is what each does.
        let (from, to, owner) = (pk(account), pk(bob), pk(agent));
        let (token_address, bob_address, five) = (Address::Solana(mint), Address::Solana(bob), Amount::from_u128(5));
        let cases = [
            (
                spl_token_interface::instruction::transfer_checked(&token, &from, &pk(mint), &to, &owner, &[], 5, 6),
                Effect::TokenTransfer { token: token_address, to: bob_address, amount: five },
            ),
            (
                spl_token_interface::instruction::approve_checked(&token, &from, &pk(mint), &to, &owner, &[], 5, 6),
                Effect::TokenApproval { token: token_address, spender: bob_address, amount: five },
            ),
        ];
        for (instruction, expected) in cases {
            assert_eq!(program_call(instruction.unwrap()).effects()[1], expected);
        }
        let token_program = Address::Solana(SolanaAddress(token.to_bytes()));
        let unchecked =
            spl_token_interface::instruction::transfer(&token, &pk(account), &pk(bob), &pk(agent), &[], 5).unwrap();
        assert!(call_effect(token_program, &unchecked.data, &[]).is_err(), "the unchecked form does not name the mint");
        let authority = spl_token_interface::instruction::set_authority(
            &token,
            &pk(account),
            Some(&pk(bob)),
            spl_token_interface::instruction::AuthorityType::AccountOwner,
            &pk(agent),
            &[],
        )
        .unwrap();
        assert!(call_effect(token_program, &authority.data, &[]).is_err());
        let token_2022 = Address::Solana(SolanaAddress(TOKEN_2022));
        assert!(call_effect(token_2022, &authority.data, &[]).is_err(), "Token-2022 is judged the same");
        assert_eq!(call_effect(Address::Solana(bob), &[1, 2, 3], &[]), Ok(None), "another program: a call");
    }

    #[test]
    fn token_effects_need_their_own_log() {
        let a = |n: u8| Address::Evm(EvmAddress(alloy_primitives::Address::repeat_byte(n)));
        let (token, other_token, owner, to, spender) = (a(1), a(2), a(3), a(4), a(5));
        let amount = Amount::from_u128(500);
        let transfer = Effect::TokenTransfer { token, to, amount };
        let approval = Effect::TokenApproval { token, spender, amount };
        let logged = TokenLog::Transfer { token, from: owner, to, amount };
        let approved = TokenLog::Approval { token, owner, spender, amount: Amount::from_u128(900) };
        let native = Effect::NativeTransfer { to, amount };
        assert_eq!(unobserved_effect(&[native], owner, &[]), None, "the receipt shows native value itself");
        assert_eq!(unobserved_effect(&[transfer], owner, &[]), Some(transfer));
        assert_eq!(unobserved_effect(&[transfer], owner, std::slice::from_ref(&logged)), None);
        // The wrong token, recipient or amount does not count; one log backs one transfer.
        for wrong in [
            TokenLog::Transfer { token: other_token, from: owner, to, amount },
            TokenLog::Transfer { token, from: owner, to: spender, amount },
            TokenLog::Transfer { token, from: owner, to, amount: Amount::from_u128(499) },
        ] {
            assert_eq!(unobserved_effect(&[transfer], owner, &[wrong]), Some(transfer));
        }
        assert_eq!(unobserved_effect(&[transfer, transfer], owner, std::slice::from_ref(&logged)), Some(transfer));
        // An approval is shown by the owner's Approval log for that spender, whatever allowance it reports.
        assert_eq!(unobserved_effect(&[approval], owner, std::slice::from_ref(&approved)), None);
        let by_another = TokenLog::Approval { token, owner: to, spender, amount };
        assert_eq!(unobserved_effect(&[approval], owner, &[by_another]), Some(approval));
        assert_eq!(unobserved_effect(&[approval], owner, &[logged]), Some(approval), "a transfer log is no approval");
    }
}

//! Addresses by chain family. An [`Address`] is an EVM address or a Solana public key; which one a text is depends
//! on the family of the network it is meant for ([`Address::parse`]: 0x-hex with its EIP-55 checksum on an EVM
//! network, base58 on a Solana one), and it is displayed in its family's form. Lists that serve every network
//! (policy lists, session constraints, stored rows) read each entry by its own form ([`Address::parse_any`]):
//! the two forms cannot be confused, since base58 has no `0` digit. An address of one family never equals one of
//! another, so a list entry of another family simply never matches.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::Address as AlloyAddress;

/// The family of a chain: how its addresses, keys and transactions look. Every configured network belongs to
/// one (`[rpc] evm_<name>` today).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum ChainFamily {
    /// Ethereum and the EVM networks: 20-byte addresses in 0x-hex, secp256k1 keys.
    Evm,
    /// Solana: 32-byte ed25519 public keys in base58.
    Solana,
}

impl ChainFamily {
    /// Every family.
    pub const ALL: [ChainFamily; 2] = [ChainFamily::Evm, ChainFamily::Solana];

    /// Its name in messages and configuration prefixes (`evm`, `solana`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChainFamily::Evm => "evm",
            ChainFamily::Solana => "solana",
        }
    }

    /// What an address of this family looks like, for "required: ..." messages.
    pub fn address_form(self) -> &'static str {
        match self {
            ChainFamily::Evm => "a 0x-prefixed address",
            ChainFamily::Solana => "a base58 address",
        }
    }
}

impl fmt::Display for ChainFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChainFamily::Evm => "EVM",
            ChainFamily::Solana => "Solana",
        })
    }
}

/// A 20-byte EVM address; displayed with its EIP-55 checksum.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EvmAddress(pub AlloyAddress);

impl fmt::Display for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_checksum(None))
    }
}

impl fmt::Debug for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for EvmAddress {
    type Err = String;

    /// Accepts `0x` + 40 hex digits; a mixed-case input must carry a valid EIP-55 checksum.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("0x").ok_or("address must start with 0x")?;
        if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("address must be 0x followed by 40 hex digits".into());
        }
        let mixed = hex.bytes().any(|b| b.is_ascii_lowercase()) && hex.bytes().any(|b| b.is_ascii_uppercase());
        if mixed {
            AlloyAddress::parse_checksummed(s, None)
                .map(EvmAddress)
                .map_err(|_| "address checksum (EIP-55) does not match".into())
        } else {
            AlloyAddress::from_str(s).map(EvmAddress).map_err(|e| e.to_string())
        }
    }
}

/// A Solana address: a 32-byte ed25519 public key (or a program id), displayed in base58.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SolanaAddress(pub [u8; 32]);

impl fmt::Display for SolanaAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.0).into_string())
    }
}

impl fmt::Debug for SolanaAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for SolanaAddress {
    type Err = String;

    /// Accepts the base58 form of exactly 32 bytes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("0x") {
            return Err("a Solana address is base58, not 0x-prefixed hex".into());
        }
        let mut bytes = [0u8; 32];
        match bs58::decode(s).onto(&mut bytes) {
            Ok(32) => Ok(SolanaAddress(bytes)),
            Ok(n) => Err(format!("a Solana address is 32 bytes in base58, this one decodes to {n}")),
            Err(bs58::decode::Error::BufferTooSmall) => {
                Err("a Solana address is 32 bytes in base58, this one decodes to more".into())
            }
            Err(e) => Err(format!("not a base58 Solana address: {e}")),
        }
    }
}

/// An address of any chain family.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Address {
    /// An EVM address.
    Evm(EvmAddress),
    /// A Solana address.
    Solana(SolanaAddress),
}

impl Address {
    /// Parses `text` as an address of `family` (the family of the network it is meant for); the other family's
    /// form is refused with a message saying so.
    pub fn parse(family: ChainFamily, text: &str) -> Result<Address, String> {
        match family {
            ChainFamily::Evm => text.parse().map(Address::Evm),
            ChainFamily::Solana => text.parse().map(Address::Solana),
        }
    }

    /// Parses `text` by its own form, for lists that serve every network: `0x`-prefixed is EVM (with its
    /// checksum checked), anything else must be a Solana base58 address.
    pub fn parse_any(text: &str) -> Result<Address, String> {
        if text.starts_with("0x") {
            return Address::parse(ChainFamily::Evm, text);
        }
        text.parse::<SolanaAddress>().map(Address::Solana).map_err(|_| {
            "must be an EVM address (0x followed by 40 hex digits) or a Solana address (base58, 32 bytes)".into()
        })
    }

    /// The family this address belongs to.
    pub fn family(&self) -> ChainFamily {
        match self {
            Address::Evm(_) => ChainFamily::Evm,
            Address::Solana(_) => ChainFamily::Solana,
        }
    }

    /// The EVM address, if this is one.
    pub fn evm(&self) -> Option<EvmAddress> {
        match self {
            Address::Evm(address) => Some(*address),
            Address::Solana(_) => None,
        }
    }
}

impl FromStr for Address {
    type Err = String;

    /// [`Address::parse_any`]: by the text's own form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse_any(s)
    }
}

impl From<EvmAddress> for Address {
    fn from(address: EvmAddress) -> Self {
        Address::Evm(address)
    }
}

impl From<SolanaAddress> for Address {
    fn from(address: SolanaAddress) -> Self {
        Address::Solana(address)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Evm(address) => fmt::Display::fmt(address, f),
            Address::Solana(address) => fmt::Display::fmt(address, f),
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests;

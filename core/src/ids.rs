//! Typed identifiers: UUID v7 (time ordered) wrapped per entity so one cannot be passed for another.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::ports::{Clock, Entropy};

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh time-ordered id from the clock and the entropy source.
            pub fn generate(clock: &dyn Clock, entropy: &dyn Entropy) -> Self {
                Self(uuid_v7(clock, entropy))
            }
            /// The id with this UUID (as read back from storage or the wire).
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }
            /// The id's UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

typed_id!(
    /// Identifies an agent (one wallet).
    AgentId
);
typed_id!(
    /// Identifies a session issued to an agent.
    SessionId
);
typed_id!(
    /// Identifies a policy.
    PolicyId
);
typed_id!(
    /// Identifies a transaction request.
    TxId
);
typed_id!(
    /// Identifies a webhook subscription (OPS-04).
    WebhookId
);

fn uuid_v7(clock: &dyn Clock, entropy: &dyn Entropy) -> Uuid {
    let mut random = [0u8; 10];
    entropy.fill(&mut random);
    uuid::Builder::from_unix_timestamp_millis(clock.now_millis(), &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::testing::{CountingEntropy, FixedClock};

    #[test]
    fn ids_are_v7_and_time_ordered() {
        let clock = FixedClock::at(1_700_000_000);
        let entropy = CountingEntropy::default();
        let a = AgentId::generate(&clock, &entropy);
        clock.advance(1);
        let b = AgentId::generate(&clock, &entropy);
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a < b);
        assert_eq!(a.to_string().parse::<AgentId>().unwrap(), a);
    }
}

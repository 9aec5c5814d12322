//! [`Digest`]: a blake3 hash printed as 64 lowercase hex characters, used for stage keys, file
//! hashes and output digests. It must not be used for anything that is not content.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A blake3 digest, stored and serialised as lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self::from_hash(blake3::hash(bytes))
    }

    /// Wraps a finished blake3 hash.
    pub fn from_hash(hash: blake3::Hash) -> Self {
        Digest(hash.to_hex().to_string())
    }

    /// Parses 64 hex characters; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| Digest(text.to_ascii_lowercase()))
    }

    /// The full hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex characters, for display.
    pub fn short(&self) -> &str {
        self.0.get(..12).unwrap_or(&self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

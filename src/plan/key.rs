//! [`StageKey`]: the explicit record of everything a stage's result depends on, hashed with
//! blake3 over its JSON (maps sorted) into the stage's content key. Ids, display names, paths
//! and declaration order are deliberately absent, so renaming or reordering changes no key.

use super::digest::Digest;
use super::stage::Stage;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Version of the key layout itself; bumping it invalidates every cache entry on purpose.
pub const KEY_SCHEMA: u32 = 1;

/// Everything a stage's result depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageKey {
    /// [`KEY_SCHEMA`] at the time the key was made.
    pub schema: u32,
    /// The stage kind.
    pub kind: String,
    /// The kind's semantics version.
    pub version: u32,
    /// The canonical config.
    pub config: Value,
    /// Input slot -> the producing stage's output digest (early cutoff: a rebuilt input with
    /// byte-identical output leaves this key unchanged).
    pub inputs: BTreeMap<String, Digest>,
    /// File slot -> content hash of the file (or directory manifest).
    pub files: BTreeMap<String, Digest>,
}

impl StageKey {
    /// The key of `stage` given its inputs' output digests and its files' hashes.
    pub fn new(
        stage: &Stage,
        inputs: BTreeMap<String, Digest>,
        files: BTreeMap<String, Digest>,
    ) -> Self {
        StageKey {
            schema: KEY_SCHEMA,
            kind: stage.kind.clone(),
            version: stage.version,
            config: stage.config.clone(),
            inputs,
            files,
        }
    }

    /// The canonical JSON bytes that are hashed.
    pub fn canonical_json(&self) -> String {
        // Serialising plain maps, strings and a canonical `Value` cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The content key: blake3 of [`Self::canonical_json`].
    pub fn digest(&self) -> Digest {
        Digest::of_bytes(self.canonical_json().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_ignores_id_name_and_config_key_order() {
        let a = Stage::new("first", "train", json!({"lr": 0.1, "r": 8})).name("First");
        let b = Stage::new("renamed", "train", json!({"r": 8, "lr": 0.1})).name("Other");
        let ka = StageKey::new(&a, BTreeMap::new(), BTreeMap::new());
        let kb = StageKey::new(&b, BTreeMap::new(), BTreeMap::new());
        assert_eq!(ka.digest(), kb.digest());
        let c = Stage::new("first", "train", json!({"lr": 0.2, "r": 8}));
        assert_ne!(
            ka.digest(),
            StageKey::new(&c, BTreeMap::new(), BTreeMap::new()).digest()
        );
        let v2 = a.clone().version(2);
        assert_ne!(
            ka.digest(),
            StageKey::new(&v2, BTreeMap::new(), BTreeMap::new()).digest()
        );
    }

    #[test]
    fn key_json_is_stable() {
        let s = Stage::new("a", "concat", json!({"sep": "-"}));
        let files = BTreeMap::from([("data".to_owned(), Digest::of_bytes(b"x"))]);
        let k = StageKey::new(&s, BTreeMap::new(), files);
        assert_eq!(
            k.canonical_json(),
            format!(
                r#"{{"schema":1,"kind":"concat","version":1,"config":{{"sep":"-"}},"inputs":{{}},"files":{{"data":"{}"}}}}"#,
                Digest::of_bytes(b"x")
            )
        );
    }
}

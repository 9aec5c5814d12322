//! Which linear layers a `target_modules` specification selects, with PEFT's rules
//! (`check_target_module_exists`): a list matches a path equal to an entry or ending in
//! `.<entry>`; a string is a regex that must match the whole path; `all-linear` selects every
//! linear layer except the output layer (`lm_head`). `exclude_modules` and `modules_to_save`
//! take precedence; `layers_to_transform` keeps only the listed layer indices.

use crate::runtime::adapters::error::AdapterError;
use regex::Regex;

/// What `target_modules` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetModules {
    /// Module names or paths, matched by suffix.
    Names(Vec<String>),
    /// A regex matched against the whole path.
    Regex(String),
    /// PEFT's `all-linear`.
    AllLinear,
}

impl TargetModules {
    /// Readable form for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Names(n) => format!("{n:?}"),
            Self::Regex(r) => format!("`{r}`"),
            Self::AllLinear => "all-linear".into(),
        }
    }
}

/// A compiled selector.
#[derive(Clone, Debug)]
pub struct TargetMatcher {
    targets: TargetModules,
    regex: Option<Regex>,
    exclude: Vec<String>,
    modules_to_save: Vec<String>,
    layers: Option<Vec<usize>>,
    layer_index: Regex,
}

/// Whether `path` is `name` or ends with `.name`.
pub fn suffix_match(path: &str, name: &str) -> bool {
    path == name || path.ends_with(&format!(".{name}"))
}

/// PEFT's `re.match(rf"(^|.*\.){m}($|\..*)", key)` for `modules_to_save` (literal names).
pub fn component_match(path: &str, name: &str) -> bool {
    path == name
        || path.starts_with(&format!("{name}."))
        || path.ends_with(&format!(".{name}"))
        || path.contains(&format!(".{name}."))
}

fn compile(pattern: &str) -> Result<Regex, AdapterError> {
    Regex::new(pattern).map_err(|e| AdapterError::BadRegex {
        pattern: pattern.to_string(),
        message: e.to_string(),
    })
}

impl TargetMatcher {
    /// Compiles a selector.
    pub fn new(
        targets: &TargetModules,
        exclude: &[String],
        modules_to_save: &[String],
        layers: Option<&[usize]>,
    ) -> Result<Self, AdapterError> {
        let regex = match targets {
            TargetModules::Regex(r) => Some(compile(&format!("^(?:{r})$"))?),
            _ => None,
        };
        Ok(Self {
            targets: targets.clone(),
            regex,
            exclude: exclude.to_vec(),
            modules_to_save: modules_to_save.to_vec(),
            layers: layers.map(<[usize]>::to_vec),
            layer_index: compile(r"^.*?\.[^.]*\.(\d+)\.")?,
        })
    }

    /// Whether the layer at `path` gets the adapter.
    pub fn matches(&self, path: &str) -> bool {
        if self.exclude.iter().any(|e| suffix_match(path, e)) {
            return false;
        }
        if self
            .modules_to_save
            .iter()
            .any(|m| component_match(path, m))
        {
            return false;
        }
        let found = match &self.targets {
            TargetModules::Names(names) => names.iter().any(|n| suffix_match(path, n)),
            TargetModules::Regex(_) => self.regex.as_ref().is_some_and(|r| r.is_match(path)),
            TargetModules::AllLinear => !suffix_match(path, "lm_head"),
        };
        if !found {
            return false;
        }
        match &self.layers {
            None => true,
            Some(layers) => self
                .layer_index
                .captures(path)
                .and_then(|c| c.get(1))
                .and_then(|m| m.as_str().parse::<usize>().ok())
                .is_some_and(|i| layers.contains(&i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> TargetModules {
        TargetModules::Names(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn peft_matching_rules() -> Result<(), AdapterError> {
        let m = TargetMatcher::new(&names(&["q_proj", "v_proj"]), &[], &[], None)?;
        assert!(m.matches("model.layers.0.self_attn.q_proj"));
        assert!(!m.matches("model.layers.0.self_attn.qq_proj"));
        assert!(!m.matches("model.layers.0.self_attn.k_proj"));
        let m = TargetMatcher::new(
            &TargetModules::Regex(r".*\.1\..*q_proj".into()),
            &[],
            &[],
            None,
        )?;
        assert!(m.matches("model.layers.1.self_attn.q_proj"));
        assert!(!m.matches("model.layers.0.self_attn.q_proj"));
        let m = TargetMatcher::new(
            &TargetModules::AllLinear,
            &["o_proj".into()],
            &["score".into()],
            None,
        )?;
        assert!(m.matches("model.layers.0.mlp.down_proj"));
        assert!(!m.matches("lm_head"));
        assert!(!m.matches("model.layers.0.self_attn.o_proj"));
        assert!(!m.matches("score"));
        let m = TargetMatcher::new(&names(&["query"]), &[], &[], Some(&[1]))?;
        assert!(m.matches("encoder.layer.1.attention.self.query"));
        assert!(!m.matches("encoder.layer.0.attention.self.query"));
        assert!(TargetMatcher::new(&TargetModules::Regex("(".into()), &[], &[], None).is_err());
        Ok(())
    }
}

//! The OpenAI-compatible request bodies peftc accepts and the response bodies it writes
//! (`/v1/completions`, `/v1/chat/completions`, `/v1/models`), and the checks of a request's
//! fields against the server's limits. Must not run the model.

use super::error::ApiError;
use crate::runtime::data::mapping::Message;
use serde::Deserialize;
use serde_json::{json, Value};

/// A prompt: one string, or a list with one string.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    List(Vec<String>),
}

/// `stop`: one string or a list.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// The fields of `/v1/completions` and `/v1/chat/completions` that change generation.
#[derive(Clone, Debug, Deserialize)]
pub struct Common {
    pub model: String,
    pub max_tokens: Option<usize>,
    /// Chat's newer name for `max_tokens`.
    pub max_completion_tokens: Option<usize>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub stop: Option<Stop>,
    #[serde(default)]
    pub stream: bool,
    pub n: Option<usize>,
    /// Extension (as vLLM): return the generated token ids with each choice.
    #[serde(default)]
    pub return_token_ids: bool,
    /// Extension (as vLLM): keep generating past the end-of-sequence token (fixed-length
    /// outputs for benchmarks).
    #[serde(default)]
    pub ignore_eos: bool,
}

/// `POST /v1/completions`.
#[derive(Clone, Debug, Deserialize)]
pub struct CompletionRequest {
    pub prompt: Prompt,
    #[serde(flatten)]
    pub common: Common,
}

/// A chat message as clients send it: `content` is a string or a list of text parts.
#[derive(Clone, Debug, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: Value,
}

/// `POST /v1/chat/completions`.
#[derive(Clone, Debug, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    #[serde(flatten)]
    pub common: Common,
}

/// `POST /admin/adapters`.
#[derive(Clone, Debug, Deserialize)]
pub struct AddAdapterRequest {
    pub name: String,
    pub path: String,
}

/// How a request's new tokens are chosen and when it stops.
#[derive(Clone, Debug, PartialEq)]
pub struct GenParams {
    pub max_tokens: usize,
    pub sampling: crate::runtime::models::generate::Sampling,
    pub stop: Vec<String>,
    /// Do not end at the end-of-sequence token.
    pub ignore_eos: bool,
}

/// The request's generation settings, checked against the limits.
pub fn gen_params(
    c: &Common,
    limits: &super::config::Limits,
    request_id: u64,
) -> Result<GenParams, ApiError> {
    use crate::runtime::models::generate::Sampling;
    if c.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request(
            "n_unsupported",
            "`n` must be 1: send one request per completion",
        ));
    }
    let max_tokens = c
        .max_completion_tokens
        .or(c.max_tokens)
        .unwrap_or(limits.default_max_tokens);
    if max_tokens == 0 || max_tokens > limits.max_tokens {
        return Err(ApiError::bad_request(
            "max_tokens_out_of_range",
            format!(
                "`max_tokens` is {max_tokens}; this server allows 1 to {}",
                limits.max_tokens
            ),
        ));
    }
    let temperature = c.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad_request(
            "temperature_out_of_range",
            format!("`temperature` is {temperature}; it must be between 0 and 2"),
        ));
    }
    let top_p = c.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::bad_request(
            "top_p_out_of_range",
            format!("`top_p` is {top_p}; it must be in (0, 1]"),
        ));
    }
    let stop = match &c.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    if stop.len() > 4 || stop.iter().any(String::is_empty) {
        return Err(ApiError::bad_request(
            "bad_stop",
            "`stop` takes up to 4 non-empty strings",
        ));
    }
    let sampling = if temperature == 0.0 {
        Sampling::Greedy
    } else {
        Sampling::Sample {
            temperature,
            top_k: None,
            top_p: (top_p < 1.0).then_some(top_p),
            seed: c.seed.unwrap_or(request_id),
        }
    };
    Ok(GenParams {
        max_tokens,
        sampling,
        stop,
        ignore_eos: c.ignore_eos,
    })
}

/// The prompt text of a completion request.
pub fn prompt_text(p: &Prompt) -> Result<&str, ApiError> {
    match p {
        Prompt::Text(s) => Ok(s),
        Prompt::List(v) if v.len() == 1 => Ok(&v[0]),
        Prompt::List(v) => Err(ApiError::bad_request(
            "one_prompt",
            format!(
                "`prompt` has {} strings; send one prompt per request",
                v.len()
            ),
        )),
    }
}

/// Chat messages as the chat template reads them (text parts of a list joined).
pub fn chat_messages(messages: &[ChatMessage]) -> Result<Vec<Message>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::bad_request("no_messages", "`messages` is empty"));
    }
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let content = match &m.content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => {
                let mut text = String::new();
                for p in parts {
                    match (p.get("type").and_then(Value::as_str), p.get("text")) {
                        (Some("text"), Some(Value::String(t))) => text.push_str(t),
                        _ => {
                            return Err(ApiError::bad_request(
                                "unsupported_content",
                                format!("message {i}: only text content parts are supported"),
                            ))
                        }
                    }
                }
                text
            }
            Value::Null => String::new(),
            _ => {
                return Err(ApiError::bad_request(
                    "bad_content",
                    format!("message {i}: `content` must be a string or a list of text parts"),
                ))
            }
        };
        out.push(Message {
            role: m.role.clone(),
            content,
        });
    }
    Ok(out)
}

/// Why a completion ended, as OpenAI names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// End-of-sequence token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// Token counts of a finished request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

impl Usage {
    pub fn json(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }
}

/// Seconds since the Unix epoch, for `created`.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

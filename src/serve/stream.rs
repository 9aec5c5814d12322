//! Streaming answers as server-sent events, in OpenAI's chunk shapes: `text_completion`
//! chunks for completions, `chat.completion.chunk` for chat (the first carries the assistant
//! role), the last chunk with `finish_reason`, then `data: [DONE]`. A task forwards the
//! scheduler's events; when the client goes away the forwarding stops and the request's
//! channel closes, which frees its slot in the batch.

use super::api::now;
use super::scheduler::Event;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::convert::Infallible;
use tokio::sync::mpsc::{channel, UnboundedReceiver};
use tokio_stream::wrappers::ReceiverStream;

/// Which endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Completion,
    Chat,
}

impl Kind {
    /// The response id for request number `n`.
    pub fn id(self, n: u64) -> String {
        match self {
            Kind::Completion => format!("cmpl-{n}"),
            Kind::Chat => format!("chatcmpl-{n}"),
        }
    }

    /// `object` of a full response.
    pub fn object(self) -> &'static str {
        match self {
            Kind::Completion => "text_completion",
            Kind::Chat => "chat.completion",
        }
    }

    fn chunk_object(self) -> &'static str {
        match self {
            Kind::Completion => "text_completion",
            Kind::Chat => "chat.completion.chunk",
        }
    }
}

fn chunk(kind: Kind, id: &str, model: &str, created: u64, delta: Value, finish: Value) -> Value {
    let choice = match kind {
        Kind::Completion => json!({
            "index": 0, "text": delta.as_str().unwrap_or(""), "finish_reason": finish, "logprobs": null,
        }),
        Kind::Chat => {
            json!({ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null })
        }
    };
    json!({ "id": id, "object": kind.chunk_object(), "created": created, "model": model, "choices": [choice] })
}

/// The SSE response for a request whose first event (not an error) is `first`.
pub fn sse_response(
    first: Option<Event>,
    mut rx: UnboundedReceiver<Event>,
    kind: Kind,
    id: String,
    model: String,
) -> Response {
    let (tx, out) = channel::<Result<SseEvent, Infallible>>(16);
    tokio::spawn(async move {
        let created = now();
        let data = |v: Value| Ok(SseEvent::default().data(v.to_string()));
        if kind == Kind::Chat {
            let hello = chunk(
                kind,
                &id,
                &model,
                created,
                json!({ "role": "assistant", "content": "" }),
                Value::Null,
            );
            if tx.send(data(hello)).await.is_err() {
                return;
            }
        }
        let mut next = first;
        loop {
            let Some(ev) = next.take() else { break };
            let v = match ev {
                Event::Delta(t) => {
                    let delta = match kind {
                        Kind::Completion => json!(t),
                        Kind::Chat => json!({ "content": t }),
                    };
                    chunk(kind, &id, &model, created, delta, Value::Null)
                }
                Event::Done { finish, .. } => {
                    let delta = match kind {
                        Kind::Completion => json!(""),
                        Kind::Chat => json!({}),
                    };
                    let last = chunk(kind, &id, &model, created, delta, json!(finish.as_str()));
                    if tx.send(data(last)).await.is_ok() {
                        let _ = tx.send(Ok(SseEvent::default().data("[DONE]"))).await;
                    }
                    return;
                }
                Event::Error(e) => {
                    let _ = tx.send(data(e.body())).await;
                    return;
                }
            };
            if tx.send(data(v)).await.is_err() {
                // The client has gone: dropping `rx` tells the scheduler.
                return;
            }
            next = rx.recv().await;
        }
    });
    Sse::new(ReceiverStream::new(out))
        .keep_alive(KeepAlive::default())
        .into_response()
}

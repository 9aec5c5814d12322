//! The HTTP endpoints: `/v1/models`, `/v1/completions`, `/v1/chat/completions` (JSON or
//! server-sent events), `POST /admin/adapters`, `/metrics`, `/health`. Handlers parse and
//! check the request, tokenize, and hand it to the scheduler; they never run the model.

use super::api::{
    chat_messages, gen_params, now, prompt_text, AddAdapterRequest, ChatRequest, Common,
    CompletionRequest, Finish, Usage,
};
use super::error::ApiError;
use super::scheduler::{servable, Event, Msg};
use super::state::AppState;
use super::stream::{sse_response, Kind};
use crate::runtime::peft_format::load::read_adapter;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

/// The router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/admin/adapters", post(add_adapter))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok" }))
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                kind: "not_found_error",
                code: "no_route",
                message: "no such endpoint; peftc serves /v1/models, /v1/completions, \
                          /v1/chat/completions, /admin/adapters, /metrics"
                    .into(),
                models: None,
            }
        })
        .with_state(state)
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid request body: {e}")))
}

async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let created = now();
    let base = state.registry.base().to_string();
    let data: Vec<Value> = state
        .registry
        .names()
        .into_iter()
        .map(|id| {
            let parent = if id == base { Value::Null } else { json!(base) };
            json!({ "id": id, "object": "model", "created": created, "owned_by": "peftc", "parent": parent })
        })
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn completions(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    match completions_inner(state, body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn chat(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    match chat_inner(state, body).await {
        Ok(r) | Err(r) => r,
    }
}

fn err(e: ApiError) -> Response {
    e.into_response()
}

async fn completions_inner(state: Arc<AppState>, body: Bytes) -> Result<Response, Response> {
    let req: CompletionRequest = parse(&body).map_err(err)?;
    let text = prompt_text(&req.prompt).map_err(err)?;
    let prompt = state.tokenize(text, true).map_err(err)?;
    respond(state, &req.common, prompt, Kind::Completion).await
}

async fn chat_inner(state: Arc<AppState>, body: Bytes) -> Result<Response, Response> {
    let req: ChatRequest = parse(&body).map_err(err)?;
    let messages = chat_messages(&req.messages).map_err(err)?;
    let template = state.chat.as_ref().ok_or_else(|| {
        err(ApiError::bad_request(
            "no_chat_template",
            "the base model has no chat template: use /v1/completions",
        ))
    })?;
    let text = template
        .render(&messages, true)
        .map_err(|e| err(ApiError::bad_request("chat_template", e.to_string())))?;
    let prompt = state.tokenize(&text, false).map_err(err)?;
    respond(state, &req.common, prompt, Kind::Chat).await
}

async fn respond(
    state: Arc<AppState>,
    common: &Common,
    prompt: Vec<u32>,
    kind: Kind,
) -> Result<Response, Response> {
    let target = state.resolve(&common.model).map_err(err)?;
    let id = state.next_id();
    let params = gen_params(common, &state.limits, id).map_err(err)?;
    let mut rx = state
        .submit(&common.model, target, prompt, params)
        .map_err(err)?;
    let rid = kind.id(id);
    if common.stream {
        // The first event decides the status: an error before any text is an HTTP error.
        let first = rx.recv().await;
        if let Some(Event::Error(e)) = first {
            return Err(err(e));
        }
        return Ok(sse_response(first, rx, kind, rid, common.model.clone()));
    }
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Delta(t) => text.push_str(&t),
            Event::Error(e) => return Err(err(e)),
            Event::Done { finish, usage, ids } => {
                let ids = common.return_token_ids.then_some(ids);
                return Ok(Json(full_body(
                    kind,
                    &rid,
                    &common.model,
                    text,
                    finish,
                    usage,
                    ids,
                ))
                .into_response());
            }
        }
    }
    Err(err(ApiError::internal("generation ended without a result")))
}

/// A non-streaming response body.
fn full_body(
    kind: Kind,
    id: &str,
    model: &str,
    text: String,
    finish: Finish,
    usage: Usage,
    ids: Option<Vec<u32>>,
) -> Value {
    let mut choice = match kind {
        Kind::Completion => json!({
            "index": 0, "text": text, "finish_reason": finish.as_str(), "logprobs": null,
        }),
        Kind::Chat => json!({
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "finish_reason": finish.as_str(),
            "logprobs": null,
        }),
    };
    if let Some(ids) = ids {
        choice["token_ids"] = json!(ids);
    }
    json!({
        "id": id,
        "object": kind.object(),
        "created": now(),
        "model": model,
        "choices": [choice],
        "usage": usage.json(),
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
}

async fn add_adapter(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: AddAdapterRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return err(e),
    };
    if !valid_name(&req.name) {
        return err(ApiError::bad_request(
            "bad_name",
            format!(
                "adapter name `{}` must be 1-128 characters of letters, digits and -_.:/",
                req.name
            ),
        ));
    }
    let conflict = || {
        err(ApiError {
            status: StatusCode::CONFLICT,
            kind: "invalid_request_error",
            code: "name_taken",
            message: format!("`{}` is already served", req.name),
            models: Some(state.registry.names()),
        })
    };
    if state.registry.resolve(&req.name).is_some() {
        return conflict();
    }
    let path = std::path::PathBuf::from(&req.path);
    let (shapes, device, name) = (state.shapes.clone(), state.device.clone(), req.name.clone());
    let read = tokio::task::spawn_blocking(move || {
        let read = read_adapter(&path, &shapes, &device).map_err(|e| e.to_string())?;
        servable(&name, &read)?;
        Ok::<_, String>((path, read))
    })
    .await;
    let (path, read) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(message)) => return err(ApiError::bad_request("bad_adapter", message)),
        Err(e) => return err(ApiError::internal(e.to_string())),
    };
    if !state.registry.add(&req.name, path) {
        return conflict();
    }
    // Hand the weights to the scheduler now, so the first request need not read them again.
    let _ = state.tx.send(Msg::Loaded {
        name: req.name.clone(),
        result: Ok(read),
    });
    (
        StatusCode::CREATED,
        Json(json!({ "id": req.name, "object": "model", "owned_by": "peftc", "parent": state.registry.base() })),
    )
        .into_response()
}

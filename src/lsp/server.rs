//! The server's event loop: the initialize handshake, document notifications, requests
//! dispatched to the feature modules, and publishing diagnostics once no message is waiting
//! (so a burst of edits is checked once). Nothing a client sends stops the server: a request
//! with malformed params is answered with `InvalidParams`, a notification with malformed params
//! is logged to the client and ignored, and every handler (and every check) runs under
//! `catch_unwind` as a last line of defence, so a bug answers one request with an error, or
//! leaves one document unchecked, instead of stopping the server.

use super::state::{Document, Documents};
use super::text::{apply_change, uri_to_path, LineMap};
use super::{completion, diagnostics, hover, navigate, LspError};
use crate::syntax::ParseCache;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{self as note, Notification as _};
use lsp_types::request::{self as req, Request as _};
use lsp_types::*;
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Server settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// How long after the last edit diagnostics wait (besides waiting until no message is
    /// queued). Zero: check as soon as the queue is empty. The client may set it with the
    /// initialization option `{"debounceMs": N}`.
    pub debounce: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            debounce: Duration::ZERO,
        }
    }
}

/// What the server offers.
pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(PositionEncodingKind::UTF16),
        text_document_sync: Some(TextDocumentSyncCapability::Kind(
            TextDocumentSyncKind::INCREMENTAL,
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into(), "[".into(), "{".into()]),
            ..CompletionOptions::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        rename_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
        ..ServerCapabilities::default()
    }
}

/// Runs the handshake and the loop on `conn` until `shutdown` + `exit`.
pub fn serve(conn: &Connection, config: ServerConfig) -> Result<(), LspError> {
    let (id, params) = conn.initialize_start()?;
    let result = serde_json::json!({
        "capabilities": serde_json::to_value(capabilities())?,
        "serverInfo": { "name": "peftc", "version": env!("CARGO_PKG_VERSION") },
    });
    conn.initialize_finish(id, result)?;
    let mut config = config;
    if let Some(ms) = params
        .pointer("/initializationOptions/debounceMs")
        .and_then(Value::as_u64)
    {
        config.debounce = Duration::from_millis(ms);
    }
    Server {
        conn,
        config,
        docs: Documents::new(),
        last_edit: Instant::now(),
    }
    .run()
}

struct Server<'a> {
    conn: &'a Connection,
    config: ServerConfig,
    docs: Documents,
    last_edit: Instant,
}

impl Server<'_> {
    fn run(&mut self) -> Result<(), LspError> {
        loop {
            let dirty = self.docs.docs.values().any(|d| d.dirty);
            let msg = if dirty {
                let wait = self
                    .config
                    .debounce
                    .saturating_sub(self.last_edit.elapsed());
                match self.conn.receiver.recv_timeout(wait) {
                    Ok(m) => Some(m),
                    Err(e) if e.is_timeout() => None,
                    Err(_) => return Err(LspError::Disconnected),
                }
            } else {
                match self.conn.receiver.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return Err(LspError::Disconnected),
                }
            };
            match msg {
                None => self.publish_dirty()?,
                Some(Message::Request(r)) => {
                    if self.conn.handle_shutdown(&r)? {
                        return Ok(());
                    }
                    self.publish_dirty()?;
                    let resp = self.request(r);
                    self.conn
                        .sender
                        .send(resp.into())
                        .map_err(|_| LspError::Disconnected)?;
                }
                Some(Message::Notification(n)) => {
                    if n.method == note::Exit::METHOD {
                        return Err(LspError::ExitWithoutShutdown);
                    }
                    let method = n.method.clone();
                    match catch_unwind(AssertUnwindSafe(|| self.notification(n))) {
                        Ok(Ok(())) => {}
                        Ok(Err(Ignored::Params(e))) => {
                            self.log(&format!("`{method}` ignored: malformed params: {e}"))?
                        }
                        Ok(Err(Ignored::Stop(e))) => return Err(e),
                        Err(_) => self.log(&format!("`{method}` ignored: internal error"))?,
                    }
                }
                Some(Message::Response(_)) => {}
            }
            let dirty = self.docs.docs.values().any(|d| d.dirty);
            if dirty
                && self.conn.receiver.is_empty()
                && self.last_edit.elapsed() >= self.config.debounce
            {
                self.publish_dirty()?;
            }
        }
    }

    fn publish_dirty(&mut self) -> Result<(), LspError> {
        let docs = &mut self.docs;
        let refreshed = match catch_unwind(AssertUnwindSafe(|| docs.refresh_dirty())) {
            Ok(uris) => uris,
            Err(_) => {
                // A check that panicked: leave those documents as they were checked last.
                let stuck: Vec<String> = self
                    .docs
                    .docs
                    .values_mut()
                    .filter(|d| d.dirty)
                    .map(|d| {
                        d.dirty = false;
                        d.uri.as_str().to_string()
                    })
                    .collect();
                for uri in &stuck {
                    self.log(&format!("internal error while checking `{uri}`"))?;
                }
                return Ok(());
            }
        };
        for uri in refreshed {
            let Some(doc) = self.docs.docs.get(&uri) else {
                continue;
            };
            let Some(an) = &doc.analysis else { continue };
            let params = PublishDiagnosticsParams {
                uri: doc.uri.clone(),
                diagnostics: diagnostics::to_lsp(doc, an),
                version: Some(doc.version),
            };
            self.notify::<note::PublishDiagnostics>(params)?;
        }
        Ok(())
    }

    fn notify<N: lsp_types::notification::Notification>(
        &self,
        params: N::Params,
    ) -> Result<(), LspError> {
        let n = Notification::new(N::METHOD.to_string(), params);
        self.conn
            .sender
            .send(n.into())
            .map_err(|_| LspError::Disconnected)
    }

    /// A `window/logMessage` error to the client.
    fn log(&self, message: &str) -> Result<(), LspError> {
        self.notify::<note::LogMessage>(LogMessageParams {
            typ: MessageType::ERROR,
            message: format!("peftc lsp: {message}"),
        })
    }

    fn notification(&mut self, n: Notification) -> Result<(), Ignored> {
        match n.method.as_str() {
            note::DidOpenTextDocument::METHOD => {
                let p: DidOpenTextDocumentParams = serde_json::from_value(n.params)?;
                let doc = p.text_document;
                let path = uri_to_path(&doc.uri);
                let map = LineMap::new(&doc.text);
                let key = doc.uri.as_str().to_string();
                self.docs.mark_dependents(&path);
                self.docs.docs.insert(
                    key,
                    Document {
                        uri: doc.uri,
                        path,
                        version: doc.version,
                        text: doc.text,
                        map,
                        dirty: true,
                        parse_cache: ParseCache::new(),
                        analysis: None,
                    },
                );
                self.last_edit = Instant::now();
            }
            note::DidChangeTextDocument::METHOD => {
                let p: DidChangeTextDocumentParams = serde_json::from_value(n.params)?;
                if let Some(doc) = self.docs.docs.get_mut(p.text_document.uri.as_str()) {
                    for c in &p.content_changes {
                        apply_change(&mut doc.text, c);
                    }
                    doc.map = LineMap::new(&doc.text);
                    doc.version = p.text_document.version;
                    doc.dirty = true;
                    let path = doc.path.clone();
                    self.docs.mark_dependents(&path);
                    self.last_edit = Instant::now();
                }
            }
            note::DidCloseTextDocument::METHOD => {
                let p: DidCloseTextDocumentParams = serde_json::from_value(n.params)?;
                if let Some(closed) = self.docs.docs.remove(p.text_document.uri.as_str()) {
                    // Documents that use it now read it from disk.
                    self.docs.mark_dependents(&closed.path);
                    self.last_edit = Instant::now();
                }
                self.notify::<note::PublishDiagnostics>(PublishDiagnosticsParams {
                    uri: p.text_document.uri,
                    diagnostics: Vec::new(),
                    version: None,
                })
                .map_err(Ignored::Stop)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn request(&mut self, r: Request) -> Response {
        let id = r.id.clone();
        let docs = &self.docs;
        match catch_unwind(AssertUnwindSafe(|| handle(docs, r))) {
            Ok(Ok(v)) => Response::new_ok(id, v),
            Ok(Err((code, msg))) => Response::new_err(id, code as i32, msg),
            Err(_) => Response::new_err(
                id,
                ErrorCode::InternalError as i32,
                "internal error while answering".to_string(),
            ),
        }
    }
}

/// Why a notification was not acted on.
enum Ignored {
    /// Its params do not have the protocol's shape (logged; the server goes on).
    Params(serde_json::Error),
    /// The connection is gone (the server stops).
    Stop(LspError),
}

impl From<serde_json::Error> for Ignored {
    fn from(e: serde_json::Error) -> Self {
        Ignored::Params(e)
    }
}

type Answer = Result<Value, (ErrorCode, String)>;

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, (ErrorCode, String)> {
    serde_json::from_value(v).map_err(|e| (ErrorCode::InvalidParams, e.to_string()))
}

fn json<T: serde::Serialize>(v: T) -> Answer {
    serde_json::to_value(v).map_err(|e| (ErrorCode::InternalError, e.to_string()))
}

fn doc_at<'d>(
    docs: &'d Documents,
    p: &TextDocumentPositionParams,
) -> Result<(&'d Document, usize), (ErrorCode, String)> {
    let doc = docs.get(&p.text_document.uri).ok_or((
        ErrorCode::InvalidParams,
        format!("`{}` is not open", p.text_document.uri.as_str()),
    ))?;
    let offset = doc.map.offset(&doc.text, p.position);
    Ok((doc, offset))
}

fn handle(docs: &Documents, r: Request) -> Answer {
    match r.method.as_str() {
        req::HoverRequest::METHOD => {
            let p: HoverParams = parse(r.params)?;
            let (doc, offset) = doc_at(docs, &p.text_document_position_params)?;
            let Some(an) = &doc.analysis else {
                return Ok(Value::Null);
            };
            match hover::hover(an, &doc.text, offset) {
                Some((text, range)) => json(Hover {
                    contents: HoverContents::Markup(MarkupContent {
                        kind: MarkupKind::Markdown,
                        value: text,
                    }),
                    range: Some(
                        doc.map
                            .range(&doc.text, crate::syntax::Span::new(range.start, range.end)),
                    ),
                }),
                None => Ok(Value::Null),
            }
        }
        req::Completion::METHOD => {
            let p: CompletionParams = parse(r.params)?;
            let (doc, offset) = doc_at(docs, &p.text_document_position)?;
            json(CompletionResponse::Array(completion::complete(
                doc.analysis.as_ref(),
                &doc.text,
                offset,
            )))
        }
        req::GotoDefinition::METHOD => {
            let p: GotoDefinitionParams = parse(r.params)?;
            let (doc, offset) = doc_at(docs, &p.text_document_position_params)?;
            match navigate::definition(doc, offset) {
                Some(loc) => json(GotoDefinitionResponse::Scalar(loc)),
                None => Ok(Value::Null),
            }
        }
        req::References::METHOD => {
            let p: ReferenceParams = parse(r.params)?;
            let (doc, offset) = doc_at(docs, &p.text_document_position)?;
            json(navigate::references(
                docs,
                doc,
                offset,
                p.context.include_declaration,
            ))
        }
        req::Rename::METHOD => {
            let p: RenameParams = parse(r.params)?;
            let (doc, offset) = doc_at(docs, &p.text_document_position)?;
            navigate::rename(docs, doc, offset, &p.new_name)
                .map_err(|e| (ErrorCode::RequestFailed, e.to_string()))
                .and_then(json)
        }
        req::DocumentSymbolRequest::METHOD => {
            let p: DocumentSymbolParams = parse(r.params)?;
            let doc = docs
                .get(&p.text_document.uri)
                .ok_or((ErrorCode::InvalidParams, "document not open".to_string()))?;
            json(DocumentSymbolResponse::Nested(navigate::symbols(doc)))
        }
        req::Formatting::METHOD => {
            let p: DocumentFormattingParams = parse(r.params)?;
            let doc = docs
                .get(&p.text_document.uri)
                .ok_or((ErrorCode::InvalidParams, "document not open".to_string()))?;
            let edits = match crate::fmt::format_source(&doc.text) {
                Ok(new) if new != doc.text => {
                    let end = doc.map.position(&doc.text, doc.text.len());
                    vec![TextEdit {
                        range: Range {
                            start: Position::new(0, 0),
                            end,
                        },
                        new_text: new,
                    }]
                }
                _ => Vec::new(),
            };
            json(edits)
        }
        req::CodeActionRequest::METHOD => {
            let p: CodeActionParams = parse(r.params)?;
            let doc = docs
                .get(&p.text_document.uri)
                .ok_or((ErrorCode::InvalidParams, "document not open".to_string()))?;
            json(diagnostics::code_actions(doc, p.range))
        }
        other => Err((
            ErrorCode::MethodNotFound,
            format!("`{other}` is not supported"),
        )),
    }
}

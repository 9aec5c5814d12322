//! Starting and stopping a server: loads the base once, starts the scheduler thread, binds the
//! address and serves HTTP on a tokio runtime. Shutdown (SIGTERM or Ctrl-C when asked to
//! listen for them, or [`ServerHandle::shutdown`]) stops accepting connections, lets every
//! in-flight request finish, then stops the scheduler.

use super::config::ServeConfig;
use super::engine::load_engine;
use super::error::ServeError;
use super::metrics::Metrics;
use super::registry::Registry;
use super::routes::router;
use super::scheduler::{Msg, Scheduler};
use super::state::AppState;
use crate::runtime::peft_format::load::layer_shapes;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// A running server.
pub struct ServerHandle {
    /// The address it listens on (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServeError>>>,
}

impl ServerHandle {
    /// Stops accepting, finishes in-flight requests, and waits for the end.
    pub fn shutdown(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join()
    }

    /// Waits until the server stops (after a signal).
    pub fn wait(mut self) -> Result<(), ServeError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), ServeError> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| ServeError::Io("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.join();
    }
}

/// Loads the model and starts serving; returns once the address is bound. `signals`: stop on
/// SIGTERM / Ctrl-C (the command line); tests stop through the handle.
pub fn start(config: ServeConfig, signals: bool) -> Result<ServerHandle, ServeError> {
    let device = crate::stages::device().map_err(|e| ServeError::Load(e.to_string()))?;
    let mut engine = load_engine(&config.base, &device)?;
    let registry = Arc::new(Registry::new(config.base.name.clone()));
    for a in &config.adapters {
        if !a.path.join("adapter_config.json").is_file() {
            return Err(ServeError::Adapter {
                name: a.name.clone(),
                message: format!(
                    "{} has no adapter_config.json (a PEFT adapter folder has adapter_config.json \
                     and adapter_model.safetensors)",
                    a.path.display()
                ),
            });
        }
        if !registry.add(&a.name, a.path.clone()) {
            return Err(ServeError::DuplicateName(a.name.clone()));
        }
    }
    let metrics = Arc::new(Metrics::new(config.limits.max_batch.max(1)));
    let shapes = Arc::new(layer_shapes(engine.model.as_adaptable()));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let state = Arc::new(AppState {
        tx: tx.clone(),
        registry: registry.clone(),
        metrics: metrics.clone(),
        limits: config.limits.clone(),
        tokenizer: engine.tokenizer.clone(),
        chat: engine.chat.take(),
        shapes: shapes.clone(),
        device: device.clone(),
        next_id: AtomicU64::new(1),
    });
    let listener = std::net::TcpListener::bind(config.addr).map_err(|e| ServeError::Bind {
        addr: config.addr.to_string(),
        message: e.to_string(),
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServeError::Io(e.to_string()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ServeError::Io(e.to_string()))?;
    let scheduler = Scheduler::new(
        engine,
        registry,
        metrics.clone(),
        &config.limits,
        rx,
        tx.clone(),
        shapes,
    );
    let sched = std::thread::Builder::new()
        .name("peftc-scheduler".into())
        .spawn(move || scheduler.run())
        .map_err(|e| ServeError::Io(e.to_string()))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("peftc-http".into())
        .spawn(move || -> Result<(), ServeError> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| ServeError::Io(e.to_string()))?;
            let served = rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .map_err(|e| ServeError::Io(e.to_string()))?;
                axum::serve(listener, router(state))
                    .with_graceful_shutdown(until_stopped(stopped, signals))
                    .await
                    .map_err(|e| ServeError::Io(e.to_string()))
            });
            let _ = tx.send(Msg::Shutdown);
            let _ = sched.join();
            served
        })
        .map_err(|e| ServeError::Io(e.to_string()))?;
    Ok(ServerHandle {
        addr,
        metrics,
        stop: Some(stop),
        thread: Some(thread),
    })
}

async fn until_stopped(stopped: oneshot::Receiver<()>, signals: bool) {
    if !signals {
        let _ = stopped.await;
        return;
    }
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = stopped => {}
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

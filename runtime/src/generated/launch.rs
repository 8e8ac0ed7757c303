//! How a generated binary starts one function of its graph: the root serves HTTP (and gRPC when
//! asked) and runs its triggers; a child function consumes its stream; each until a shutdown
//! signal, and a failure to start or a server that stops is the process's error.

use super::StartError;
use crate::error::RunError;
use crate::http::{Connections, PortSecurity, ServeOptions, bind, serve_probes, serve_sharing, shutdown_signal};
use crate::pipeline::Handler;
#[cfg(feature = "streams")]
use crate::stream::consume_with_stats;
use crate::stream::{ConsumeOptions, ConsumerStats, StreamSource};
use crate::trigger::{SharedHandler, Trigger};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A function of a graph, started: it runs until a shutdown signal.
pub type Launched = Pin<Box<dyn Future<Output = Result<(), RunError>> + Send>>;

/// How a generated `run` starts a function: the HTTP settings for the root, the consumer
/// settings for a child function.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// The graph's name, for what the process prints.
    pub graph: String,
    /// The root function's server.
    pub serve: ServeOptions,
    /// A child function's consumer.
    pub consume: ConsumeOptions,
    /// Where a child function serves `/metrics` and its health probes (`--metrics-port`).
    pub probes: Option<std::net::SocketAddr>,
    /// Where the root function also serves the Open Inference Protocol over gRPC
    /// (`--grpc-port`; the `grpc` feature).
    pub grpc: Option<std::net::SocketAddr>,
}

impl Launch {
    /// Serves the root function over HTTP, and runs its triggers, until SIGINT or SIGTERM; one
    /// pipeline takes both.
    pub fn serve<H: Handler>(self, handler: H, triggers: Vec<Trigger>) -> Launched {
        Box::pin(async move {
            // Tokens and certificates are re-read on SIGHUP, without dropping a connection.
            if let Some(tokens) = &self.serve.auth {
                tokens.reload_on_hangup();
            }
            if let Some(tls) = &self.serve.tls {
                tls.reload_on_hangup();
            }
            let listen = |source| RunError::Listen { addr: self.serve.addr, source };
            let listener = bind(&self.serve).await.map_err(listen)?;
            let addr = listener.local_addr().map_err(listen)?;
            let scheme = if self.serve.tls.is_some() { "https" } else { "http" };
            eprintln!("serving {} on {scheme}://{addr}", self.graph);
            let handler = SharedHandler::new(handler);
            // One cap on open connections for both ports: a flood on one cannot use up the
            // file descriptors the other needs.
            let connections = Connections::new(self.serve.max_connections);
            let grpc = self.grpc_server(handler.clone(), Arc::clone(&connections)).await?;
            let has_triggers = !triggers.is_empty();
            // Triggers that end because the process is stopping are not a failure, even when
            // they end before the server has drained.
            let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let signalled = Arc::clone(&stopping);
            let trigger_shutdown = async move {
                shutdown_signal().await;
                signalled.store(true, std::sync::atomic::Ordering::SeqCst);
            };
            let mut triggered =
                tokio::spawn(crate::trigger::run(handler.clone(), triggers, self.consume.clone(), trigger_shutdown));
            let serving = serve_sharing(listener, handler, self.serve, connections, shutdown_signal());
            tokio::pin!(serving);
            let joined = |finished: Result<Result<(), RunError>, tokio::task::JoinError>| {
                finished.map_err(RunError::TriggerStopped).and_then(|result| result)
            };
            let http_stopped = |source| RunError::Serve { server: "HTTP", source };
            let served = tokio::select! {
                served = &mut serving => {
                    let served = served.map_err(http_stopped);
                    served.and(joined(triggered.await))
                }
                // Triggers end before the server only when one failed (or there are none):
                // then the process stops, so that a supervisor restarts it.
                finished = &mut triggered => match joined(finished) {
                    Ok(()) if !has_triggers || stopping.load(std::sync::atomic::Ordering::SeqCst) => {
                        serving.await.map_err(http_stopped)
                    }
                    Ok(()) => Err(RunError::TriggersEnded),
                    Err(error) => Err(error),
                },
            };
            match grpc {
                Some(grpc) => {
                    let grpc_stopped = |source| RunError::Serve { server: "gRPC", source };
                    served.and(grpc.await.map_err(|error| grpc_stopped(error.into()))?.map_err(grpc_stopped))
                }
                None => served,
            }
        })
    }

    /// Starts the gRPC server when `--grpc-port` asks for it, on the same pipeline as HTTP.
    #[cfg(feature = "grpc")]
    async fn grpc_server<H: Handler>(
        &self,
        handler: SharedHandler<H>,
        connections: Arc<Connections>,
    ) -> Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>, RunError> {
        let Some(addr) = self.grpc else { return Ok(None) };
        let listen = |source| RunError::Listen { addr, source };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(listen)?;
        let local = listener.local_addr().map_err(listen)?;
        eprintln!("serving {} over gRPC on {local}", self.graph);
        let options = ServeOptions { addr: local, ..self.serve.clone() };
        Ok(Some(tokio::spawn(crate::oip::grpc::serve(listener, handler, options, connections, shutdown_signal()))))
    }

    /// Without the `grpc` feature, `--grpc-port` is refused at start-up, saying how to build it in.
    #[cfg(not(feature = "grpc"))]
    async fn grpc_server<H: Handler>(
        &self,
        _handler: SharedHandler<H>,
        _connections: Arc<Connections>,
    ) -> Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>, RunError> {
        match self.grpc {
            None => Ok(None),
            Some(_) => Err(RunError::NotBuiltIn {
                what: "gRPC",
                how: "`graphc serve FILE --grpc-port PORT` builds it in (or enable graphc-runtime's `grpc` feature)",
            }),
        }
    }

    /// Consumes a child function's stream until SIGINT or SIGTERM.
    pub fn consume<H: Handler>(self, handler: H, source: StreamSource) -> Launched {
        Box::pin(async move {
            let stats = Arc::new(ConsumerStats::default());
            if let Some(addr) = self.probes {
                let listen = |source| RunError::Listen { addr, source };
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(listen)?;
                let local = listener.local_addr().map_err(listen)?;
                let security = PortSecurity::of(&self.serve);
                if let Some(tokens) = &security.auth {
                    tokens.reload_on_hangup();
                }
                if let Some(tls) = &security.tls {
                    tls.reload_on_hangup();
                }
                let scheme = if security.tls.is_some() { "https" } else { "http" };
                eprintln!("metrics and health on {scheme}://{local}");
                tokio::spawn(serve_probes(
                    listener,
                    Arc::clone(&stats),
                    source.group.clone(),
                    security,
                    shutdown_signal(),
                ));
            }
            eprintln!(
                "function {} consuming {} at {} as {}",
                source.group,
                source.queue.streams().join(", "),
                crate::error::redact_credentials(&source.queue.url),
                self.consume.consumer
            );
            #[cfg(feature = "streams")]
            return consume_with_stats(handler, source, self.consume, stats, shutdown_signal()).await;
            #[cfg(not(feature = "streams"))]
            {
                let _ = (handler, stats);
                Err(RunError::NotBuiltIn { what: "Redis client", how: "enable graphc-runtime's `streams` feature" })
            }
        })
    }

    /// A function that could not be built.
    pub fn failed(self, error: StartError) -> Launched {
        Box::pin(async move { Err(error.into()) })
    }

    /// A function the graph does not have.
    pub fn unknown(self, function: &str, functions: &[&str]) -> Launched {
        let error = RunError::UnknownFunction { function: function.to_string(), functions: functions.join(", ") };
        Box::pin(async move { Err(error) })
    }
}

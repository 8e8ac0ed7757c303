//! A server on a free loopback port, for the tests that talk to it over TCP.

pub mod pki;

use graphc_runtime::Handler;
use graphc_runtime::http::{ServeOptions, bind, serve};
use std::net::SocketAddr;

/// A running server: its address, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    #[allow(dead_code, reason = "the TLS tests speak HTTPS, and build their own requests")]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops it as SIGTERM would, and waits until it has shut down.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

/// Serves `handler` on a free loopback port with `options`.
pub async fn start<H: Handler>(handler: H, options: ServeOptions) -> Running {
    let listener =
        bind(&ServeOptions { addr: SocketAddr::from(([127, 0, 0, 1], 0)), ..options.clone() }).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, handler, options, async move {
        let _ = stopped.await;
    }));
    Running { addr, stop: Some(stop), task }
}

//! TLS on the server ports (the `tls` feature): a certificate and key in PEM (`--tls-cert`,
//! `--tls-key`), optionally a CA whose certificates clients must present (`--tls-client-ca`,
//! mutual TLS). Every port shares one configuration, re-read from its files on SIGHUP: new
//! connections take the new certificate, open ones keep theirs. The handshake runs in the
//! connection's own task, bounded by the header timeout, so that a peer that stalls it holds
//! nothing but its connection; a plaintext HTTP request on a TLS port is answered 400 in plain
//! HTTP, saying to use `https://`, and closed.

#[cfg(feature = "tls")]
use std::path::Path;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
#[cfg(feature = "tls")]
use std::sync::RwLock;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Where a server's certificate, key and client CA are.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// The private key, PEM.
    pub key: PathBuf,
    /// The CA client certificates must chain to; `None`: no client certificates asked.
    pub client_ca: Option<PathBuf>,
}

/// Why a TLS configuration cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no PEM of the kind needed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the certificate, key or CA (a key that is not the certificate's, say).
    #[error("the TLS configuration is refused: {0}")]
    Config(String),
    /// This build has no TLS.
    #[error(
        "this binary was built without TLS: `graphc serve FILE --tls-cert CERT --tls-key KEY` builds it in (or \
         enable graphc-runtime's `tls` feature)"
    )]
    NotBuiltIn,
}

/// A server's TLS: its files, and the configuration made from them now.
pub struct ServerTls {
    files: TlsFiles,
    #[cfg(feature = "tls")]
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("files", &self.files).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the files and makes the configuration.
    pub fn load(files: TlsFiles) -> Result<ServerTls, TlsError> {
        #[cfg(feature = "tls")]
        {
            let config = configure(&files)?;
            Ok(ServerTls { files, current: RwLock::new(Arc::new(config)) })
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = files;
            Err(TlsError::NotBuiltIn)
        }
    }

    /// Reads the files again; new connections take the new configuration. A file that no longer
    /// reads leaves the old one in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        #[cfg(feature = "tls")]
        {
            let config = Arc::new(configure(&self.files)?);
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        }
        Ok(())
    }

    /// Re-reads the files on every SIGHUP, for as long as the process runs.
    pub fn reload_on_hangup(self: &Arc<Self>) {
        let tls = Arc::clone(self);
        crate::logging::on_hangup("TLS certificate", move || tls.reload());
    }

    /// The handshake on an accepted connection: the stream to serve, or `None` when the peer
    /// did not complete one (it spoke plaintext, which is answered, or stalled, or failed).
    pub(crate) async fn accept(&self, tcp: TcpStream, within: std::time::Duration) -> Option<Stream> {
        #[cfg(feature = "tls")]
        {
            if speaks_plain_http(&tcp).await {
                answer_plaintext(tcp).await;
                return None;
            }
            let config = Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()));
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            match tokio::time::timeout(within, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => Some(Stream::Tls(Box::new(stream))),
                Ok(Err(error)) => {
                    tracing::debug!("TLS handshake failed: {error}");
                    None
                }
                Err(_) => {
                    tracing::debug!("TLS handshake took longer than {within:?}");
                    None
                }
            }
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (tcp, within);
            None
        }
    }
}

#[cfg(feature = "tls")]
fn configure(files: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file_error = |path: &Path, reason: String| TlsError::File { path: path.to_path_buf(), reason };
    let certificates = |path: &Path| -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|error| file_error(path, error.to_string()))?;
        if certs.is_empty() {
            return Err(file_error(path, "holds no PEM certificate".to_string()));
        }
        Ok(certs)
    };
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|error| file_error(&files.key, error.to_string()))?;
    let provider = Arc::new(ring_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca)? {
                roots.add(cert).map_err(|error| file_error(ca, error.to_string()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| TlsError::Config(error.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|error| TlsError::Config(error.to_string()))?;
    // REST is HTTP/1.1 and gRPC HTTP/2: each port's server speaks the one it serves.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// rustls with ring, graphc's one TLS provider.
#[cfg(any(feature = "tls", feature = "upstream-tls"))]
#[allow(
    deprecated,
    reason = "ring, not aws-lc-rs: aws-lc-rs needs cmake and a C build several times ring's; its post-quantum key \
              exchange is what ring's provider lacks"
)]
pub(crate) fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Whether the first bytes the peer sent are an HTTP request line rather than a TLS record
/// (which starts with 0x16, a handshake).
#[cfg(feature = "tls")]
async fn speaks_plain_http(tcp: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(1), tcp.peek(&mut first)).await,
        Ok(Ok(1)) if first[0].is_ascii_uppercase()
    )
}

#[cfg(feature = "tls")]
async fn answer_plaintext(mut tcp: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = r#"{"error":"this port takes TLS: use https://"}"#;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), tcp.write_all(answer.as_bytes())).await;
    let _ = tcp.shutdown().await;
}

/// An accepted connection: plain TCP, or TLS over it.
pub(crate) enum Stream {
    /// Plaintext.
    Plain(TcpStream),
    /// TLS.
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, data),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, data),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, data),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(tcp) => tcp.is_write_vectored(),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

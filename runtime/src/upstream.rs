//! TLS to upstreams: the roots that `$remote` over `https://` and Redis over `rediss://` trust.
//! They are the platform's (read as OpenSSL does: `SSL_CERT_FILE` and `SSL_CERT_DIR` replace
//! the system store when set), plus the CAs of `--upstream-ca`, loaded once per process: every
//! client made after that shares them, so a private CA is trusted beside the public ones.

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Why the upstream roots cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    /// The CA file could not be read or holds no certificate.
    #[error("{path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `trust` came after a client had been made with the roots as they were.
    #[error("the upstream CAs were already in use when `--upstream-ca` was read")]
    AlreadyInUse,
    /// rustls refused the client configuration.
    #[error("the upstream TLS configuration is refused: {0}")]
    Config(#[from] rustls::Error),
}

/// CAs trusted beside the platform's, set once before the first client is made.
static EXTRA: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
static ROOTS: OnceLock<Roots> = OnceLock::new();

/// What upstream clients trust.
struct Roots {
    store: Arc<RootCertStore>,
    /// The same certificates in PEM, for the Redis client, which takes roots only that way.
    #[cfg_attr(not(feature = "streams"), allow(dead_code, reason = "only the Redis client reads it"))]
    pem: Vec<u8>,
}

/// Trusts the CA certificates in `ca_file` (PEM) for every upstream, beside the platform's.
/// Called once at start-up, before any client is made.
pub fn trust(ca_file: &Path) -> Result<(), UpstreamTlsError> {
    let error = |reason: String| UpstreamTlsError::CaFile { path: ca_file.to_path_buf(), reason };
    let bytes = std::fs::read(ca_file).map_err(|e| error(e.to_string()))?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(format!("not PEM certificates: {e}")))?;
    if certificates.is_empty() {
        return Err(error("holds no certificate".to_string()));
    }
    let mut store = RootCertStore::empty();
    for certificate in &certificates {
        store.add(certificate.clone()).map_err(|e| error(e.to_string()))?;
    }
    if ROOTS.get().is_some() {
        return Err(UpstreamTlsError::AlreadyInUse);
    }
    EXTRA.set(certificates).map_err(|_| UpstreamTlsError::AlreadyInUse)
}

fn roots() -> &'static Roots {
    ROOTS.get_or_init(|| {
        let mut store = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!(%error, "a platform root certificate could not be read");
        }
        let extra = EXTRA.get().map(Vec::as_slice).unwrap_or_default();
        let mut pem = Vec::new();
        for certificate in native.certs.iter().chain(extra) {
            // A platform store may hold a certificate rustls cannot parse; the others still count.
            if store.add(certificate.clone()).is_ok() {
                pem.extend_from_slice(&pem_of(certificate));
            }
        }
        if store.is_empty() {
            tracing::warn!(
                "no root certificates were found: https:// and rediss:// upstreams will be refused (install the \
                 platform's CA certificates, set SSL_CERT_FILE, or pass --upstream-ca)"
            );
        }
        Roots { store: Arc::new(store), pem }
    })
}

/// A client configuration over the upstream roots, with ring.
pub fn client_config() -> Result<rustls::ClientConfig, UpstreamTlsError> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(crate::tls::ring_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(Arc::clone(&roots().store))
        .with_no_client_auth())
}

/// The upstream roots as PEM, for the Redis client.
#[cfg(feature = "streams")]
pub(crate) fn roots_pem() -> Vec<u8> {
    roots().pem.clone()
}

/// One certificate in PEM.
fn pem_of(certificate: &CertificateDer<'_>) -> Vec<u8> {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(certificate.as_ref());
    let mut pem = b"-----BEGIN CERTIFICATE-----\n".to_vec();
    for line in encoded.as_bytes().chunks(64) {
        pem.extend_from_slice(line);
        pem.push(b'\n');
    }
    pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_survives_the_round_trip_through_pem() {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let der = certified.cert.der().clone();
        let pem = pem_of(&der);
        let back: Vec<_> = CertificateDer::pem_slice_iter(&pem).collect::<Result<_, _>>().unwrap();
        assert_eq!(back, vec![der]);
    }
}

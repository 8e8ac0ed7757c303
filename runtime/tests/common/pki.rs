//! Certificates made in the test (rcgen): a private CA, a server certificate for 127.0.0.1 and
//! a client certificate it signed, as PEM files in a folder of the test's own.
#![allow(dead_code, reason = "each test file that shares this uses part of it")]

use graphc_runtime::tls::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, CertifiedKey, IsCa, KeyPair};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_rustls::rustls;

/// A private CA, a server certificate for 127.0.0.1 it signed, and a client certificate it
/// signed, written as PEM files in a folder of the test's own.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: rustls::pki_types::CertificateDer<'static>,
    pub client: (rustls::pki_types::CertificateDer<'static>, rustls::pki_types::PrivateKeyDer<'static>),
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("graphc-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issue = |names: Vec<String>| -> CertifiedKey {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
            CertifiedKey { cert, key_pair: key }
        };
        let server = issue(vec!["127.0.0.1".to_string(), "localhost".to_string()]);
        let client = issue(vec!["client".to_string()]);
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), server.cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), server.key_pair.serialize_pem()).unwrap();
        let client_key = rustls::pki_types::PrivateKeyDer::try_from(client.key_pair.serialize_der()).unwrap();
        Pki { dir, ca: ca.der().clone(), client: (client.cert.der().clone(), client_key) }
    }

    pub fn files(&self, mutual: bool) -> TlsFiles {
        TlsFiles {
            cert: self.dir.join("server.pem"),
            key: self.dir.join("server.key"),
            client_ca: mutual.then(|| self.dir.join("ca.pem")),
        }
    }

    /// A client that trusts the CA, presenting the client certificate when `present`.
    pub fn client(&self, present: bool) -> tokio_rustls::TlsConnector {
        #[allow(deprecated, reason = "the server's provider, ring")]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = if present {
            builder.with_client_auth_cert(vec![self.client.0.clone()], self.client.1.clone_key()).unwrap()
        } else {
            builder.with_no_client_auth()
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

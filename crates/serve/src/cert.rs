//! A server certificate the embedder replaces while the server runs (an attested certificate
//! is reissued before its claims grow too old for the relying parties' policies).

use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The certificate every new TLS connection is given; [`RenewableCert::replace`] swaps it.
#[derive(Debug)]
pub struct RenewableCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl RenewableCert {
    /// A resolver starting with this certificate and key.
    ///
    /// # Errors
    /// When rustls (ring) cannot use the key.
    pub fn new(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Result<Self, rustls::Error> {
        Ok(Self { current: RwLock::new(Arc::new(certified(cert, key)?)) })
    }

    /// Serves this certificate to connections from now on (open ones keep theirs).
    ///
    /// # Errors
    /// When rustls (ring) cannot use the key; the old certificate stays.
    pub fn replace(&self, cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Result<(), rustls::Error> {
        let next = Arc::new(certified(cert, key)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }
}

fn certified(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Result<CertifiedKey, rustls::Error> {
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(vec![cert], key, &provider)
}

impl ResolvesServerCert for RenewableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner)))
    }
}

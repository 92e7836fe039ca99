//! Challenge nonces that cost the control plane nothing to hand out.
//!
//! A nonce is made, not stored: its expiry, eight random bytes, and an HMAC of both under a key
//! derived from the control plane's master key (so replicas that share the master accept each
//! other's nonces). Checking one needs no state; only nonces that were answered by evidence the
//! policy accepted are remembered, until they expire, so that each answers one request. A flood
//! of `POST /v1/challenge` therefore fills no table: enrolment, re-attestation and releases go
//! on however many nonces were asked for. Each source (an IPv4 address, an IPv6 /64) may ask
//! for [`BURST`] at once and [`RATE_PER_SEC`] a second after that, so one client cannot take
//! the control plane's time either.
//!
//! Layout (32 bytes, as the evidence binds it): expiry (u64, big-endian seconds since the Unix
//! epoch) ‖ 8 random bytes ‖ the first 16 bytes of HMAC-SHA256(key, the first 16 bytes).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Instant;

use rand_core::RngCore as _;
use ring::hmac;

/// How long a challenge may be answered, in seconds.
pub const CHALLENGE_SECS: u64 = 120;
/// A nonce's length in bytes.
pub const NONCE_LEN: usize = 32;
/// Challenges one source may ask for at once.
pub const BURST: f64 = 100.0;
/// Challenges one source may ask for each second, after its burst.
pub const RATE_PER_SEC: f64 = 20.0;
/// The most sources whose rate is followed at once. When that many are all active, a new
/// source is served untracked: nonces cost no memory, so this bounds only the table.
const MAX_SOURCES: usize = 8192;
/// The most answered nonces remembered. Only evidence that passed the policy adds one, and
/// each leaves after [`CHALLENGE_SECS`]: 100,000 is over 800 attestations a second.
const MAX_USED: usize = 100_000;

/// Why a nonce was not issued or not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// Not 32 bytes of hex.
    #[error("the nonce is not {NONCE_LEN} bytes of hex")]
    Malformed,
    /// Its authentication tag is wrong: not a nonce of this control plane.
    #[error("the nonce was not issued by this control plane; ask for a new one at /v1/challenge")]
    Forged,
    /// Its time is up.
    #[error(
        "the challenge has expired (a nonce may be answered for {CHALLENGE_SECS} s); ask for a new one at /v1/challenge"
    )]
    Expired,
    /// It has answered a request already.
    #[error("the challenge has been answered already (replayed evidence); ask for a new one at /v1/challenge")]
    Replayed,
    /// The source asked for more than its share.
    #[error("too many challenges from this address; retry in {retry_after_secs} s")]
    RateLimited {
        /// When the source may ask again.
        retry_after_secs: u64,
    },
    /// More attestations passed in the last [`CHALLENGE_SECS`] than can be remembered.
    #[error("too many attestations in the last {CHALLENGE_SECS} s; retry shortly")]
    Busy,
}

/// A source's allowance: a token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// The bucket refilled to `now`.
    fn refilled(self, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        Bucket { tokens: (self.tokens + elapsed * RATE_PER_SEC).min(BURST), at: now }
    }
}

/// The control plane's challenges: the key they are made with, the answered ones not yet
/// expired, and each source's allowance.
pub struct Challenges {
    key: hmac::Key,
    used: BTreeMap<[u8; NONCE_LEN], u64>,
    sources: HashMap<Source, Bucket>,
}

/// Whom an allowance of challenges belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A client that is not an enrolled node: its address (an IPv4 address, or the /64 of an
    /// IPv6 one). Nodes that have not enrolled yet share their address's allowance.
    Address(IpAddr),
    /// An enrolled node, known by its TLS client certificate (the SHA-256 of its key, hex): it
    /// has an allowance of its own, so a flood from its address (a neighbour behind the same
    /// NAT) does not hold up its re-attestations and releases.
    Node(String),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Self {
        Source::Address(source_of(ip))
    }
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges").field("used", &self.used.len()).field("sources", &self.sources.len()).finish()
    }
}

/// The source a rate is kept for: an IPv4 address, or the /64 of an IPv6 one (a host usually
/// has a whole /64).
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

impl Challenges {
    /// Challenges authenticated with a key derived from `master`.
    ///
    /// # Errors
    /// When the derivation fails (never for a 32-byte master; see [`lamina_keys::KeyError`]).
    pub fn new(master: &[u8]) -> Result<Self, lamina_keys::KeyError> {
        let key = lamina_keys::derive(master, &lamina_keys::Purpose::ChallengeMac)?;
        Ok(Challenges {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key[..]),
            used: BTreeMap::new(),
            sources: HashMap::new(),
        })
    }

    fn tag(&self, head: &[u8]) -> [u8; 16] {
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&hmac::sign(&self.key, head).as_ref()[..16]);
        tag
    }

    /// A new nonce for `source`, valid until `now` + [`CHALLENGE_SECS`] (`now` in seconds
    /// since the Unix epoch; `clock` the monotonic time the source's allowance is kept in).
    ///
    /// # Errors
    /// [`ChallengeError::RateLimited`] when the source has used up its allowance.
    pub fn issue(
        &mut self,
        source: impl Into<Source>,
        now: u64,
        clock: Instant,
    ) -> Result<[u8; NONCE_LEN], ChallengeError> {
        self.take(source.into(), clock)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&now.saturating_add(CHALLENGE_SECS).to_be_bytes());
        rand_core::OsRng.fill_bytes(&mut nonce[8..16]);
        let tag = self.tag(&nonce[..16]);
        nonce[16..].copy_from_slice(&tag);
        Ok(nonce)
    }

    /// Takes one challenge from `source`'s allowance.
    fn take(&mut self, source: Source, clock: Instant) -> Result<(), ChallengeError> {
        if !self.sources.contains_key(&source) && self.sources.len() >= MAX_SOURCES {
            // Forget the sources whose allowance is whole again: they cost nothing to forget.
            self.sources.retain(|_, b| b.refilled(clock).tokens < BURST);
            if self.sources.len() >= MAX_SOURCES {
                return Ok(());
            }
        }
        let bucket = self.sources.entry(source).or_insert(Bucket { tokens: BURST, at: clock });
        let refilled = bucket.refilled(clock);
        if refilled.tokens < 1.0 {
            *bucket = refilled;
            let retry_after_secs = ((1.0 - refilled.tokens) / RATE_PER_SEC).ceil().max(1.0) as u64;
            return Err(ChallengeError::RateLimited { retry_after_secs });
        }
        *bucket = Bucket { tokens: refilled.tokens - 1.0, ..refilled };
        Ok(())
    }

    /// Checks that `nonce_hex` is a nonce of this control plane, unexpired at `now` and not
    /// answered yet; it is not used up (see [`Challenges::consume`]).
    ///
    /// # Errors
    /// [`ChallengeError::Malformed`], [`ChallengeError::Forged`], [`ChallengeError::Expired`]
    /// or [`ChallengeError::Replayed`].
    pub fn check(&self, nonce_hex: &str, now: u64) -> Result<[u8; NONCE_LEN], ChallengeError> {
        let mut nonce = [0u8; NONCE_LEN];
        if nonce_hex.len() != 2 * NONCE_LEN {
            return Err(ChallengeError::Malformed);
        }
        hex::decode_to_slice(nonce_hex, &mut nonce).map_err(|_| ChallengeError::Malformed)?;
        let expected = self.tag(&nonce[..16]);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &nonce[16..])) {
            return Err(ChallengeError::Forged);
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&nonce[..8]);
        if u64::from_be_bytes(expiry) <= now {
            return Err(ChallengeError::Expired);
        }
        if self.used.contains_key(&nonce) {
            return Err(ChallengeError::Replayed);
        }
        Ok(nonce)
    }

    /// Uses `nonce_hex` up: call it once the evidence that answers it has passed, so that it
    /// answers no other request.
    ///
    /// # Errors
    /// As [`Challenges::check`], and [`ChallengeError::Busy`] when more answered nonces are
    /// unexpired than are remembered.
    pub fn consume(&mut self, nonce_hex: &str, now: u64) -> Result<(), ChallengeError> {
        let nonce = self.check(nonce_hex, now)?;
        if self.used.len() >= MAX_USED {
            self.prune(now);
            if self.used.len() >= MAX_USED {
                return Err(ChallengeError::Busy);
            }
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&nonce[..8]);
        self.used.insert(nonce, u64::from_be_bytes(expiry));
        Ok(())
    }

    /// Forgets the answered nonces that have expired by `now` (they fail as expired instead).
    pub fn prune(&mut self, now: u64) {
        self.used.retain(|_, expiry| *expiry > now);
    }

    /// How many answered nonces are remembered.
    #[must_use]
    pub fn remembered(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    use super::*;

    fn fresh() -> Challenges {
        Challenges::new(&[7; 32]).expect("derives")
    }

    const HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn a_nonce_answers_one_request_until_it_expires() {
        let mut c = fresh();
        let t = Instant::now();
        let nonce = hex::encode(c.issue(HOST, 1000, t).expect("issued"));
        assert!(c.check(&nonce, 1000).is_ok());
        c.consume(&nonce, 1001).expect("first answer");
        assert_eq!(c.consume(&nonce, 1002), Err(ChallengeError::Replayed));
        let other = hex::encode(c.issue(HOST, 1000, t).expect("issued"));
        assert_eq!(c.check(&other, 1000 + CHALLENGE_SECS), Err(ChallengeError::Expired));
        c.prune(1000 + CHALLENGE_SECS);
        assert_eq!(c.remembered(), 0);
        // Once forgotten, the answered nonce is refused as expired, never accepted again.
        assert_eq!(c.consume(&nonce, 1000 + CHALLENGE_SECS), Err(ChallengeError::Expired));
    }

    #[test]
    fn forged_relabelled_and_another_control_planes_nonces_are_refused() {
        let mut c = fresh();
        let nonce = c.issue(HOST, 1000, Instant::now()).expect("issued");
        // A later expiry written over an issued nonce.
        let mut later = nonce;
        later[..8].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(c.check(&hex::encode(later), 1000), Err(ChallengeError::Forged));
        let mut flipped = nonce;
        flipped[31] ^= 1;
        assert_eq!(c.check(&hex::encode(flipped), 1000), Err(ChallengeError::Forged));
        let theirs = Challenges::new(&[8; 32]).expect("derives").issue(HOST, 1000, Instant::now()).expect("issued");
        assert_eq!(c.check(&hex::encode(theirs), 1000), Err(ChallengeError::Forged));
        // A replica with the same master accepts it.
        assert!(fresh().check(&hex::encode(nonce), 1000).is_ok());
        for bad in ["", "zz", &"0".repeat(63), &"0".repeat(66), &"é".repeat(32)] {
            assert_eq!(c.check(bad, 1000), Err(ChallengeError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn a_flood_from_one_source_is_limited_and_leaves_others_served() {
        let mut c = fresh();
        let t = Instant::now();
        let flooder = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 66));
        let served = (0..10_000).filter(|_| c.issue(flooder, 1000, t).is_ok()).count();
        assert_eq!(served, BURST as usize);
        match c.issue(flooder, 1000, t) {
            Err(ChallengeError::RateLimited { retry_after_secs }) => assert!(retry_after_secs >= 1),
            other => panic!("{other:?}"),
        }
        // Another node is not affected, and the flooder gets its rate back with time.
        assert!(c.issue(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), 1000, t).is_ok());
        assert!(c.issue(flooder, 1001, t + Duration::from_secs(1)).is_ok());
        // Nothing of the flood is remembered but the one bucket per source.
        assert_eq!(c.remembered(), 0);
        assert_eq!(c.sources.len(), 2);
    }

    #[test]
    fn an_ipv6_flooder_cannot_escape_its_rate_by_changing_address_in_its_64() {
        let mut c = fresh();
        let t = Instant::now();
        let served = (0..1000u16)
            .filter(|i| c.issue(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, *i)), 1000, t).is_ok())
            .count();
        assert_eq!(served, BURST as usize);
    }

    #[test]
    fn an_enrolled_node_keeps_its_allowance_while_its_address_is_flooded() {
        let mut c = Challenges::new(&[7; 32]).expect("derives");
        let t = Instant::now();
        let shared = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
        while c.issue(shared, 1000, t).is_ok() {}
        assert!(matches!(c.issue(shared, 1000, t), Err(ChallengeError::RateLimited { .. })));
        for _ in 0..BURST as usize {
            c.issue(Source::Node("ab".repeat(32)), 1000, t).expect("the node's own allowance");
        }
        assert!(matches!(c.issue(Source::Node("ab".repeat(32)), 1000, t), Err(ChallengeError::RateLimited { .. })));
        assert!(c.issue(Source::Node("cd".repeat(32)), 1000, t).is_ok(), "another node is not held up");
    }

    #[test]
    fn a_flood_from_many_sources_keeps_the_table_bounded() {
        let mut c = fresh();
        let t = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 1000) {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            c.issue(ip, 1000, t).expect("each source's first challenge is served");
        }
        assert!(c.sources.len() <= MAX_SOURCES);
    }

    proptest::proptest! {
        #[test]
        fn any_string_is_checked_without_panic(s in ".{0,80}", hexed in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let c = fresh();
            proptest::prop_assert!(c.check(&s, 0).is_err());
            proptest::prop_assert!(c.check(&hex::encode(hexed), 0).is_err());
        }
    }
}

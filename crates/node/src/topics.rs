//! An instance's topic keys: asked of the control plane as the instance first uses a topic,
//! encrypted to the key the instance attested with, and kept for the agent's lifetime so that
//! a restarted instance, or one cut off from the control plane, keeps the topics it had.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use lamina_host_messaging::MessagingError;
use lamina_messaging_crypto::{TopicKey, TopicKeys};
use lamina_types::ModuleHash;
use lamina_wire::release;
use lamina_wire::{ClientError, ControlClient};
use rand_core::RngCore as _;

/// How many topic keys an instance keeps (beyond, they are asked for again).
const MAX_KEYS: usize = 4096;
/// How long a refused topic is not asked for again.
const REFUSAL_TTL: Duration = Duration::from_secs(10);

/// The topic keys of one instance (`workload/replica`) on this node.
pub(crate) struct ControlTopicKeys {
    client: ControlClient,
    node: String,
    workload: lamina_types::WorkloadName,
    replica: u32,
    /// The attested instance's key and its module, once it has attested.
    instance: Mutex<Option<(p256::SecretKey, ModuleHash)>>,
    keys: Mutex<HashMap<String, TopicKey>>,
    refused: Mutex<HashMap<String, (Instant, String)>>,
}

impl ControlTopicKeys {
    pub(crate) fn new(client: ControlClient, node: &str, workload: &lamina_types::WorkloadName, replica: u32) -> Self {
        ControlTopicKeys {
            client,
            node: node.to_owned(),
            workload: workload.clone(),
            replica,
            instance: Mutex::new(None),
            keys: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// The instance attested again (it restarted): keys are now released to `key`.
    pub(crate) fn attested(&self, key: p256::SecretKey, module: ModuleHash) {
        let mut instance = self.instance.lock().unwrap_or_else(PoisonError::into_inner);
        if instance.as_ref().is_some_and(|(_, m)| *m != module) {
            // Another module: what the old one was given is not the new one's.
            self.keys.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
        *instance = Some((key, module));
        self.refused.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Whether the instance has no attested key here (it was started from cached secrets
    /// while the control plane was out of reach, before this agent last started).
    pub(crate) fn unattested(&self) -> bool {
        self.instance.lock().unwrap_or_else(PoisonError::into_inner).is_none()
    }

    fn fetch(&self, topic: &str) -> Result<TopicKey, MessagingError> {
        let Some((secret, module)) = self.instance.lock().unwrap_or_else(PoisonError::into_inner).clone() else {
            return Err(MessagingError::Unavailable(format!(
                "{}/{} has not attested to the control plane yet (it was started from cached secrets); \
                 topic `{topic}` opens once the control plane is back and the node attests it",
                self.workload, self.replica
            )));
        };
        let mut nonce = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut nonce);
        let answer = self.client.topic_keys(
            &self.node,
            &lamina_wire::TopicKeysRequest {
                workload: self.workload.clone(),
                replica: self.replica,
                topics: vec![topic.to_owned()],
                nonce: hex::encode(nonce),
            },
        );
        let released = match answer {
            Ok(r) => r,
            Err(e @ ClientError::Unreachable { .. }) => {
                return Err(MessagingError::Unavailable(format!("the key of topic `{topic}`: {e}")));
            }
            Err(e) => {
                return Err(MessagingError::Denied(format!("the control plane refused the key of `{topic}`: {e}")));
            }
        };
        let bundle = release::decrypt_as_instance(&released, &secret, &nonce, &module)
            .map_err(|e| MessagingError::Denied(format!("the key of topic `{topic}`: {e}")))?;
        let key = bundle
            .topic_key(topic)
            .map_err(|e| MessagingError::Unavailable(format!("the key of topic `{topic}`: {e}")))?
            .ok_or_else(|| MessagingError::Unavailable(format!("the control plane sent no key for `{topic}`")))?;
        Ok(TopicKey::new(bundle.epoch, *key))
    }
}

impl TopicKeys for ControlTopicKeys {
    fn key(&self, topic: &str) -> Result<TopicKey, MessagingError> {
        if let Some(key) = self.keys.lock().unwrap_or_else(PoisonError::into_inner).get(topic) {
            return Ok(key.clone());
        }
        if let Some((at, why)) = self.refused.lock().unwrap_or_else(PoisonError::into_inner).get(topic)
            && at.elapsed() < REFUSAL_TTL
        {
            return Err(MessagingError::Denied(why.clone()));
        }
        match self.fetch(topic) {
            Ok(key) => {
                let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
                if keys.len() >= MAX_KEYS {
                    keys.clear();
                }
                keys.insert(topic.to_owned(), key.clone());
                tracing::debug!("{}/{}: holds the key of topic {topic}", self.workload, self.replica);
                Ok(key)
            }
            Err(MessagingError::Denied(why)) => {
                tracing::warn!("{}/{}: {why}", self.workload, self.replica);
                let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
                refused.insert(topic.to_owned(), (Instant::now(), why.clone()));
                Err(MessagingError::Denied(why))
            }
            Err(e) => Err(e),
        }
    }
}

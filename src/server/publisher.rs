//! [`Publisher`]: publishing to topics from outside the workers (another thread, a timer).

use std::sync::Arc;

use bytes::Bytes;

use super::pubsub::{Hub, Publication, Topic};
use super::relay::Relay;
use crate::runtime::sys;

/// Publishes to topics from outside the workers: another thread, a timer, a broker bridge.
/// Cheap to clone; `Send` and `Sync`.
#[derive(Clone)]
pub struct Publisher {
    pub(crate) hub: Arc<Hub>,
    /// The relay to other servers, when one is attached.
    pub(crate) relay: Option<Arc<dyn Relay>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("workers", &self.hub.workers())
            .field("relay", &self.relay.is_some())
            .finish()
    }
}

impl Publisher {
    /// Sends `frame` (from [`encode_frame`](crate::proto::frame::encode_frame)) to every
    /// subscriber of `topic` on every worker, and on every other node when a relay is
    /// attached.
    pub fn publish(&self, topic: &str, frame: Bytes) {
        let topic: Topic = Arc::from(topic);
        if let Some(relay) = &self.relay {
            relay.submit(
                u16::MAX,
                &mut vec![(topic.clone(), frame.clone())],
                &mut Vec::new(),
            );
        }
        self.publish_here(topic, frame);
    }

    /// Sends `frame` to every subscriber of `topic` on this node's workers only.
    pub fn publish_local(&self, topic: &str, frame: Bytes) {
        self.publish_here(Arc::from(topic), frame);
    }

    fn publish_here(&self, topic: Topic, frame: Bytes) {
        for w in 0..self.hub.workers() {
            let mut one = vec![Publication {
                topic: topic.clone(),
                frame: frame.clone(),
                except: None,
            }];
            if self.hub.deliver(w, &mut one) {
                sys::eventfd_signal(self.hub.efd(w));
            }
        }
    }
}

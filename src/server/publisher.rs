//! [`Publisher`]: publishing to topics from outside the workers (another thread, a timer).

use std::sync::Arc;

use super::pubsub::{ConnId, Hub, Item, Publication, Target, Topic};
use super::relay::Relay;
use crate::proto::frame::Frame;
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
    /// Sends `frame` to every subscriber of `topic` on every worker, and on every other server
    /// when a relay is attached.
    pub fn publish(&self, topic: &str, frame: Frame) {
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

    /// Sends `payload` to every other server of the cluster, whose home worker of
    /// [`CONTROL_TOPIC`](super::relay::CONTROL_TOPIC) gets it as
    /// [`LogEvent::Control`](super::LogEvent::Control): at most once (a broker that is
    /// unreachable drops it, counted). Returns whether a relay carries control messages now
    /// ([`Relay::has_control`] and [`Relay::ready`]); this server itself gets nothing.
    pub fn control(&self, payload: &str) -> bool {
        match &self.relay {
            Some(relay) if relay.has_control() && relay.ready() => {
                let topic: Topic = Arc::from(super::relay::CONTROL_TOPIC);
                relay.submit(
                    u16::MAX,
                    &mut vec![(topic, Frame::text(payload))],
                    &mut Vec::new(),
                );
                true
            }
            _ => false,
        }
    }

    /// Whether a relay carries control messages to other servers
    /// ([`Publisher::control`]), reachable or not.
    pub fn has_control(&self) -> bool {
        self.relay.as_ref().is_some_and(|r| r.has_control())
    }

    /// Sends `frame` to every subscriber of `topic` on this server's workers only.
    pub fn publish_local(&self, topic: &str, frame: Frame) {
        self.publish_here(Arc::from(topic), frame);
    }

    /// Sends `frame` to the connection `to` of this server (see
    /// [`Conn::send_to`](super::Conn::send_to)): from any thread, e.g. a backend's notification
    /// for one user. Nothing happens if it is closed by then.
    pub fn send_to(&self, to: ConnId, frame: Frame) {
        let w = usize::from(to.worker);
        if w < self.hub.workers() {
            self.deliver(
                w,
                Publication {
                    target: Target::Conn(to),
                    frame,
                    except: None,
                },
            );
        }
    }

    /// Hands `data` to the handler of connection `to` of this server
    /// ([`Handler::notify`](super::Handler::notify)), on its worker: from any thread. Nothing
    /// happens if it is closed by then.
    pub fn notify(&self, to: ConnId, data: impl std::any::Any + Send) {
        let w = usize::from(to.worker);
        if w < self.hub.workers()
            && self
                .hub
                .deliver(w, &mut vec![Item::Notify(to, Box::new(data))])
        {
            sys::eventfd_signal(self.hub.efd(w));
        }
    }

    /// A request for `topic`'s home worker ([`Handler::home`](super::Handler::home), with
    /// [`Home::from`](super::Home::from) [`ConnId::NONE`]): from any thread, in the order made
    /// from this one.
    pub fn to_home(&self, topic: &str, data: impl std::any::Any + Send) {
        let w = super::home::home_of(topic, self.hub.workers());
        let item = Item::Home(super::home::HomeRequest {
            topic: Arc::from(topic),
            from: ConnId::NONE,
            data: Box::new(data),
        });
        if self.hub.deliver(w, &mut vec![item]) {
            sys::eventfd_signal(self.hub.efd(w));
        }
    }

    fn publish_here(&self, topic: Topic, frame: Frame) {
        for w in 0..self.hub.workers() {
            self.deliver(w, Publication::topic(topic.clone(), frame.clone()));
        }
    }

    fn deliver(&self, w: usize, p: Publication) {
        if self.hub.deliver(w, &mut vec![Item::Publish(p, None)]) {
            sys::eventfd_signal(self.hub.efd(w));
        }
    }
}

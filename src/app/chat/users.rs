//! This server's connections of each user (those with a token), for what the application does
//! to a user (disconnect).

use crate::server::ConnId;

/// This server's connections of each user (those with a token): for direct operations on a
/// user (disconnect). Touched when such a connection opens or closes, never per message.
#[derive(Debug, Default)]
pub struct Users {
    conns: std::sync::Mutex<std::collections::HashMap<Box<str>, Vec<ConnId>>>,
}

impl Users {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Box<str>, Vec<ConnId>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn add(&self, user: &str, conn: ConnId) {
        self.lock().entry(user.into()).or_default().push(conn);
    }

    pub(super) fn remove(&self, user: &str, conn: ConnId) {
        let mut conns = self.lock();
        if let Some(list) = conns.get_mut(user) {
            list.retain(|c| *c != conn);
            if list.is_empty() {
                conns.remove(user);
            }
        }
    }

    /// The connections of `user` on this server.
    pub fn of(&self, user: &str) -> Vec<ConnId> {
        self.lock().get(user).cloned().unwrap_or_default()
    }

    /// Users with connections on this server.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no user has a connection here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

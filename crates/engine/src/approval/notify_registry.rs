//! Notifiers by key, for the outbox: a stored delivery names its notifier by key (never by
//! URL, which is a secret); any process whose code built the same gate can send it.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use super::notify::Notifier;

fn registry() -> &'static RwLock<HashMap<String, Notifier>> {
    static REGISTRY: OnceLock<RwLock<HashMap<String, Notifier>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Makes `notifier` reachable by its key in this process.
pub(crate) fn register(notifier: &Notifier) {
    registry()
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(notifier.key(), notifier.clone());
}

/// The notifier with this key, if this process built one.
pub(crate) fn get(key: &str) -> Option<Notifier> {
    registry()
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(key)
        .cloned()
}

//! Miyabi

pub mod model;
pub use model::{LanguageModel, ModelError, model};

//! Model fallback chains: try the next model when one fails with a retryable error.

use std::sync::Arc;

use async_trait::async_trait;

use super::call::LanguageModel;
use super::error::{ConfigError, ModelError};
use super::types::{EventStream, ModelRequest, ModelResponse};

/// A chain of models tried in order: when one fails with a retryable error (rate limit, server
/// error, network, connect/first-byte timeout, after its own retries), the next is tried. Other
/// errors (auth, invalid request, context length...) end the call. A stream falls back only
/// while it has not started; once events flow it belongs to the model that produced them.
#[derive(Clone)]
pub struct FallbackModel {
    models: Vec<Arc<dyn LanguageModel>>,
}

impl std::fmt::Debug for FallbackModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackModel")
            .field("models", &self.models.len())
            .finish()
    }
}

impl FallbackModel {
    /// A chain; the first model is preferred.
    pub fn new(models: Vec<Arc<dyn LanguageModel>>) -> Self {
        Self { models }
    }
}

#[async_trait]
impl LanguageModel for FallbackModel {
    async fn generate(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let mut last = None;
        for (i, m) in self.models.iter().enumerate() {
            match m.generate(req).await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_retryable() && i + 1 < self.models.len() => {
                    tracing::warn!(error = %e, next = i + 1, "model failed, falling back");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ConfigError::EmptyFallbackChain.into()))
    }

    async fn stream(&self, req: &ModelRequest) -> Result<EventStream, ModelError> {
        let mut last = None;
        for (i, m) in self.models.iter().enumerate() {
            match m.stream(req).await {
                Ok(s) => return Ok(s),
                Err(e) if e.is_retryable() && i + 1 < self.models.len() => {
                    tracing::warn!(error = %e, next = i + 1, "model failed, falling back");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ConfigError::EmptyFallbackChain.into()))
    }
}

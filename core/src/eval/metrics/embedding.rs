//! Embedding cosine similarity through the model layer's [`EmbeddingModel`].

use std::sync::Arc;

use async_trait::async_trait;

use super::references;
use crate::eval::metric::{Metric, Outcome, Sample, Score};
use crate::model::EmbeddingModel;

/// The cosine similarity of the output's embedding and the expected answer's (the best over
/// several references), clamped to [0, 1] (a negative cosine scores 0). The output and the
/// references are embedded in one request. Unscored without `expected`, when the embedding
/// call fails, or when a vector has no length. Metadata: `cosine` (the raw value), `reference`
/// (the index of the best reference).
#[derive(Clone)]
pub struct EmbeddingSimilarity {
    model: Arc<dyn EmbeddingModel>,
}

impl std::fmt::Debug for EmbeddingSimilarity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingSimilarity")
            .finish_non_exhaustive()
    }
}

impl EmbeddingSimilarity {
    /// With an embedding model (e.g. `miyabi::embedding("openai/text-embedding-3-small")?`).
    pub fn new(model: impl EmbeddingModel + 'static) -> Self {
        Self {
            model: Arc::new(model),
        }
    }

    /// With a shared embedding model.
    pub fn from_arc(model: Arc<dyn EmbeddingModel>) -> Self {
        Self { model }
    }
}

/// The cosine of two vectors; `None` when either has no length or they differ in size.
pub fn cosine(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let c = dot / (na.sqrt() * nb.sqrt());
    c.is_finite().then_some(c.clamp(-1.0, 1.0))
}

#[async_trait]
impl Metric for EmbeddingSimilarity {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let refs = match references(sample) {
            Ok(r) => r,
            Err(o) => return o,
        };
        let output = sample.output_text();
        let mut texts: Vec<&str> = vec![&output];
        texts.extend(refs.iter().map(String::as_str));
        let embedded = match self.model.embed(&texts).await {
            Ok(e) => e,
            Err(e) => return Outcome::unscored(format!("the embedding call failed: {e}")),
        };
        if embedded.vectors.len() != texts.len() {
            return Outcome::unscored(format!(
                "the embedding model returned {} vectors for {} texts",
                embedded.vectors.len(),
                texts.len()
            ));
        }
        let out = &embedded.vectors[0];
        let mut best: Option<(usize, f64)> = None;
        for (i, v) in embedded.vectors[1..].iter().enumerate() {
            if let Some(c) = cosine(out, v)
                && best.is_none_or(|(_, b)| c > b)
            {
                best = Some((i, c));
            }
        }
        let Some((i, c)) = best else {
            return Outcome::unscored("the embeddings have no length or differ in size");
        };
        match Score::new(c.max(0.0)) {
            Ok(s) => s
                .with_reason(format!("cosine similarity {c:.4}"))
                .with_meta("cosine", c)
                .with_meta("reference", i)
                .into(),
            Err(e) => Outcome::unscored(e.to_string()),
        }
    }
}

//! Errors of agent memory.

/// A memory operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// The SQLite database failed.
    #[error("memory database `{path}`: {message}")]
    Sqlite {
        /// Database location.
        path: String,
        /// SQLite's message.
        message: String,
    },
    /// The Redis server failed or could not be reached.
    #[error("memory on Redis: {0}")]
    Redis(String),
    /// A value could not be turned into JSON.
    #[error("working-memory key `{key}`: the value cannot be turned into JSON: {message}")]
    Encode {
        /// The key.
        key: String,
        /// Serde's message.
        message: String,
    },
    /// A stored value could not be decoded.
    #[error("memory: bad stored data in {place}: {message}")]
    Decode {
        /// Where (scope/key, thread/message id).
        place: String,
        /// The decoder's message.
        message: String,
    },
    /// One value is larger than the whole byte cap.
    #[error("working-memory key `{key}` is {bytes} bytes, more than the cap of {max} bytes")]
    TooLarge {
        /// The key.
        key: String,
        /// Its size (key + JSON value).
        bytes: u64,
        /// The backend's `max_bytes`.
        max: u64,
    },
    /// The backend is configured wrongly.
    #[error("memory configuration: {0}")]
    Config(String),
}

impl MemoryError {
    /// The error's stable code ([`crate::ErrorCode`]): `CONFIG`, `INVALID_ARGUMENT` for a value
    /// over the size cap, else `MEMORY`.
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            Self::Config(_) => crate::ErrorCode::Config,
            Self::TooLarge { .. } => crate::ErrorCode::InvalidArgument,
            _ => crate::ErrorCode::Memory,
        }
    }
}

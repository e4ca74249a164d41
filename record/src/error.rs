//! Errors while turning a run into a stored variant.

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Storing an output or reading an input failed; the run is not cached.
    #[error(transparent)]
    Store(#[from] casher_store::StoreError),

    /// An input or output vanished or could not be read after the run.
    #[error("cannot record {path}: {reason}")]
    Unreadable { path: String, reason: String },
}

pub type Result<T, E = RecordError> = std::result::Result<T, E>;

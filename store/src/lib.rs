//! casher's result store: content-addressed objects and per-key variant
//! records that survive crashes, races and corruption.
//!
//! - Objects are named by their BLAKE3 hash, written to a temp file and
//!   renamed into place, streamed in bounded memory, and verified on every
//!   read: a corrupt object is removed and the lookup is a miss.
//! - A key holds several variants (one per distinct set of inputs), each a
//!   self-checking record file; a lookup returns the newest whose inputs
//!   still hold, or says which input changed.
//! - Restores only write inside allowed roots.
//!
//! The crate never prints; callers decide what to tell the user.

mod auth;
mod backend;
mod checks;
mod counters;
mod error;
mod fsutil;
mod gc;
mod hash_cache;
mod id;
mod interrupt;
mod local;
mod local_io;
mod location;
mod lookup;
mod maintenance;
mod record;
mod restore;
mod shared_sets;
mod store;
mod walk;

pub use backend::{Backend, StoredVariant};
pub use casher_forksafe::{in_pool, PerProcess};
pub use error::{Result, StoreError};
pub use fsutil::{hash_file, Stamp};
pub use hash_cache::HashCache;
pub use id::ObjectId;
pub use location::{cache_dir, ensure_cache_dir, CacheDirSource};
pub use lookup::{
    dir_listing_hash, output_names, stamp_trusted, Change, ChangeKind, CodeOracle, Miss, NoCode,
    RACY_NS, UNKNOWN_STAMP,
};
pub use maintenance::{EntrySummary, GcOptions, GcReport, Problem, Stats};
pub use record::{
    Bytes, FileKind, Input, Meta, MtimeWindow, Output, SharedPrefix, StdioChunk, StoredPath,
    Stream, ValueBuffer, Variant, RECORD_FORMAT_VERSION,
};
pub use restore::{restore, AllowedRoots, RestoreReport};
pub use store::{Lookup, Store, StoreConfig};

//! Key composition and recording, shared by `casher run` and `@cached`:
//! what goes into an invocation key, how a traced run becomes a stored
//! variant, and how a stored variant is replayed. Living in one place means
//! the two front ends can never disagree about what a key covers.

mod capture;
mod error;
mod key;
mod observation;
mod replay;
mod shared;

pub use capture::{to_variant, to_variant_sharing, CodeHasher, INLINE_LIMIT};
pub use error::{RecordError, Result};
pub use key::{run_key, KeyBuilder, StdinIdentity, KEY_FORMAT_VERSION};
pub use observation::{observed_meta, value_digest, RunContext, DEFAULT_ENV, LOCALE_GROUP};
pub use replay::replay_stdio;
pub use shared::SharedInputs;

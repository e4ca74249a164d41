//! Inputs shared by many records, stored once (see [`Variant::shared`]).
//!
//! A set is an object like any other (named by the BLAKE3 hash of its
//! bytes, verified on every read), so a record's MAC, which covers the
//! set's name, vouches for the set too. Its bytes are a magic, a format
//! version and the postcard of the inputs.
//!
//! A process keeps the few sets it wrote or read last, decoded: a fork
//! server's calls record the same set again and again, and a session's
//! lookups read it again and again.

use std::sync::{Arc, Mutex};

use crate::backend::Backend;
use crate::error::{Result, StoreError};
use crate::id::ObjectId;
use crate::record::{inputs_identity, Input, SharedPrefix, Variant};

const MAGIC: &[u8; 8] = b"CASHSET\0";
const SET_FORMAT_VERSION: u32 = 1;

/// Sets kept decoded per process.
const KEPT: usize = 8;

/// A stored set: its object, its inputs, and their identity (the part of
/// `Variant::inputs_id` they contribute).
struct Set {
    object: ObjectId,
    inputs: Arc<Vec<Input>>,
    identity: ObjectId,
}

/// The sets this process used last, newest last.
#[derive(Default)]
pub(crate) struct SharedSets {
    recent: Mutex<Vec<Arc<Set>>>,
}

impl SharedSets {
    fn remember(&self, set: Arc<Set>) {
        if let Ok(mut recent) = self.recent.lock() {
            recent.retain(|s| s.object != set.object);
            if recent.len() >= KEPT {
                recent.remove(0);
            }
            recent.push(set);
        }
    }

    fn find(&self, matches: impl Fn(&Set) -> bool) -> Option<Arc<Set>> {
        let recent = self.recent.lock().ok()?;
        recent.iter().rev().find(|s| matches(s)).cloned()
    }

    /// Stores a variant's shared inputs (unless this process stored or
    /// read the same ones and their object is still there): what its record
    /// says of them (`None`: there are none), and their identity, for
    /// `Variant::inputs_id_from`.
    pub(crate) fn store(
        &self,
        backend: &dyn Backend,
        inputs: &[Input],
    ) -> Result<(Option<SharedPrefix>, ObjectId)> {
        if inputs.is_empty() {
            return Ok((None, inputs_identity(&[])));
        }
        let known = self
            .find(|s| s.inputs.as_slice() == inputs)
            .filter(|s| backend.has_object(&s.object));
        let set = match known {
            Some(set) => set,
            None => {
                let mut bytes = Vec::with_capacity(64 * inputs.len());
                bytes.extend_from_slice(MAGIC);
                bytes.extend_from_slice(&SET_FORMAT_VERSION.to_le_bytes());
                let bytes =
                    postcard::to_extend(inputs, bytes).map_err(|e| StoreError::BadRecord {
                        path: "<shared inputs>".into(),
                        reason: e.to_string(),
                    })?;
                let (object, _) = backend.put_object(&mut bytes.as_slice())?;
                let set = Arc::new(Set {
                    object,
                    identity: inputs_identity(inputs),
                    inputs: Arc::new(inputs.to_vec()),
                });
                self.remember(Arc::clone(&set));
                set
            }
        };
        let prefix = SharedPrefix {
            len: u32::try_from(set.inputs.len()).unwrap_or(u32::MAX),
            object: Some(set.object),
        };
        Ok((Some(prefix), set.identity))
    }

    /// Puts a decoded record's shared inputs in front of its own. `Err`
    /// says why the record cannot be used (its set is gone or corrupt:
    /// a miss).
    pub(crate) fn resolve(
        &self,
        backend: &dyn Backend,
        variant: &mut Variant,
    ) -> std::result::Result<(), String> {
        let Some(SharedPrefix { len, object }) = variant.shared else {
            return Ok(());
        };
        let Some(object) = object else {
            return Err("its shared inputs are not named".to_owned());
        };
        let set = match self.find(|s| s.object == object) {
            Some(set) => set,
            None => {
                let bytes = backend
                    .read_object(&object)
                    .map_err(|e| format!("its shared inputs cannot be read: {e}"))?;
                let inputs = decode(&bytes)?;
                let set = Arc::new(Set {
                    object,
                    identity: inputs_identity(&inputs),
                    inputs: Arc::new(inputs),
                });
                self.remember(Arc::clone(&set));
                set
            }
        };
        if set.inputs.len() != len as usize {
            return Err(format!(
                "its shared inputs hold {} inputs, it says {len}",
                set.inputs.len()
            ));
        }
        let own = std::mem::take(&mut variant.inputs);
        variant.inputs = Vec::with_capacity(set.inputs.len() + own.len());
        variant.inputs.extend_from_slice(&set.inputs);
        variant.inputs.extend(own);
        Ok(())
    }
}

fn decode(bytes: &[u8]) -> std::result::Result<Vec<Input>, String> {
    let header = MAGIC.len() + 4;
    if bytes.len() < header || &bytes[..MAGIC.len()] != MAGIC {
        return Err("its shared inputs are not a set of inputs".to_owned());
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != SET_FORMAT_VERSION {
        return Err(format!(
            "its shared inputs are format {version}, this casher reads {SET_FORMAT_VERSION}"
        ));
    }
    postcard::from_bytes(&bytes[header..])
        .map_err(|e| format!("its shared inputs are undecodable: {e}"))
}

//! Checkpoints of engine state: a versioned, checksummed binary format and a
//! directory store with atomic replacement.
//!
//! A checkpoint is one partition's [`Engine`] together with the input offset
//! it covers: every event *before* `next_offset` is inside the state, none at
//! or after it. Restoring one and resuming consumption at `next_offset` (or
//! skipping anything below it) therefore counts no event twice into a
//! baseline and misses none.
//!
//! # Layout of a checkpoint file
//! ```text
//! magic   8 bytes  "TRLNCKPT"
//! version u16 LE   FORMAT_VERSION
//! length  u64 LE   payload bytes
//! sha256  32 bytes of the payload
//! payload MessagePack(Payload)  (self-describing: tagged enums and
//!                                 flattened fields round-trip)
//! ```
#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tripline_engine::Engine;

const MAGIC: &[u8; 8] = b"TRLNCKPT";
/// Bumped on any incompatible change of [`Payload`] or the engine state.
/// Version 2: MessagePack payload (version 1 used bincode).
pub const FORMAT_VERSION: u16 = 2;
const HEADER_LEN: usize = 8 + 2 + 8 + 32;

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: not a tripline checkpoint (bad magic bytes)")]
    BadMagic { path: String },
    #[error("{path}: checkpoint format version {found} is not supported (this build reads version {supported})")]
    Version {
        path: String,
        found: u16,
        supported: u16,
    },
    #[error("{path}: checkpoint is truncated ({len} bytes)")]
    Truncated { path: String, len: usize },
    #[error("{path}: checkpoint checksum mismatch (corrupt)")]
    Checksum { path: String },
    #[error("{path}: checkpoint payload does not decode: {reason}")]
    Decode { path: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a checkpoint holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// Input topic and partition whose events built `engine`.
    pub topic: String,
    pub partition: i32,
    /// First offset *not* inside `engine`.
    pub next_offset: i64,
    /// tripline version that wrote it (information only).
    pub written_by: String,
    pub engine: Engine,
}

/// Encodes a payload in the checkpoint format.
pub fn encode(p: &Payload) -> Result<Vec<u8>, CheckpointError> {
    encode_parts(&p.topic, p.partition, p.next_offset, &p.engine)
}

/// [`Payload`] by reference: the same bytes, without cloning the engine.
#[derive(Serialize)]
struct PayloadRef<'a> {
    topic: &'a str,
    partition: i32,
    next_offset: i64,
    written_by: &'a str,
    engine: &'a Engine,
}

/// Encodes one partition's engine and the first offset it does not cover.
pub fn encode_parts(
    topic: &str,
    partition: i32,
    next_offset: i64,
    engine: &Engine,
) -> Result<Vec<u8>, CheckpointError> {
    let r = PayloadRef {
        topic,
        partition,
        next_offset,
        written_by: env!("CARGO_PKG_VERSION"),
        engine,
    };
    let body = rmp_serde::to_vec(&r).map_err(|e| CheckpointError::Decode {
        path: topic.to_owned(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&body));
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes and verifies a checkpoint; `path` names it in errors.
pub fn decode(bytes: &[u8], path: &str) -> Result<Payload, CheckpointError> {
    let path = path.to_owned();
    if bytes.len() < 10 {
        return Err(CheckpointError::Truncated {
            path,
            len: bytes.len(),
        });
    }
    if &bytes[..8] != MAGIC {
        return Err(CheckpointError::BadMagic { path });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return Err(CheckpointError::Version {
            path,
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(CheckpointError::Truncated {
            path,
            len: bytes.len(),
        });
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&bytes[10..18]);
    let len = u64::from_le_bytes(len8) as usize;
    let body = &bytes[HEADER_LEN..];
    if body.len() != len {
        return Err(CheckpointError::Truncated {
            path,
            len: bytes.len(),
        });
    }
    if Sha256::digest(body).as_slice() != &bytes[18..50] {
        return Err(CheckpointError::Checksum { path });
    }
    rmp_serde::from_slice(body).map_err(|e| CheckpointError::Decode {
        path,
        reason: e.to_string(),
    })
}

/// Checkpoints as files in one directory, one per input partition, replaced
/// atomically (write to a temporary file, fsync, rename, fsync the directory).
#[derive(Clone, Debug)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// Creates the directory if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| CheckpointError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(DirStore { dir })
    }

    /// The file a partition's checkpoint lives in.
    pub fn path(&self, topic: &str, partition: i32) -> PathBuf {
        let safe: String = topic
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{safe}-{partition}.ckpt"))
    }

    /// Writes a checkpoint atomically: readers see the old or the new one,
    /// never a torn file, even after `kill -9` or power loss.
    pub fn save(&self, p: &Payload) -> Result<(), CheckpointError> {
        self.save_bytes(&p.topic, p.partition, &encode(p)?)
    }

    /// Atomically replaces a partition's checkpoint with already-encoded bytes.
    pub fn save_bytes(
        &self,
        topic: &str,
        partition: i32,
        bytes: &[u8],
    ) -> Result<(), CheckpointError> {
        let path = self.path(topic, partition);
        let io = |source| CheckpointError::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("ckpt.tmp");
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io)?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The partition's checkpoint, `None` if there is none.
    pub fn load(&self, topic: &str, partition: i32) -> Result<Option<Payload>, CheckpointError> {
        let path = self.path(topic, partition);
        match self.load_bytes(topic, partition)? {
            Some(bytes) => decode(&bytes, &path.display().to_string()).map(Some),
            None => Ok(None),
        }
    }

    /// The partition's raw checkpoint bytes, `None` if there is none.
    pub fn load_bytes(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<Vec<u8>>, CheckpointError> {
        let path = self.path(topic, partition);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CheckpointError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tripline_engine::{Action, EngineConfig, Event, Outputs};

    fn engine() -> Engine {
        let mut e = Engine::new(EngineConfig::default(), None);
        // Feedback state has tagged enums and flattened fields: it must
        // survive the checkpoint format too.
        let fb: tripline_engine::Feedback = serde_json::from_value(serde_json::json!({
            "integration_id": "a",
            "action": {"type": "accept_data_type", "resource": "notes", "action": "read"},
            "expires_at": "2027-01-01T00:00:00Z",
            "created_at": "2026-11-29T00:00:00Z",
            "author": "me",
            "reason": "test",
            "alert_id": null
        }))
        .expect("feedback json");
        e.apply_feedback(&fb).expect("feedback applies");
        let mut out = Outputs::default();
        for i in 0..5_000i64 {
            let mut ev = Event::new(
                1_792_972_800_000 + i * 20_000,
                if i % 2 == 0 { "a" } else { "b" },
                "contacts",
                Action::Read,
            );
            ev.source_ip = Some("198.51.100.4".parse().unwrap());
            ev.key_id = Some("k1");
            e.process(&ev, &mut out);
        }
        e
    }

    fn payload() -> Payload {
        Payload {
            topic: "crm-access-logs".into(),
            partition: 2,
            next_offset: 5_000,
            written_by: env!("CARGO_PKG_VERSION").into(),
            engine: engine(),
        }
    }

    #[test]
    fn round_trips_exactly() {
        let p = payload();
        let bytes = encode(&p).unwrap();
        let back = decode(&bytes, "x").unwrap();
        assert_eq!(back.engine.feedback().trail().count(), 1);
        assert_eq!(back, p);
    }

    #[test]
    fn corruption_and_foreign_versions_are_refused_clearly() {
        let bytes = encode(&payload()).unwrap();
        let mut flipped = bytes.clone();
        let n = flipped.len() - 10;
        flipped[n] ^= 0x40;
        assert!(matches!(
            decode(&flipped, "f"),
            Err(CheckpointError::Checksum { .. })
        ));
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1], "f"),
            Err(CheckpointError::Truncated { .. })
        ));
        assert!(matches!(
            decode(b"hello world, not a checkpoint at all", "f"),
            Err(CheckpointError::BadMagic { .. })
        ));
        let mut v2 = bytes.clone();
        v2[8] = 99;
        let err = decode(&v2, "f").unwrap_err();
        assert!(
            err.to_string().contains("version 99 is not supported"),
            "{err}"
        );
    }

    #[test]
    fn dir_store_replaces_atomically_and_reports_missing_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStore::open(dir.path().join("ckpt")).unwrap();
        assert!(s.load("t", 0).unwrap().is_none());
        let mut p = payload();
        p.topic = "t".into();
        p.partition = 0;
        s.save(&p).unwrap();
        p.next_offset = 9_999;
        s.save(&p).unwrap();
        assert_eq!(s.load("t", 0).unwrap().unwrap().next_offset, 9_999);
        assert!(!s.path("t", 0).with_extension("ckpt.tmp").exists());
    }
}

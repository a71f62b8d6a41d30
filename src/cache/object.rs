//! One cached object as stored in foyer: serialized pingora cache meta plus the whole body.
//!
//! Disk format (after foyer's own entry header, which carries a checksum of these bytes):
//! `b"EDG1"`, u32 internal-meta length, internal meta, u32 header length, header,
//! u64 body length, body. Lengths are checked on decode, so a damaged entry is a decode
//! error (a miss), never a panic or a short body.

use bytes::Bytes;
use foyer::Code;
use pingora_cache::CacheMeta;
use pingora_http::ResponseHeader;
use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

const MAGIC: &[u8; 4] = b"EDG1";
/// A meta blob larger than this is corrupt (headers are a few KiB at most).
const MAX_META: usize = 1 << 20;

/// A complete cached response: pingora's serialized [`pingora_cache::CacheMeta`] and the body.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub meta_internal: Bytes,
    pub meta_header: Bytes,
    pub body: Bytes,
    /// The meta decoded once, in memory only: rebuilding a `CacheMeta` from it costs ~0.3 µs
    /// where decoding the (zstd-compressed) header costs ~2.5 µs on every hit.
    decoded: Arc<OnceLock<Arc<DecodedMeta>>>,
}

/// The parts of a decoded `CacheMeta` an edge uses.
#[derive(Debug)]
pub struct DecodedMeta {
    pub fresh_until: SystemTime,
    created: SystemTime,
    /// What `Age`, freshness and purge checks count from: when the object was stored or last
    /// revalidated.
    pub epoch: SystemTime,
    stale_while_revalidate: u32,
    stale_if_error: u32,
    /// The response's age when stored (its stored `Age`, RFC 9111 §4.2.3).
    pub initial_age: std::time::Duration,
    pub header: ResponseHeader,
    /// The variance this object was stored under (its `Vary` request headers hashed).
    pub variance: Option<[u8; 16]>,
    /// One rendering of the headers that a delivery path derives once per object and keeps
    /// with it; opaque to the cache.
    pub memo: OnceLock<Bytes>,
    /// The same for an answer whose body a delivery path rewrites (a playlist carrying a
    /// viewer's token); opaque to the cache.
    pub rewrite_memo: OnceLock<Bytes>,
    /// What a delivery path made of the body once for every answer (a playlist's rewrite
    /// plan, [`crate::proxy::playlist::rewrite_hit`]); opaque to the cache.
    pub body_memo: OnceLock<std::sync::Arc<dyn std::any::Any + Send + Sync>>,
}

impl StoredObject {
    pub fn new(meta_internal: Bytes, meta_header: Bytes, body: Bytes) -> Self {
        StoredObject {
            meta_internal,
            meta_header,
            body,
            decoded: Arc::new(OnceLock::new()),
        }
    }

    /// The object's cache meta. `updated` is carried as the meta's epoch (what `Age`,
    /// freshness and purge checks read) rather than as `updated` itself.
    pub fn meta(&self) -> pingora_error::Result<CacheMeta> {
        if let Some(d) = self.decoded.get() {
            let mut meta = CacheMeta::new(
                d.fresh_until,
                d.created,
                d.stale_while_revalidate,
                d.stale_if_error,
                d.header.clone(),
            );
            meta.set_epoch_override(d.epoch);
            if let Some(v) = d.variance {
                meta.set_variance_key(v);
            }
            return Ok(meta);
        }
        let meta = CacheMeta::deserialize(&self.meta_internal, &self.meta_header)?;
        let _ = self.decoded.set(Arc::new(DecodedMeta {
            fresh_until: meta.fresh_until(),
            created: meta.created(),
            epoch: meta.epoch(),
            stale_while_revalidate: meta.stale_while_revalidate_sec(),
            stale_if_error: meta.stale_if_error_sec(),
            initial_age: super::freshness::age_value(meta.headers()),
            header: meta.response_header().clone(),
            variance: meta.variance(),
            memo: OnceLock::new(),
            rewrite_memo: OnceLock::new(),
            body_memo: OnceLock::new(),
        }));
        Ok(meta)
    }

    /// The decoded meta, once [`Self::meta`] has run (when the fill committed, or at the
    /// pipeline's first lookup after a disk read).
    pub fn decoded(&self) -> Option<Arc<DecodedMeta>> {
        self.decoded.get().cloned()
    }

    /// Bytes this object weighs in the memory tier (and roughly on disk).
    pub fn weight(&self) -> usize {
        MAGIC.len()
            + 4
            + 4
            + 8
            + self.meta_internal.len()
            + self.meta_header.len()
            + self.body.len()
    }
}

fn io_err(msg: &'static str) -> foyer::Error {
    foyer::Error::io_error(std::io::Error::new(std::io::ErrorKind::InvalidData, msg))
}

impl Code for StoredObject {
    fn encode(&self, w: &mut impl Write) -> foyer::Result<()> {
        let mut head = Vec::with_capacity(16 + self.meta_internal.len() + self.meta_header.len());
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&(self.meta_internal.len() as u32).to_le_bytes());
        head.extend_from_slice(&self.meta_internal);
        head.extend_from_slice(&(self.meta_header.len() as u32).to_le_bytes());
        head.extend_from_slice(&self.meta_header);
        head.extend_from_slice(&(self.body.len() as u64).to_le_bytes());
        w.write_all(&head).map_err(foyer::Error::io_error)?;
        w.write_all(&self.body).map_err(foyer::Error::io_error)
    }

    fn decode(r: &mut impl Read) -> foyer::Result<Self> {
        let mut magic = [0u8; 4];
        r.read_exact(&mut magic).map_err(foyer::Error::io_error)?;
        if &magic != MAGIC {
            return Err(io_err("bad cache object magic"));
        }
        let len = read_u32(r)? as usize;
        let meta_internal = read_blob(r, len, MAX_META)?;
        let len = read_u32(r)? as usize;
        let meta_header = read_blob(r, len, MAX_META)?;
        let mut len = [0u8; 8];
        r.read_exact(&mut len).map_err(foyer::Error::io_error)?;
        let body_len =
            usize::try_from(u64::from_le_bytes(len)).map_err(|_| io_err("body too large"))?;
        let body = read_blob(r, body_len, 1 << 34)?;
        Ok(StoredObject::new(meta_internal, meta_header, body))
    }

    fn estimated_size(&self) -> usize {
        self.weight()
    }
}

fn read_u32(r: &mut impl Read) -> foyer::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).map_err(foyer::Error::io_error)?;
    Ok(u32::from_le_bytes(b))
}

fn read_blob(r: &mut impl Read, len: usize, max: usize) -> foyer::Result<Bytes> {
    if len > max {
        return Err(io_err("cache object length out of range"));
    }
    // Read through `take` so a lying length cannot make us allocate more than the input has.
    let mut buf = Vec::new();
    r.take(len as u64)
        .read_to_end(&mut buf)
        .map_err(foyer::Error::io_error)?;
    if buf.len() != len {
        return Err(io_err("cache object truncated"));
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredObject {
        StoredObject::new(
            Bytes::from_static(b"internal"),
            Bytes::from_static(b"HTTP/1.1 200 OK"),
            Bytes::from(vec![7u8; 10_000]),
        )
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        sample().encode(&mut buf).unwrap();
        assert_eq!(buf.len(), sample().estimated_size());
        let back = StoredObject::decode(&mut buf.as_slice()).unwrap();
        assert_eq!(back.meta_internal, sample().meta_internal);
        assert_eq!(back.meta_header, sample().meta_header);
        assert_eq!(back.body, sample().body);
    }

    #[test]
    fn decoded_meta_rebuilds_the_same_meta() {
        let mut h = ResponseHeader::build(200, None).unwrap();
        h.insert_header("etag", "\"a\"").unwrap();
        let created = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let mut meta = CacheMeta::new(
            created + std::time::Duration::from_secs(60),
            created,
            5,
            300,
            h,
        );
        meta.update_freshness(created + std::time::Duration::from_secs(120), 6, 301);
        let (i, hd) = meta.serialize().unwrap();
        let obj = StoredObject::new(i.into(), hd.into(), Bytes::from_static(b"x"));
        let first = obj.meta().unwrap();
        let again = obj.clone().meta().unwrap();
        for m in [&first, &again] {
            assert_eq!(m.fresh_until(), meta.fresh_until());
            assert_eq!(m.created(), created);
            assert_eq!(
                m.epoch(),
                meta.updated(),
                "the revalidation time is the epoch"
            );
            assert_eq!(
                (m.stale_while_revalidate_sec(), m.stale_if_error_sec()),
                (6, 301)
            );
            assert_eq!(m.headers().get("etag").unwrap(), "\"a\"");
        }
    }

    #[test]
    fn damaged_bytes_are_errors_not_panics() {
        let mut buf = Vec::new();
        sample().encode(&mut buf).unwrap();
        // Truncated anywhere.
        for cut in [0, 3, 5, 12, 30, buf.len() - 1] {
            assert!(
                StoredObject::decode(&mut &buf[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // Bad magic.
        let mut bad = buf.clone();
        bad[0] = b'X';
        assert!(StoredObject::decode(&mut bad.as_slice()).is_err());
        // Lying lengths.
        let mut bad = buf.clone();
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(StoredObject::decode(&mut bad.as_slice()).is_err());
    }
}

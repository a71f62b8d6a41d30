//! One cached object as stored in foyer: serialized pingora cache meta plus the whole body.
//!
//! Disk format (after foyer's own entry header, which carries a checksum of these bytes):
//! `b"EDG1"`, u32 internal-meta length, internal meta, u32 header length, header,
//! u64 body length, body. Lengths are checked on decode, so a damaged entry is a decode
//! error (a miss), never a panic or a short body.

use bytes::Bytes;
use foyer::Code;
use std::io::{Read, Write};

const MAGIC: &[u8; 4] = b"EDG1";
/// A meta blob larger than this is corrupt (headers are a few KiB at most).
const MAX_META: usize = 1 << 20;

/// A complete cached response: pingora's serialized [`pingora_cache::CacheMeta`] and the body.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub meta_internal: Bytes,
    pub meta_header: Bytes,
    pub body: Bytes,
}

impl StoredObject {
    /// Bytes this object weighs in the memory tier (and roughly on disk).
    pub fn weight(&self) -> usize {
        MAGIC.len() + 4 + 4 + 8 + self.meta_internal.len() + self.meta_header.len() + self.body.len()
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
        let body_len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| io_err("body too large"))?;
        let body = read_blob(r, body_len, 1 << 34)?;
        Ok(StoredObject { meta_internal, meta_header, body })
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
    r.take(len as u64).read_to_end(&mut buf).map_err(foyer::Error::io_error)?;
    if buf.len() != len {
        return Err(io_err("cache object truncated"));
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredObject {
        StoredObject {
            meta_internal: Bytes::from_static(b"internal"),
            meta_header: Bytes::from_static(b"HTTP/1.1 200 OK"),
            body: Bytes::from(vec![7u8; 10_000]),
        }
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
    fn damaged_bytes_are_errors_not_panics() {
        let mut buf = Vec::new();
        sample().encode(&mut buf).unwrap();
        // Truncated anywhere.
        for cut in [0, 3, 5, 12, 30, buf.len() - 1] {
            assert!(StoredObject::decode(&mut &buf[..cut]).is_err(), "cut at {cut}");
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

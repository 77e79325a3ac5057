//! The bundle format: a loader shared object with plugin builds appended after its end.
//!
//! ```text
//! [the loader's ELF file][build 0]...[build n-1][index: n entries][trailer]
//! index entry (24 bytes, little-endian): api u32, reserved u32 (0), offset u64, len u64
//! trailer (16 bytes):                    n u32, format version u32, magic b"QPLUGANY"
//! ```
//!
//! The dynamic loader maps only what the ELF headers describe, so bytes after the
//! loader's own end change nothing about how it loads. This module owns the layout: the
//! bundler writes it, the loader reads it, and both check it the same way.

use std::fmt;

/// Last eight bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"QPLUGANY";
/// Layout version written into the trailer.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the trailer at the end of the file.
pub const TRAILER_LEN: u64 = 16;
/// Size of one index entry.
pub const ENTRY_LEN: u64 = 24;
/// Highest plugin API a build may declare.
pub const NEWEST_API: u32 = 7;

/// One plugin build inside a bundle: bytes `offset..offset + len` of the file, built for
/// plugin API `api`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The plugin API the build was compiled for (its `plugin-api-vN` feature).
    pub api: u32,
    /// Where the build starts in the bundle file.
    pub offset: u64,
    /// How many bytes it has.
    pub len: u64,
}

/// Why a file is not a readable bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// The file does not end with [`MAGIC`]: the loader was not bundled with any build.
    NoTrailer,
    /// The trailer names a layout version this loader does not know.
    UnknownVersion(u32),
    /// The index or a build lies outside the file, or overlaps the index.
    OutOfBounds,
    /// A build declares an API above [`NEWEST_API`], or two builds declare the same API.
    BadApi(u32),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::NoTrailer => {
                write!(
                    f,
                    "no plugin builds are bundled (make one with qemu-plugin-bundle)"
                )
            }
            FormatError::UnknownVersion(v) => write!(f, "unknown bundle format version {v}"),
            FormatError::OutOfBounds => write!(f, "the bundle's index points outside the file"),
            FormatError::BadApi(a) => write!(
                f,
                "the bundle's index declares plugin API {a} twice or out of range"
            ),
        }
    }
}

/// Encodes the index and trailer for `entries`, to be written after the builds.
pub fn encode_index(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN as usize + TRAILER_LEN as usize);
    for e in entries {
        out.extend_from_slice(&e.api.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.len.to_le_bytes());
    }
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&MAGIC);
    out
}

/// How many index bytes precede `trailer` (the file's last [`TRAILER_LEN`] bytes).
pub fn index_len(trailer: &[u8; TRAILER_LEN as usize]) -> Result<u64, FormatError> {
    if trailer[8..] != MAGIC {
        return Err(FormatError::NoTrailer);
    }
    let version = u32::from_le_bytes(trailer[4..8].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(FormatError::UnknownVersion(version));
    }
    let n = u32::from_le_bytes(trailer[0..4].try_into().expect("4 bytes"));
    Ok(u64::from(n) * ENTRY_LEN)
}

/// Decodes the index (the `index_len` bytes before the trailer) of a file of `file_len`
/// bytes, checking that every build lies before the index and no API appears twice.
pub fn decode_index(index: &[u8], file_len: u64) -> Result<Vec<Entry>, FormatError> {
    let index_start = file_len
        .checked_sub(TRAILER_LEN + index.len() as u64)
        .ok_or(FormatError::OutOfBounds)?;
    let mut entries: Vec<Entry> = Vec::new();
    for raw in index.chunks_exact(ENTRY_LEN as usize) {
        let u32_at = |i: usize| u32::from_le_bytes(raw[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(raw[i..i + 8].try_into().expect("8 bytes"));
        let e = Entry {
            api: u32_at(0),
            offset: u64_at(8),
            len: u64_at(16),
        };
        if e.api > NEWEST_API || entries.iter().any(|o| o.api == e.api) {
            return Err(FormatError::BadApi(e.api));
        }
        match e.offset.checked_add(e.len) {
            Some(end) if end <= index_start && e.len > 0 => {}
            _ => return Err(FormatError::OutOfBounds),
        }
        entries.push(e);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(entries: &[Entry], body_len: u64) -> (Vec<u8>, u64) {
        let tail = encode_index(entries);
        let len = body_len + tail.len() as u64;
        (tail, len)
    }

    fn trailer_of(tail: &[u8]) -> [u8; 16] {
        tail[tail.len() - 16..].try_into().unwrap()
    }

    #[test]
    fn an_index_round_trips() {
        let entries = [
            Entry {
                api: 1,
                offset: 100,
                len: 50,
            },
            Entry {
                api: 7,
                offset: 150,
                len: 10,
            },
        ];
        let (tail, len) = file_with(&entries, 160);
        let n = index_len(&trailer_of(&tail)).unwrap();
        assert_eq!(n, 48);
        let index = &tail[..n as usize];
        assert_eq!(decode_index(index, len).unwrap(), entries);
    }

    #[test]
    fn a_file_without_the_magic_is_not_a_bundle() {
        let mut t = [0u8; 16];
        t[8..].copy_from_slice(b"\x7fELF....");
        assert_eq!(index_len(&t), Err(FormatError::NoTrailer));
    }

    #[test]
    fn an_unknown_format_version_is_refused() {
        let (mut tail, _) = file_with(&[], 10);
        let at = tail.len() - 12;
        tail[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(
            index_len(&trailer_of(&tail)),
            Err(FormatError::UnknownVersion(9))
        );
    }

    #[test]
    fn a_build_that_overlaps_the_index_is_refused() {
        let entries = [Entry {
            api: 5,
            offset: 100,
            len: 61,
        }];
        let (tail, len) = file_with(&entries, 160);
        let index = &tail[..24];
        assert_eq!(decode_index(index, len), Err(FormatError::OutOfBounds));
    }

    #[test]
    fn offsets_that_overflow_are_refused() {
        let entries = [Entry {
            api: 5,
            offset: u64::MAX,
            len: 2,
        }];
        let (tail, len) = file_with(&entries, 160);
        assert_eq!(
            decode_index(&tail[..24], len),
            Err(FormatError::OutOfBounds)
        );
    }

    #[test]
    fn an_index_longer_than_the_file_is_refused() {
        assert_eq!(decode_index(&[0u8; 48], 40), Err(FormatError::OutOfBounds));
    }

    #[test]
    fn apis_twice_or_out_of_range_are_refused() {
        let twice = [
            Entry {
                api: 4,
                offset: 0,
                len: 1,
            },
            Entry {
                api: 4,
                offset: 1,
                len: 1,
            },
        ];
        let (tail, len) = file_with(&twice, 10);
        assert_eq!(decode_index(&tail[..48], len), Err(FormatError::BadApi(4)));
        let high = [Entry {
            api: 8,
            offset: 0,
            len: 1,
        }];
        let (tail, len) = file_with(&high, 10);
        assert_eq!(decode_index(&tail[..24], len), Err(FormatError::BadApi(8)));
    }
}

//! Reads what a plugin build declares about itself from its ELF file: the value of its
//! exported `qemu_plugin_version`, and whether it exports `qemu_plugin_install`.
//!
//! The bundler takes a build's API from here rather than from its user, because a build
//! filed under the wrong API would receive callbacks of the wrong shape. Only 64-bit
//! little-endian ELF files are read (the hosts QEMU plugins run on here); anything else
//! is an error, never a guess.

use std::fmt;

/// What a build exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PluginExports {
    /// The value of `qemu_plugin_version`.
    pub version: i32,
}

/// Why a file is not a plugin build this bundler can take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not a 64-bit little-endian ELF file.
    NotElf64,
    /// A header, section or symbol lies outside the file.
    Truncated,
    /// The file has no dynamic symbol table.
    NoDynsym,
    /// The named symbol is not defined in the dynamic symbol table.
    Missing(&'static str),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf64 => write!(f, "not a 64-bit little-endian ELF shared object"),
            ElfError::Truncated => write!(f, "truncated or malformed ELF file"),
            ElfError::NoDynsym => write!(f, "no dynamic symbol table: not a QEMU plugin"),
            ElfError::Missing(s) => write!(f, "does not export `{s}`: not a QEMU plugin"),
        }
    }
}

const SHT_DYNSYM: u32 = 11;
const SHT_NOBITS: u32 = 8;
const SHN_UNDEF: u16 = 0;

fn bytes<const N: usize>(f: &[u8], at: u64) -> Result<[u8; N], ElfError> {
    let at = usize::try_from(at).map_err(|_| ElfError::Truncated)?;
    let end = at.checked_add(N).ok_or(ElfError::Truncated)?;
    f.get(at..end)
        .map(|s| s.try_into().expect("N bytes"))
        .ok_or(ElfError::Truncated)
}
fn u16_at(f: &[u8], at: u64) -> Result<u16, ElfError> {
    bytes::<2>(f, at).map(u16::from_le_bytes)
}
fn u32_at(f: &[u8], at: u64) -> Result<u32, ElfError> {
    bytes::<4>(f, at).map(u32::from_le_bytes)
}
fn u64_at(f: &[u8], at: u64) -> Result<u64, ElfError> {
    bytes::<8>(f, at).map(u64::from_le_bytes)
}

/// One section header's fields that matter here.
struct Section {
    kind: u32,
    addr: u64,
    offset: u64,
    size: u64,
    link: u32,
    entsize: u64,
}

fn section(f: &[u8], index: u64) -> Result<Section, ElfError> {
    let shoff = u64_at(f, 0x28)?;
    let shentsize = u64::from(u16_at(f, 0x3a)?);
    let shnum = u64::from(u16_at(f, 0x3c)?);
    if index >= shnum || shentsize < 64 {
        return Err(ElfError::Truncated);
    }
    let h = shoff
        .checked_add(index * shentsize)
        .ok_or(ElfError::Truncated)?;
    Ok(Section {
        kind: u32_at(f, h + 4)?,
        addr: u64_at(f, h + 16)?,
        offset: u64_at(f, h + 24)?,
        size: u64_at(f, h + 32)?,
        link: u32_at(f, h + 40)?,
        entsize: u64_at(f, h + 56)?,
    })
}

fn name_at<'a>(f: &'a [u8], strtab: &Section, at: u32) -> Result<&'a [u8], ElfError> {
    let start = strtab
        .offset
        .checked_add(u64::from(at))
        .ok_or(ElfError::Truncated)?;
    let start = usize::try_from(start).map_err(|_| ElfError::Truncated)?;
    let rest = f.get(start..).ok_or(ElfError::Truncated)?;
    let len = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(ElfError::Truncated)?;
    Ok(&rest[..len])
}

/// Reads a plugin build's exports from its whole file.
pub fn plugin_exports(f: &[u8]) -> Result<PluginExports, ElfError> {
    if f.len() < 64 || f[..4] != *b"\x7fELF" || f[4] != 2 || f[5] != 1 {
        return Err(ElfError::NotElf64);
    }
    let shnum = u64::from(u16_at(f, 0x3c)?);
    let dynsym = (0..shnum)
        .map(|i| section(f, i))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find(|s| s.kind == SHT_DYNSYM)
        .ok_or(ElfError::NoDynsym)?;
    let strtab = section(f, u64::from(dynsym.link))?;
    if dynsym.entsize < 24 {
        return Err(ElfError::Truncated);
    }
    let mut version = None;
    let mut install = false;
    for i in 0..dynsym.size / dynsym.entsize {
        let s = dynsym.offset + i * dynsym.entsize;
        let shndx = u16_at(f, s + 6)?;
        if shndx == SHN_UNDEF {
            continue;
        }
        match name_at(f, &strtab, u32_at(f, s)?)? {
            b"qemu_plugin_install" => install = true,
            b"qemu_plugin_version" => {
                let value = u64_at(f, s + 8)?;
                let sec = section(f, u64::from(shndx))?;
                version = Some(if sec.kind == SHT_NOBITS {
                    0
                } else {
                    let off = value
                        .checked_sub(sec.addr)
                        .and_then(|d| sec.offset.checked_add(d))
                        .ok_or(ElfError::Truncated)?;
                    bytes::<4>(f, off).map(i32::from_le_bytes)?
                });
            }
            _ => {}
        }
    }
    if !install {
        return Err(ElfError::Missing("qemu_plugin_install"));
    }
    let version = version.ok_or(ElfError::Missing("qemu_plugin_version"))?;
    Ok(PluginExports { version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_elf64_is_refused() {
        assert_eq!(plugin_exports(b"#!/bin/sh\n"), Err(ElfError::NotElf64));
        let mut elf32 = vec![0u8; 64];
        elf32[..4].copy_from_slice(b"\x7fELF");
        elf32[4] = 1;
        elf32[5] = 1;
        assert_eq!(plugin_exports(&elf32), Err(ElfError::NotElf64));
    }

    #[test]
    fn a_truncated_header_is_refused() {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        // Three section headers at offset 1000, which the file does not reach.
        f[0x28..0x30].copy_from_slice(&1000u64.to_le_bytes());
        f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        f[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        assert_eq!(plugin_exports(&f), Err(ElfError::Truncated));
    }

    #[test]
    fn a_shared_object_without_the_plugin_symbols_is_refused() {
        // This test executable is ELF64 with a dynamic symbol table but is not a plugin.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        match plugin_exports(&me) {
            Err(ElfError::Missing(_)) | Err(ElfError::NoDynsym) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

//! Plugin arguments: the raw `key=value` strings QEMU passes, parsed into [`Value`]s,
//! with typed accessors whose errors name the argument and what was expected.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::Failure;
use crate::error::{Error, Result};

/// A parsed argument value, as the 10.1.0-v2 crate parsed it: a boolean if QEMU's
/// boolean parser accepts it, else an integer if it parses as one, else a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `on`, `off`, `yes`, `no`, `true`, `false`, `y`, `n` (QEMU's spellings).
    Bool(bool),
    /// A signed decimal integer.
    Integer(i64),
    /// Anything else, as given.
    String(String),
}

impl Value {
    fn parse(key: &str, raw: &str) -> Self {
        if let Ok(b) = crate::api::misc::qemu_plugin_bool_parse(key, raw) {
            Value::Bool(b)
        } else if let Ok(i) = raw.parse::<i64>() {
            Value::Integer(i)
        } else {
            Value::String(raw.to_string())
        }
    }
}

/// The arguments given to the plugin on QEMU's command line (`-plugin lib.so,k=v,k2=v2`).
///
/// `raw` and `parsed` are the fields of the 10.1.0-v2 crate (and its only ones, so its
/// users' struct literals still compile). The accessors ([`Args::bool`], [`Args::u64`],
/// [`Args::string`], ...) add what a plugin needs to refuse bad input at install with one
/// clear line; they read each value's text from `raw`, so an `Args` built by hand should
/// list its arguments there. Needs: any QEMU with plugins.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// Each argument exactly as QEMU passed it.
    pub raw: Vec<String>,
    /// The arguments by key.
    pub parsed: HashMap<String, Value>,
}

impl Args {
    /// Parses `key=value` strings. A missing `=` or an empty key is an error naming the
    /// argument. A key may be given more than once (QEMU's own plugins take lists that
    /// way, e.g. `ifilter=mov,ifilter=add`): [`Args::all`] returns every value,
    /// `parsed` and the single-value accessors the last one, and [`Args::expect_only`]
    /// refuses a repeated key unless [`Args::expect_lists`] declared it a list.
    pub fn parse<I, S>(raw: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut args = Args::default();
        for argument in raw {
            let argument = argument.into();
            let Some((key, value)) = argument.split_once('=') else {
                return Err(Error::MissingArgValue { argument });
            };
            if key.is_empty() {
                return Err(Error::MissingArgKey { argument });
            }
            args.parsed
                .insert(key.to_string(), Value::parse(key, value));
            args.raw.push(argument);
        }
        Ok(args)
    }

    /// Fails with [`Failure::UnknownArgument`] if any key is not in `known`, and with
    /// [`Failure::DuplicateArgument`] if a key is given more than once.
    pub fn expect_only(&self, known: &[&str]) -> Result<()> {
        self.expect_lists(known, &[])
    }

    /// As [`Args::expect_only`], where the keys in `lists` may also be given any number of
    /// times (read them with [`Args::all`]); `known` and `lists` together are every key
    /// the plugin takes.
    pub fn expect_lists(&self, known: &[&str], lists: &[&str]) -> Result<()> {
        let keys = || {
            self.raw
                .iter()
                .map(|arg| arg.split_once('=').map_or(arg.as_str(), |(k, _)| k))
        };
        for (i, key) in keys().enumerate() {
            if !known.contains(&key) && !lists.contains(&key) {
                let all: Vec<&str> = known.iter().chain(lists).copied().collect();
                return Err(Error::from(Failure::UnknownArgument {
                    key: key.to_string(),
                    known: if all.is_empty() {
                        "none".into()
                    } else {
                        all.join(", ")
                    },
                }));
            }
            if !lists.contains(&key) && keys().take(i).any(|k| k == key) {
                return Err(Error::from(Failure::DuplicateArgument {
                    key: key.to_string(),
                }));
            }
        }
        Ok(())
    }

    /// Every value given for `key`, in command-line order (empty if absent).
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.raw
            .iter()
            .filter_map(|argument| {
                let (k, v) = argument.split_once('=')?;
                (k == key).then_some(v)
            })
            .collect()
    }

    /// The value's original text, if the key was given (the last `key=...` of `raw`).
    pub fn text(&self, key: &str) -> Option<&str> {
        self.raw.iter().rev().find_map(|argument| {
            let (k, v) = argument.split_once('=')?;
            (k == key).then_some(v)
        })
    }

    /// A boolean argument (QEMU's spellings), or `default` if absent.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match (self.parsed.get(key), self.text(key)) {
            (None, _) => Ok(default),
            (Some(Value::Bool(b)), _) => Ok(*b),
            (Some(_), text) => Err(Error::InvalidBool {
                name: key.to_string(),
                val: text.unwrap_or_default().to_string(),
            }),
        }
    }

    /// An unsigned integer argument in `range`, or `default` if absent.
    pub fn u64(
        &self,
        key: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64> {
        let Some(text) = self.text(key) else {
            return Ok(default);
        };
        let invalid = || {
            Error::from(Failure::InvalidArgument {
                key: key.to_string(),
                value: text.to_string(),
                expected: format!("an integer from {} to {}", range.start(), range.end()),
            })
        };
        let n: u64 = text.trim().parse().map_err(|_| invalid())?;
        if range.contains(&n) {
            Ok(n)
        } else {
            Err(invalid())
        }
    }

    /// A non-empty string argument, or `None` if absent.
    pub fn string(&self, key: &str) -> Result<Option<&str>> {
        match self.text(key) {
            None => Ok(None),
            Some("") => Err(Error::from(Failure::InvalidArgument {
                key: key.to_string(),
                value: String::new(),
                expected: "a non-empty value".into(),
            })),
            Some(s) => Ok(Some(s)),
        }
    }

    /// One of `choices`, or `default` if absent.
    pub fn choice<'c>(&self, key: &str, default: &'c str, choices: &[&'c str]) -> Result<&'c str> {
        let Some(text) = self.text(key) else {
            return Ok(default);
        };
        choices.iter().copied().find(|c| *c == text).ok_or_else(|| {
            Error::from(Failure::InvalidArgument {
                key: key.to_string(),
                value: text.to_string(),
                expected: format!("one of {}", choices.join(", ")),
            })
        })
    }

    /// A path to an existing directory this process can create files in, or `Ok(None)` if
    /// absent. Writability is checked by creating and removing a probe file: permission
    /// bits do not answer it (root ignores them, and `/proc` or a read-only mount refuse
    /// new files whatever the bits say). Each refusal says which of the three checks failed.
    pub fn writable_dir(&self, key: &str) -> Result<Option<PathBuf>> {
        let Some(text) = self.string(key)? else {
            return Ok(None);
        };
        let dir = PathBuf::from(text);
        let invalid = |why: String| {
            Error::from(Failure::InvalidArgument {
                key: key.to_string(),
                value: text.to_string(),
                expected: why,
            })
        };
        match std::fs::metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(invalid(
                    "an existing directory; nothing exists at this path".into(),
                ));
            }
            Err(e) => {
                return Err(invalid(format!(
                    "an existing directory; looking it up failed: {e}"
                )));
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(invalid(
                    "an existing directory; this path is not a directory".into(),
                ));
            }
            Ok(_) => {}
        }
        let probe = dir.join(format!(".qemu-plugin-probe-{}", std::process::id()));
        std::fs::File::create(&probe).map_err(|e| {
            invalid(format!(
                "a writable directory; creating a file in it failed: {e}"
            ))
        })?;
        let _ = std::fs::remove_file(&probe);
        Ok(Some(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_like_the_old_crate() {
        let a = Args::parse(["b=on", "i=-3", "s=hello", "e="]).unwrap();
        assert_eq!(a.parsed["b"], Value::Bool(true));
        assert_eq!(a.parsed["i"], Value::Integer(-3));
        assert_eq!(a.parsed["s"], Value::String("hello".into()));
        assert_eq!(a.parsed["e"], Value::String(String::new()));
        assert_eq!(a.raw, ["b=on", "i=-3", "s=hello", "e="]);
    }

    #[test]
    fn malformed_arguments_are_named() {
        let e = Args::parse(["inline"]).unwrap_err().to_string();
        assert!(e.contains("`inline`") && e.contains("no value"), "{e}");
        let e = Args::parse(["=x"]).unwrap_err().to_string();
        assert!(e.contains("`=x`") && e.contains("no key"), "{e}");
        let e = Args::parse(["a=1", "a=2"])
            .unwrap()
            .expect_only(&["a"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`a`") && e.contains("more than once"), "{e}");
    }

    #[test]
    fn typed_accessors_name_key_and_expectation() {
        let a = Args::parse(["inline=maybe", "n=70000", "track=x", "dir=", "yes=y"]).unwrap();
        let e = a.bool("inline", false).unwrap_err().to_string();
        assert!(
            e.contains("`inline`") && e.contains("maybe") && e.contains("on/off"),
            "{e}"
        );
        assert!(a.bool("yes", false).unwrap());
        assert!(!a.bool("absent", false).unwrap());
        let e = a.u64("n", 0, 1..=65535).unwrap_err().to_string();
        assert!(
            e.contains("`n`") && e.contains("70000") && e.contains("1 to 65535"),
            "{e}"
        );
        let e = a
            .choice("track", "rw", &["r", "w", "rw"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`track`") && e.contains("one of r, w, rw"),
            "{e}"
        );
        let e = a.string("dir").unwrap_err().to_string();
        assert!(e.contains("`dir`") && e.contains("non-empty"), "{e}");
        let e = a.expect_only(&["inline", "n"]).unwrap_err().to_string();
        assert!(
            e.contains("unknown argument `track`") && e.contains("inline, n"),
            "{e}"
        );
    }

    /// What QEMU's command line cannot deliver (it rewrites a bare `key` to `key=on`) and
    /// what it delivers as given: `=` inside a value, an empty key, a repeated key.
    #[test]
    fn parser_refuses_malformed_input_at_the_first_bad_argument() {
        let e = Args::parse(["inline=on", "check", "bogus"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "plugin argument `check` has no value: expected check=VALUE"
        );
        let e = Args::parse(["="]).unwrap_err().to_string();
        assert!(e.contains("`=`") && e.contains("no key"), "{e}");
        let a = Args::parse(["dir=/a", "every=2", "dir=/b"]).unwrap();
        let e = a.expect_only(&["dir", "every"]).unwrap_err().to_string();
        assert_eq!(e, "argument `dir` given more than once");
        // A key declared a list may repeat; the others still may not.
        a.expect_lists(&["every"], &["dir"]).unwrap();
        assert_eq!(a.all("dir"), ["/a", "/b"]);
        assert_eq!(a.text("dir"), Some("/b"));
        assert!(a.all("absent").is_empty());
        let e = Args::parse(["dir=/a", "every=2", "every=3"])
            .unwrap()
            .expect_lists(&["every"], &["dir"])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "argument `every` given more than once");
        let e = a.expect_lists(&[], &["dir"]).unwrap_err().to_string();
        assert!(
            e.contains("unknown argument `every`") && e.contains("dir"),
            "{e}"
        );
        // Only the first `=` separates: the rest belongs to the value, which the typed
        // accessors then refuse.
        let a = Args::parse(["inline==on", "track=r=w"]).unwrap();
        assert_eq!(a.text("inline"), Some("=on"));
        let e = a.bool("inline", false).unwrap_err().to_string();
        assert!(e.contains("`inline`") && e.contains("`=on`"), "{e}");
        let e = a
            .choice("track", "rw", &["r", "w", "rw"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`track`") && e.contains("`r=w`"), "{e}");
        assert!(Args::parse(Vec::<String>::new()).unwrap().raw.is_empty());
    }

    /// `key=` reaches every accessor as an empty value, and each says so in words.
    #[test]
    fn empty_values_are_named_as_empty() {
        let a = Args::parse(["b=", "n=", "c=", "s=", "d="]).unwrap();
        let errors = [
            a.bool("b", false).unwrap_err(),
            a.u64("n", 1, 1..=10).unwrap_err(),
            a.choice("c", "x", &["x", "y"]).unwrap_err(),
            a.string("s").unwrap_err(),
            a.writable_dir("d").unwrap_err(),
        ];
        for (key, e) in ["b", "n", "c", "s", "d"].iter().zip(errors) {
            let e = e.to_string();
            assert!(
                e.contains(&format!("`{key}`")) && e.contains(": an empty value ("),
                "{e}"
            );
            assert!(!e.contains("``"), "{e}");
        }
    }

    #[test]
    fn integers_refuse_wrong_types_and_out_of_range_values() {
        for bad in [
            "abc",
            "1.5",
            "0x10",
            "-1",
            "0",
            "11",
            "99999999999999999999999",
            "on",
        ] {
            let a = Args::parse([format!("n={bad}")]).unwrap();
            let e = a.u64("n", 1, 1..=10).unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "invalid value for argument `n`: `{bad}` (expected an integer from 1 to 10)"
                )
            );
        }
        let a = Args::parse(["n=10", "m=18446744073709551615"]).unwrap();
        assert_eq!(a.u64("n", 1, 1..=10).unwrap(), 10);
        assert_eq!(a.u64("m", 1, 1..=u64::MAX).unwrap(), u64::MAX);
        assert_eq!(a.u64("absent", 7, 1..=10).unwrap(), 7);
    }

    #[test]
    fn unknown_keys_are_refused_even_when_none_are_known() {
        let a = Args::parse(["verbose=on"]).unwrap();
        let e = a.expect_only(&[]).unwrap_err().to_string();
        assert_eq!(e, "unknown argument `verbose` (known arguments: none)");
        assert!(a.expect_only(&["verbose"]).is_ok());
        assert!(Args::default().expect_only(&[]).is_ok());
    }

    #[test]
    fn writable_dir_says_which_check_failed() {
        let tmp = std::env::temp_dir().join(format!("qemu-plugin-args-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let file = tmp.join("regular-file");
        std::fs::write(&file, "x").unwrap();
        let a = Args::parse([format!("dir={}", file.display())]).unwrap();
        let e = a.writable_dir("dir").unwrap_err().to_string();
        assert!(e.contains("`dir`") && e.contains("not a directory"), "{e}");
        // A directory no one can create a file in, root included (the tests may run as
        // root, for whom permission bits are no obstacle): procfs refuses new files.
        let a = Args::parse(["dir=/proc"]).unwrap();
        let e = a.writable_dir("dir").unwrap_err().to_string();
        assert!(
            e.contains("`/proc`") && e.contains("writable directory; creating a file"),
            "{e}"
        );
        // A usable directory is accepted and the probe file is gone afterwards.
        let a = Args::parse([format!("dir={}", tmp.display())]).unwrap();
        assert_eq!(a.writable_dir("dir").unwrap(), Some(tmp.clone()));
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert_eq!(
            left.len(),
            1,
            "only the regular file should remain: {left:?}"
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn writable_dir_checks_existence() {
        let a = Args::parse(["dir=/definitely/not/here"]).unwrap();
        let e = a.writable_dir("dir").unwrap_err().to_string();
        assert!(
            e.contains("`dir`") && e.contains("existing directory"),
            "{e}"
        );
        let tmp = std::env::temp_dir();
        let a = Args::parse([format!("dir={}", tmp.display())]).unwrap();
        assert_eq!(a.writable_dir("dir").unwrap(), Some(tmp));
    }
}

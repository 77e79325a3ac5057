//! Which bundled build to load, and which `qemu_plugin_version` to export for it.
//!
//! QEMU checks the exported version against its own window `[min, cur]` right after the
//! loader's constructors ran, before `qemu_plugin_install`. The loader knows `cur` (from
//! `detect`) but not `min`, and it cannot tell API 6 from API 7. So it never guesses in
//! a way that could pass callbacks of the wrong shape: it exports the API of the build it
//! chose, and QEMU itself accepts or refuses that number. A build is never newer than the
//! QEMU; an older one is tried only when no build matches exactly (QEMU runs older
//! plugins as it always does, or refuses them with its own message).

use crate::detect::Speaks;

/// The loader's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Export `api` and load the bundled build made for it.
    Load {
        /// The build's plugin API (= the exported `qemu_plugin_version`).
        api: u32,
    },
    /// Export `export` (a version the QEMU accepts, where one is known) so that QEMU calls
    /// `qemu_plugin_install`, which then fails with `why`.
    Refuse {
        /// The version to export.
        export: i32,
        /// What to tell the user.
        why: String,
    },
}

impl Choice {
    /// The `qemu_plugin_version` to export.
    pub fn exported_version(&self) -> i32 {
        match self {
            Choice::Load { api } => *api as i32,
            Choice::Refuse { export, .. } => *export,
        }
    }
}

/// What QEMU versions speak `api`, for messages.
pub fn qemu_versions(api: u32) -> &'static str {
    match api {
        0 => "QEMU 4.2 to 7.1",
        1 => "QEMU 7.2 to 8.2",
        2 => "QEMU 9.0",
        3 => "QEMU 9.1",
        4 => "QEMU 9.2 and 10.0",
        5 => "QEMU 10.1 and 10.2",
        6 => "QEMU 11.0",
        7 => "QEMU 11.1",
        _ => "no QEMU known to this loader",
    }
}

/// Chooses among the bundled builds' APIs `available` for a QEMU that `speaks`.
pub fn choose(speaks: Speaks, available: &[u32]) -> Choice {
    let candidates = speaks.candidates();
    let Some(&newest) = candidates.first() else {
        return Choice::Refuse {
            export: -1,
            why: "the process exports no QEMU plugin API: not loaded by QEMU".into(),
        };
    };
    if let Some(&api) = candidates.iter().find(|c| available.contains(c)) {
        return Choice::Load { api };
    }
    let oldest = *candidates.iter().min().expect("not empty");
    if let Some(&api) = available.iter().filter(|&&a| a < oldest).max() {
        return Choice::Load { api };
    }
    let mut have: Vec<u32> = available.to_vec();
    have.sort_unstable();
    let have: Vec<String> = have.iter().map(|a| format!("v{a}")).collect();
    let speaks_text = match speaks {
        Speaks::SixOrSeven => "plugin API 6 or 7 (QEMU 11.0 or 11.1)".to_string(),
        _ => format!("plugin API {newest} ({})", qemu_versions(newest)),
    };
    Choice::Refuse {
        export: newest as i32,
        why: format!(
            "this QEMU speaks {speaks_text}, and the bundle has builds for {} only; add one \
             built with the feature plugin-api-v{newest}",
            if have.is_empty() {
                "no API".to_string()
            } else {
                have.join(", ")
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MATRIX: [u32; 4] = [1, 4, 5, 7];

    #[test]
    fn the_exact_api_is_loaded() {
        assert_eq!(choose(Speaks::Api(1), &MATRIX), Choice::Load { api: 1 });
        assert_eq!(choose(Speaks::Api(4), &MATRIX), Choice::Load { api: 4 });
        assert_eq!(choose(Speaks::Api(5), &MATRIX), Choice::Load { api: 5 });
    }

    #[test]
    fn qemu_11_gets_api_7_and_qemu_decides() {
        // In QEMU 11.0 (API 6) QEMU refuses the exported 7 by itself: nothing of the
        // build runs.
        assert_eq!(choose(Speaks::SixOrSeven, &MATRIX), Choice::Load { api: 7 });
        assert_eq!(choose(Speaks::SixOrSeven, &[5, 6]), Choice::Load { api: 6 });
    }

    #[test]
    fn an_older_build_is_offered_when_none_matches() {
        // QEMU 9.0 (API 2) with builds 1, 4, 5, 7: the API-1 build; QEMU decides.
        assert_eq!(choose(Speaks::Api(2), &MATRIX), Choice::Load { api: 1 });
        assert_eq!(
            choose(Speaks::SixOrSeven, &[1, 4, 5]),
            Choice::Load { api: 5 }
        );
    }

    #[test]
    fn a_newer_build_is_never_loaded() {
        let c = choose(Speaks::Api(1), &[5, 7]);
        assert_eq!(c.exported_version(), 1);
        let Choice::Refuse { why, .. } = c else {
            panic!("refused")
        };
        assert!(why.contains("plugin API 1 (QEMU 7.2 to 8.2)"), "{why}");
        assert!(why.contains("builds for v5, v7 only"), "{why}");
        assert!(why.contains("plugin-api-v1"), "{why}");
    }

    #[test]
    fn an_empty_bundle_and_a_process_without_qemu_are_refused() {
        let Choice::Refuse { why, export } = choose(Speaks::SixOrSeven, &[]) else {
            panic!()
        };
        assert_eq!(export, 7);
        assert!(why.contains("no API"), "{why}");
        let Choice::Refuse { export, .. } = choose(Speaks::NotQemu, &MATRIX) else {
            panic!()
        };
        assert_eq!(export, -1);
    }
}

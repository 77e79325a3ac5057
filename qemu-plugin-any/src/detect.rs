//! Which plugin API the running QEMU speaks, told from the functions it exports.
//!
//! QEMU exports its plugin API from the executable, and every API version added
//! functions (checked with `nm -D` on QEMU 7.2, 10.0, 10.2 and 11.1, and in
//! `qemu-plugin-sys`'s bindings for APIs 0 to 5). The newest marker present is the API.
//! APIs 6 (QEMU 11.0) and 7 (QEMU 11.1) export the same functions: a QEMU with
//! `qemu_plugin_set_pc` speaks one of the two, and only QEMU itself can tell which (see
//! `choose`).

/// A function every plugin-capable QEMU exports (API 0 on).
const ANY_QEMU: &str = "qemu_plugin_register_vcpu_tb_trans_cb";

/// The function each API added, newest first.
const MARKERS: [(u32, &str); 6] = [
    (6, "qemu_plugin_set_pc"),
    (5, "qemu_plugin_translate_vaddr"),
    (4, "qemu_plugin_read_memory_vaddr"),
    (3, "qemu_plugin_register_vcpu_tb_exec_cond_cb"),
    (2, "qemu_plugin_scoreboard_new"),
    (1, "qemu_plugin_bool_parse"),
];

/// What the process's exports say about the running QEMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaks {
    /// No QEMU plugin API in the process: this is not QEMU.
    NotQemu,
    /// Exactly this API version.
    Api(u32),
    /// API 6 or API 7: QEMU 11.0 or 11.1.
    SixOrSeven,
}

impl Speaks {
    /// The API versions this QEMU may speak, the one to prefer first.
    pub fn candidates(self) -> &'static [u32] {
        match self {
            Speaks::NotQemu => &[],
            Speaks::SixOrSeven => &[7, 6],
            Speaks::Api(a) => &[0, 1, 2, 3, 4, 5][a as usize..=a as usize],
        }
    }
}

/// Tells the API from `exports`, which answers whether the process exports a symbol.
pub fn speaks(exports: impl Fn(&str) -> bool) -> Speaks {
    if !exports(ANY_QEMU) {
        return Speaks::NotQemu;
    }
    match MARKERS.iter().find(|(_, sym)| exports(sym)) {
        Some((6, _)) => Speaks::SixOrSeven,
        Some(&(api, _)) => Speaks::Api(api),
        None => Speaks::Api(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The markers each QEMU here exports, as `nm -D` lists them.
    fn qemu_with<'a>(markers: &'a [&'a str]) -> impl Fn(&str) -> bool + 'a {
        move |s: &str| s == ANY_QEMU || markers.contains(&s)
    }

    #[test]
    fn each_qemu_of_the_matrix_is_told_apart() {
        assert_eq!(
            speaks(qemu_with(&["qemu_plugin_bool_parse"])),
            Speaks::Api(1)
        );
        let v4 = [
            "qemu_plugin_bool_parse",
            "qemu_plugin_scoreboard_new",
            "qemu_plugin_register_vcpu_tb_exec_cond_cb",
            "qemu_plugin_read_memory_vaddr",
        ];
        assert_eq!(speaks(qemu_with(&v4)), Speaks::Api(4));
        let v5 = [
            "qemu_plugin_bool_parse",
            "qemu_plugin_scoreboard_new",
            "qemu_plugin_register_vcpu_tb_exec_cond_cb",
            "qemu_plugin_read_memory_vaddr",
            "qemu_plugin_translate_vaddr",
        ];
        assert_eq!(speaks(qemu_with(&v5)), Speaks::Api(5));
        let v7 = [
            "qemu_plugin_bool_parse",
            "qemu_plugin_scoreboard_new",
            "qemu_plugin_register_vcpu_tb_exec_cond_cb",
            "qemu_plugin_read_memory_vaddr",
            "qemu_plugin_translate_vaddr",
            "qemu_plugin_set_pc",
        ];
        assert_eq!(speaks(qemu_with(&v7)), Speaks::SixOrSeven);
        assert_eq!(speaks(qemu_with(&[])), Speaks::Api(0));
    }

    #[test]
    fn a_process_without_the_plugin_api_is_not_qemu() {
        assert_eq!(speaks(|_| false), Speaks::NotQemu);
        assert_eq!(Speaks::NotQemu.candidates(), &[] as &[u32]);
    }

    #[test]
    fn candidates_prefer_api_7_over_6() {
        assert_eq!(Speaks::SixOrSeven.candidates(), &[7, 6]);
        assert_eq!(Speaks::Api(3).candidates(), &[3]);
    }
}

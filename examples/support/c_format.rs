//! C `printf` conversions that the rewrites of QEMU's contrib plugins need to print
//! exactly what the C originals print. Shared by those examples through `#[path]`.

#![allow(dead_code)]

/// `printf("% Nd", n)`: a space where a sign would go, then right-aligned in `width`
/// (the space counts towards the width, as in C).
pub fn space_signed(n: i64, width: usize) -> String {
    let text = if n < 0 {
        n.to_string()
    } else {
        format!(" {n}")
    };
    format!("{text:>width$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_c() {
        // Values from C's printf("% 4d|% 10d", ...).
        assert_eq!(space_signed(0, 4), "   0");
        assert_eq!(space_signed(1234, 4), " 1234");
        assert_eq!(space_signed(-5, 4), "  -5");
        assert_eq!(space_signed(7, 10), "         7");
    }
}

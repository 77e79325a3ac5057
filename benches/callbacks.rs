//! Placeholder: the criterion benches of the callback paths are being written.
fn main() {}

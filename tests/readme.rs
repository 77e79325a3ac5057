//! The README's plugin is `examples/readme.rs` token for token (the README keeps its
//! short functions on one line; the example is rustfmt's layout of the same code), so
//! building the examples compiles it, as the `cdylib` QEMU loads, and `qemu_agreement`
//! runs it.

#[test]
fn readme_shows_examples_readme_rs() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/readme.rs");
    let start = readme.find("```rust\n").expect("README has a rust block") + "```rust\n".len();
    let len = readme[start..].find("```\n").expect("the block ends");
    let tokens = |s: &str| s.split_whitespace().collect::<String>();
    assert_eq!(
        tokens(&readme[start..start + len]),
        tokens(example),
        "README.md's plugin and examples/readme.rs differ"
    );
}

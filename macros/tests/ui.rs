//! What rustc itself prints for a graph whose Rust does not fit it: each error once, at the
//! user's own tokens inside `graph!`. Here rather than beside the other macro tests so that
//! trybuild's project depends on the macro and the runtime alone, not on the test crate's
//! fixtures and benchmarks (which it would otherwise build a second time).

#[test]
fn macro_errors_are_compile_errors_at_the_users_tokens() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

//! Soak benchmark (work in progress).
fn main() {}

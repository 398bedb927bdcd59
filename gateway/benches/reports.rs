//! Placeholder until the generator lands: see the report of issue #5.
fn main() {}

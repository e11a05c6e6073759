//! Echo benchmark (enabled once the fixture lands).
fn main() {}

//! The one thing every AFL++ binary does: hand AFL's inputs to a target of
//! `capos_fuzz` (a panic there is AFL's crash).

pub fn drive(name: &str) {
    let target = capos_fuzz::target(name).unwrap_or_else(|| panic!("no fuzz target called {name}"));
    afl::fuzz!(|data: &[u8]| (target.run)(data));
}

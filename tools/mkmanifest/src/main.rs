//! `mkmanifest` command line; see the library docs for the format.
#![forbid(unsafe_code)]

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = mkmanifest::run(&args, &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(status);
}

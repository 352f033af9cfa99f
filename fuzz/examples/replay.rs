//! Reproduce a finding without AFL: run a target on files.
//!
//! `cargo run -p capos-fuzz --example replay -- TARGET FILE...`
//! (RUST_BACKTRACE=1 for where it panicked).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, files)) = args.split_first().filter(|(_, f)| !f.is_empty()) else {
        let names: Vec<&str> = capos_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("usage: replay TARGET FILE...   (targets: {})", names.join(" "));
        std::process::exit(2);
    };
    let Some(target) = capos_fuzz::target(name) else {
        eprintln!("replay: no target called {name}");
        std::process::exit(2);
    };
    for file in files {
        let data = std::fs::read(file).unwrap_or_else(|e| {
            eprintln!("replay: {file}: {e}");
            std::process::exit(2)
        });
        (target.run)(&data);
        println!("{name} {file}: no panic ({} bytes)", data.len());
    }
}

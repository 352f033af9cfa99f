fn main() {
    eprintln!("mkmanifest: not implemented yet");
    std::process::exit(2);
}

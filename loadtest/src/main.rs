fn main() {
    eprintln!("castbrick-load: not built yet");
    std::process::exit(2);
}

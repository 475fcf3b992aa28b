//! The `ember` binary; the name it is invoked under picks the personality (see `cli`).
fn main() {
    std::process::exit(ember::cli::main());
}

//! The `picket` binary: everything lives in the library; see `cli.rs`.

fn main() -> std::process::ExitCode {
    picket::cli::main()
}

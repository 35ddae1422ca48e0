fn main() -> std::process::ExitCode {
    sluice_cli::main_with(std::env::args_os(), None)
}

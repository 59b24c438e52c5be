fn main() -> std::process::ExitCode {
    sshmcpd::cli::main()
}

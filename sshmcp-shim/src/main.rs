use std::process::ExitCode;

fn main() -> ExitCode {
    match sshmcp_shim::run(std::env::args_os().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sshmcp-shim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

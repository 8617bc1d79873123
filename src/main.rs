//! The `herald` binary: parse the command line, load the configuration, start
//! logging, and hand off to the library. Nothing else lives here.

use std::process::ExitCode;

use clap::Parser;
use herald::cli::{self, Cli};
use herald::config::Settings;

/// sysexits' EX_CONFIG: systemd and scripts can tell a bad configuration from a crash.
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    cli::write_to_stdout();
    let args = Cli::parse();
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            cli::write_err(format_args!("herald: {e}\n"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    herald::telemetry::init(&settings.telemetry);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            cli::write_err(format_args!(
                "herald: cannot start the async runtime: {e}\n"
            ));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args, settings)) {
        Ok(_) if cli::output_failed() => ExitCode::FAILURE,
        Ok(code) => code,
        Err(e) => {
            cli::write_err(format_args!("herald: {e:#}\n"));
            ExitCode::FAILURE
        }
    }
}

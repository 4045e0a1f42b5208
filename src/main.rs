use std::process::ExitCode;

use clap::Parser;
use modelgate::cli::{self, Cli};

fn main() -> ExitCode {
    cli::run(Cli::parse())
}

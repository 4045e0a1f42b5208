//! The command line's stdout. `modelgate keys list | head` closes the pipe early: that is the
//! reader saying it has seen enough, not an error, so the command stops there quietly with
//! exit status 0, where `println!` would panic (exit 101). Status 0 rather than the shell's
//! 141 because `set -o pipefail` scripts would otherwise fail on a pipeline that did its job.
//!
//! The server banner and `probe` keep going when stdout closes (they print best effort); every
//! other command prints through [`outln!`].

use std::fmt::Arguments;
use std::io::{ErrorKind, Write};

use super::Failure;

/// Writes `text` and flushes, so a closed pipe is noticed at the line that met it.
pub fn write(text: Arguments<'_>) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(text)
        .and_then(|()| out.flush())
        .map_err(|err| match err.kind() {
            ErrorKind::BrokenPipe => Failure::stdout_closed(),
            _ => Failure::runtime(format!("cannot write to stdout: {err}")),
        })
}

/// `println!` for the CLI: returns `Result<(), Failure>` instead of panicking on a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// `text` with its control characters escaped (`\n`, `\u{1b}`…): a key name holding a
/// newline or an ANSI escape must not fake table rows or recolour the operator's terminal.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_controls("plain name é"), "plain name é");
        assert_eq!(
            escape_controls("a\nfake row\u{1b}[31mred"),
            "a\\nfake row\\u{1b}[31mred"
        );
    }
}

//! How the examples end: exit 0, or exit 1 with the error on stderr (a
//! start-up problem names its variable and the fix).

use std::process::ExitCode;

/// The exit code for `result`, printing the error.
pub(crate) fn code(result: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

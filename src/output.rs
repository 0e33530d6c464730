//! Data on stdout. A reader that goes away early (`flowpack runs | head -1`) ends the
//! command quietly with exit code 0, as ripgrep does: writes fail with [`StdoutClosed`],
//! which `main` recognizes, instead of `println!`'s panic.

use std::io::{self, Write};

/// Stdout was closed by its reader.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed")]
pub struct StdoutClosed;

/// Stdout, locked, whose broken-pipe errors are [`StdoutClosed`].
pub struct Stdout(io::StdoutLock<'static>);

/// The process's stdout for data.
pub fn stdout() -> Stdout {
    Stdout(io::stdout().lock())
}

fn closed(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, StdoutClosed)
    } else {
        e
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(closed)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(closed)
    }
}

/// Whether `e` (anywhere in its chain) is a write to a closed stdout.
pub fn is_stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<StdoutClosed>()
            || c.downcast_ref::<io::Error>()
                .and_then(|e| e.get_ref())
                .is_some_and(|inner| inner.is::<StdoutClosed>())
    })
}

/// `println!` for data, returning the write's error (`?`) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(
            &mut $crate::output::stdout(),
            format_args!("{}\n", format_args!($($arg)*)),
        )?
    };
}

/// `print!` for data, as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(&mut $crate::output::stdout(), format_args!($($arg)*))?
    };
}

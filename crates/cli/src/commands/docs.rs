//! `completions` and `man`: the shell completion scripts and the man pages, generated from the
//! clap definitions (`args.rs`), so they never disagree with `--help`.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;

use crate::args::Cli;
use crate::error::{CliError, CommandResult, Outcome};

/// The name the scripts complete and the pages document.
const NAME: &str = "sluice";

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: Shell) -> CommandResult {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), NAME, &mut script);
    print(&script);
    Ok(Outcome::success())
}

/// Prints sluice(1) on stdout, or with `out_dir` writes it and a page per subcommand there.
pub fn man(out_dir: Option<&Path>) -> CommandResult {
    let Some(dir) = out_dir else {
        let mut page = Vec::new();
        Man::new(Cli::command())
            .render(&mut page)
            .map_err(|error| CliError::failed(format!("cannot render the man page: {error}")))?;
        print(&page);
        return Ok(Outcome::success());
    };
    let cannot_write = |error: std::io::Error| {
        CliError::bad_input(format!(
            "--out-dir {}: cannot write the man pages there ({error})",
            dir.display()
        ))
        .with_hint("give a directory you can write to, e.g. --out-dir ~/.local/share/man/man1")
    };
    std::fs::create_dir_all(dir).map_err(cannot_write)?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(cannot_write)?;
    errln!(
        "wrote the man pages into {} (sluice.1 and one per subcommand)",
        dir.display()
    );
    Ok(Outcome::success())
}

/// Writes generated text as is: it comes from our own definitions, never from input. A reader
/// that went away (`sluice man | head`) is not an error, as for every other output.
fn print(text: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text).and_then(|()| out.flush());
}

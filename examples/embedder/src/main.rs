//! `acme-sluice`: the whole `sluice` command (every subcommand, flag and exit code) with one
//! more step kind, `acme.change_ticket`, registered next to the built-in ones.
//!
//! ```sh
//! cargo run -p sluice-example-embedder -- run examples/embedder/change-ticket.json --emulator
//! ```

mod change_ticket;

use std::process::ExitCode;

use sluice_cli::Sluice;

fn main() -> ExitCode {
    Sluice::new()
        .with_kinds(|registry, _cloud| {
            registry.register(change_ticket::KIND, change_ticket::ChangeTicket::default());
        })
        .main(std::env::args_os())
}

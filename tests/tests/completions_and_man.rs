//! `sluice completions SHELL` and `sluice man`: generated from the clap definitions, so each
//! test checks them against `Cli::command()`, the same tree `--help` shows.

use std::path::Path;
use std::process::{Command, Output};

use clap::CommandFactory;
use sluice_cli::Cli;
use sluice_tests::{stderr, stdout};

const HARNESS: &str = env!("CARGO_BIN_EXE_sluice-harness");

fn sluice(args: &[&str]) -> Output {
    Command::new(HARNESS)
        .args(args)
        .env_remove("SLUICE_STORE")
        .output()
        .expect("harness runs")
}

/// Every subcommand as its path below `sluice`: `["run"]`, `["fleet", "run"]`, …, clap's
/// `help` left out.
fn subcommand_paths() -> Vec<Vec<String>> {
    fn walk(command: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_string());
            out.push(path.clone());
            walk(sub, &path, out);
        }
    }
    let mut paths = Vec::new();
    walk(&Cli::command(), &[], &mut paths);
    for expected in [&["run"][..], &["fleet", "run"], &["completions"], &["man"]] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected:?} missing from {paths:?}"
        );
    }
    paths
}

#[test]
fn the_bash_script_completes_every_subcommand() {
    let output = sluice(&["completions", "bash"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let script = stdout(&output);
    for path in subcommand_paths() {
        let (name, parents) = path.split_last().unwrap();
        let parent: String = parents.iter().map(|p| format!("__subcmd__{p}")).collect();
        let case = format!("sluice{parent},{name})");
        assert!(
            script.contains(&case),
            "no `{case}` for `sluice {}`",
            path.join(" ")
        );
    }
    // And bash runs it: completing `sluice fl` offers `fleet`, `sluice fleet r` its subcommands.
    let complete = |words: &str| {
        let program = format!(
            "source /dev/stdin; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _sluice sluice \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             echo \"${{COMPREPLY[*]}}\""
        );
        let mut child = Command::new("bash")
            .args(["--norc", "-c", &program])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("bash runs");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
        let done = child.wait_with_output().unwrap();
        assert!(done.status.success(), "bash failed on the script");
        stdout(&done).trim().to_string()
    };
    assert_eq!(complete("sluice fl"), "fleet");
    assert_eq!(complete("sluice fleet r"), "run resume");
    assert!(complete("sluice run --auto").contains("--auto-approve"));
}

#[test]
fn every_shell_gets_a_script_naming_the_commands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = sluice(&["completions", shell]);
        assert_eq!(output.status.code(), Some(0), "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        for word in ["sluice", "fleet", "validate", "store"] {
            assert!(script.contains(word), "the {shell} script lacks `{word}`");
        }
    }
    let output = sluice(&["completions", "tcsh"]);
    assert_eq!(output.status.code(), Some(2), "an unknown shell is bad input");
    assert!(stderr(&output).contains("possible values: bash, elvish, fish, powershell, zsh"));
    assert!(stdout(&output).is_empty());
}

/// The man macros and escapes clap_mangen may write, and that man(7) defines.
const REQUESTS: [&str; 14] = [
    "TH", "SH", "SS", "TP", "IP", "PP", "LP", "P", "RS", "RE", "br", "B", "ie", "el",
];
const ESCAPES: [&str; 9] = [
    "\\-", "\\(bu", "\\fB", "\\fI", "\\fR", "\\fP", "\\(aq", "\\*(Aq", "\\n(.g",
];

/// Checks `page` as man(7) roff and returns its sections by heading, with their text lines.
fn parse_roff(page: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    let mut title = None;
    for (n, line) in page.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find('\\') {
            let escape = &rest[at..];
            let known = ESCAPES.iter().find(|e| escape.starts_with(**e));
            let known = known.unwrap_or_else(|| panic!("line {}: unknown escape in `{line}`", n + 1));
            rest = &escape[known.len()..];
        }
        if let Some(request) = line.strip_prefix('.') {
            let (name, args) = request.split_once(' ').unwrap_or((request, ""));
            assert!(
                REQUESTS.contains(&name),
                "line {}: unknown request `.{name}`",
                n + 1
            );
            match name {
                "TH" => title = Some(args.to_string()),
                "SH" => {
                    assert!(title.is_some(), "line {}: a section before .TH", n + 1);
                    sections.push((args.trim_matches('"').to_string(), Vec::new()));
                }
                _ => {}
            }
        } else if let Some((_, lines)) = sections.last_mut() {
            lines.push(line.replace("\\-", "-").replace("\\fB", "").replace("\\fR", ""));
        }
    }
    let title = title.expect("a .TH title line");
    assert!(title.starts_with("sluice 1"), "title `{title}`");
    sections
}

fn section<'a>(sections: &'a [(String, Vec<String>)], heading: &str) -> &'a [String] {
    let found = sections.iter().find(|(name, _)| name == heading);
    &found
        .unwrap_or_else(|| panic!("no {heading} section in {sections:?}"))
        .1
}

#[test]
fn the_man_page_is_roff_listing_the_subcommands_and_the_global_options() {
    let output = sluice(&["man"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let sections = parse_roff(&stdout(&output));
    assert!(section(&sections, "NAME")[0].starts_with("sluice - "));
    let options = section(&sections, "OPTIONS").join("\n");
    for option in ["--store", "--log-format", "--verbose"] {
        assert!(options.contains(option), "OPTIONS lacks {option}:\n{options}");
    }
    let listed = section(&sections, "SUBCOMMANDS").join("\n");
    for path in subcommand_paths().iter().filter(|p| p.len() == 1) {
        assert!(
            listed.contains(&format!("sluice-{}(1)", path[0])),
            "SUBCOMMANDS lacks {path:?}:\n{listed}"
        );
    }
}

#[test]
fn out_dir_writes_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man/man1");
    let output = sluice(&["man", "--out-dir", pages.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).is_empty(), "pages go to files only");
    let mut expected: Vec<String> = subcommand_paths()
        .iter()
        .map(|path| format!("sluice-{}.1", path.join("-")))
        .collect();
    expected.push("sluice.1".into());
    expected.sort();
    let mut written: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, expected);
    let run = std::fs::read_to_string(pages.join("sluice-run.1")).unwrap();
    assert!(
        run.starts_with(".ie") && run.contains(".TH sluice-run 1"),
        "{run}"
    );
    assert!(run.contains("\\-\\-auto\\-approve") && run.contains("\\-\\-emulator"));
}

#[test]
fn out_dir_that_cannot_be_written_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let below = file.join("man1");
    let output = sluice(&["man", "--out-dir", below.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("--out-dir") && err.contains("cannot write the man pages"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");
    assert!(Path::new(&file).is_file());
}

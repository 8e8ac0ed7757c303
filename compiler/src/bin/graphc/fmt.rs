//! `graphc fmt`: files and folders rewritten in the canonical layout, or checked with a diff.

use graphc::report::{self, Style};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Formats `paths` (standard input when empty or `-`). Exit 0 when all is well, 1 when `check`
/// found a file to format or a file did not parse, 2 when a file could not be read or written.
pub fn run(paths: &[PathBuf], check: bool, style: &Style) -> ExitCode {
    if paths.is_empty() || paths.iter().any(|p| p.as_os_str() == "-") {
        return stdin(check, style);
    }
    let mut files = Vec::new();
    for path in paths {
        if let Err(error) = collect(path, &mut files) {
            eprintln!("error: cannot read {}: {error}", path.display());
            return ExitCode::from(2);
        }
    }
    let mut worst = Outcome::Formatted;
    for file in &files {
        worst = worst.max(one_file(file, check, style));
    }
    worst.into()
}

/// What happened to one file, from best to worst.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Formatted,
    NotFormatted,
    Unreadable,
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Formatted => ExitCode::SUCCESS,
            Outcome::NotFormatted => ExitCode::FAILURE,
            Outcome::Unreadable => ExitCode::from(2),
        }
    }
}

/// The `.graph` files under `path` (itself when it is a file), sorted.
pub fn collect(path: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !path.is_dir() {
        files.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect(&entry, files)?;
        } else if entry.extension().is_some_and(|e| e == "graph") {
            files.push(entry);
        }
    }
    Ok(())
}

fn one_file(path: &Path, check: bool, style: &Style) -> Outcome {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: cannot read {name}: {error}");
            return Outcome::Unreadable;
        }
    };
    let formatted = match graphc::format::format_source(&text) {
        Ok(formatted) => formatted,
        Err(diagnostics) => {
            eprint!("{}", report::render_human(&name, &text, &diagnostics, *style));
            return Outcome::NotFormatted;
        }
    };
    if formatted == text {
        return Outcome::Formatted;
    }
    if check {
        print!("{}", diff(&name, &text, &formatted));
        return Outcome::NotFormatted;
    }
    match std::fs::write(path, formatted) {
        Ok(()) => Outcome::Formatted,
        Err(error) => {
            eprintln!("error: cannot write {name}: {error}");
            Outcome::Unreadable
        }
    }
}

fn stdin(check: bool, style: &Style) -> ExitCode {
    let mut text = String::new();
    if let Err(error) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("error: cannot read standard input: {error}");
        return ExitCode::from(2);
    }
    match graphc::format::format_source(&text) {
        Ok(formatted) if check => {
            if formatted == text {
                return ExitCode::SUCCESS;
            }
            print!("{}", diff("<stdin>", &text, &formatted));
            ExitCode::FAILURE
        }
        Ok(formatted) => {
            let _ = std::io::stdout().write_all(formatted.as_bytes());
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            eprint!("{}", report::render_human("<stdin>", &text, &diagnostics, *style));
            ExitCode::FAILURE
        }
    }
}

/// A unified diff from the file as it is to the file formatted, as `diff -u` prints it.
fn diff(name: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(name, &format!("{name} (formatted)"))
        .to_string()
}

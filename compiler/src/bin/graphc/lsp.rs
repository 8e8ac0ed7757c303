//! `graphc lsp`: runs the language server, the `graphc-lsp` binary, in graphc's place.
//!
//! The server is a binary of its own so that building the compiler does not build the
//! protocol's types; editors keep starting `graphc lsp`, as `cargo fmt` starts `rustfmt`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// The server's file name on this platform.
fn server_name() -> String {
    format!("graphc-lsp{}", std::env::consts::EXE_SUFFIX)
}

/// Where the server is looked for.
enum Lookup {
    /// `GRAPHC_LSP` names it.
    Named(OsString),
    /// Beside this binary: `cargo install` puts both in one folder, and a workspace build both in
    /// `target/<profile>`.
    Beside(PathBuf),
    /// On `PATH`.
    OnPath,
}

fn lookup() -> Lookup {
    if let Some(path) = std::env::var_os("GRAPHC_LSP") {
        return Lookup::Named(path);
    }
    let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join(server_name())));
    match beside {
        Some(path) if path.is_file() => Lookup::Beside(path),
        _ => Lookup::OnPath,
    }
}

/// Runs the server on this process's standard input and output; its exit status is graphc's.
pub fn run() -> ExitCode {
    let lookup = lookup();
    let server = match &lookup {
        Lookup::Named(path) => PathBuf::from(path),
        Lookup::Beside(path) => path.clone(),
        Lookup::OnPath => PathBuf::from(server_name()),
    };
    let mut command = Command::new(&server);
    #[cfg(unix)]
    let error = {
        use std::os::unix::process::CommandExt;
        // In place of graphc: the editor's signals and pipes reach the server itself.
        command.exec()
    };
    #[cfg(not(unix))]
    let error = match command.status() {
        Ok(status) => {
            return status.code().and_then(|code| u8::try_from(code).ok()).map_or(ExitCode::FAILURE, ExitCode::from);
        }
        Err(error) => error,
    };
    match (lookup, error.kind()) {
        (Lookup::OnPath, std::io::ErrorKind::NotFound) => {
            let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lsp");
            let install = std::fs::canonicalize(&source).map_or_else(
                |_| "cargo install graphc-lsp".to_string(),
                |dir| format!("cargo install --path {}", dir.display()),
            );
            eprintln!(
                "error: the language server `{}` is not installed: it is neither beside graphc nor on PATH\n  help: install it with `{install}`, or name it in GRAPHC_LSP",
                server.display()
            );
        }
        _ => eprintln!("error: cannot start the language server `{}`: {error}", server.display()),
    }
    ExitCode::from(2)
}

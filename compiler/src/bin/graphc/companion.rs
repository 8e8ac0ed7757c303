//! `graphc lsp` and `graphc deploy`: each runs a binary of its own in graphc's place, the
//! language server (`graphc-lsp`) and the Kubernetes writer (`graphc-deploy`).
//!
//! They are binaries of their own so that building the compiler does not build the protocol's
//! types or Kubernetes' API; users keep running `graphc lsp` and `graphc deploy`, as `cargo fmt`
//! starts `rustfmt`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// A binary graphc runs in its place.
pub struct Companion {
    /// Its name, without the platform's suffix.
    pub binary: &'static str,
    /// The variable that names another.
    pub variable: &'static str,
    /// Its crate's folder in graphc's source, for the install hint.
    pub folder: &'static str,
    /// What it is, in the error.
    pub what: &'static str,
}

/// The language server.
pub const LSP: Companion =
    Companion { binary: "graphc-lsp", variable: "GRAPHC_LSP", folder: "../lsp", what: "the language server" };

/// The Kubernetes writer.
pub const DEPLOY: Companion = Companion {
    binary: "graphc-deploy",
    variable: "GRAPHC_DEPLOY",
    folder: "../deploy",
    what: "graphc deploy's Kubernetes writer",
};

/// Where the binary is looked for.
enum Lookup {
    /// Its variable names it.
    Named(OsString),
    /// Beside this binary: `cargo install` puts both in one folder, and a workspace build both in
    /// `target/<profile>`.
    Beside(PathBuf),
    /// On `PATH`.
    OnPath,
}

impl Companion {
    /// The file name on this platform.
    fn file_name(&self) -> String {
        format!("{}{}", self.binary, std::env::consts::EXE_SUFFIX)
    }

    fn lookup(&self) -> Lookup {
        if let Some(path) = std::env::var_os(self.variable) {
            return Lookup::Named(path);
        }
        let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join(self.file_name())));
        match beside {
            Some(path) if path.is_file() => Lookup::Beside(path),
            _ => Lookup::OnPath,
        }
    }

    /// Runs it with `args` on this process's standard input and output; its exit status is
    /// graphc's.
    pub fn run(&self, args: &[OsString]) -> ExitCode {
        let lookup = self.lookup();
        let program = match &lookup {
            Lookup::Named(path) => PathBuf::from(path),
            Lookup::Beside(path) => path.clone(),
            Lookup::OnPath => PathBuf::from(self.file_name()),
        };
        let mut command = Command::new(&program);
        command.args(args);
        #[cfg(unix)]
        let error = {
            use std::os::unix::process::CommandExt;
            // In place of graphc: the caller's signals and pipes reach the binary itself.
            command.exec()
        };
        #[cfg(not(unix))]
        let error = match command.status() {
            Ok(status) => {
                return status
                    .code()
                    .and_then(|code| u8::try_from(code).ok())
                    .map_or(ExitCode::FAILURE, ExitCode::from);
            }
            Err(error) => error,
        };
        match (lookup, error.kind()) {
            (Lookup::OnPath, std::io::ErrorKind::NotFound) => {
                let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(self.folder);
                let install = std::fs::canonicalize(&source).map_or_else(
                    |_| format!("cargo install {}", self.binary),
                    |dir| format!("cargo install --path {}", dir.display()),
                );
                eprintln!(
                    "error: {} `{}` is not installed: it is neither beside graphc nor on PATH\n  help: install it with `{install}`, or name it in {}",
                    self.what,
                    program.display(),
                    self.variable
                );
            }
            _ => eprintln!("error: cannot start {} `{}`: {error}", self.what, program.display()),
        }
        ExitCode::from(2)
    }
}

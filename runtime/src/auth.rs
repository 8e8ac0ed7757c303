//! Access tokens (`--auth-tokens-file`): who may call what, checked on every port before a request
//! becomes an event. The file holds one token per line (it may call anything), or a named token
//! and the groups of paths it may use: `NAME TOKEN [infer] [metadata] [metrics]`; `#` starts a
//! comment. A caller sends `Authorization: Bearer TOKEN`, or the token alone in the header named by
//! `--auth-header`. The health probes stay open, so that an orchestrator needs no token. Tokens
//! are compared in constant time, never logged, and re-read from the file on SIGHUP.

use crate::error::StepError;
use http::HeaderMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// What a request does, for the tokens that may do only some of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Inference, explanations and a model's own operations: every request but a read.
    Infer,
    /// Reads: server and model metadata, readiness, the model list.
    Metadata,
    /// `/metrics`.
    Metrics,
}

impl Group {
    const ALL: [Group; 3] = [Group::Infer, Group::Metadata, Group::Metrics];

    fn name(self) -> &'static str {
        match self {
            Group::Infer => "infer",
            Group::Metadata => "metadata",
            Group::Metrics => "metrics",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The group of a request, or `None` for the open health probes.
    pub fn of(method: &str, path: &str) -> Option<Group> {
        let path = path.trim_end_matches('/');
        if path == crate::oip::paths::LIVE || path == crate::oip::paths::READY {
            return None;
        }
        if path == "/metrics" {
            return Some(Group::Metrics);
        }
        Some(if matches!(method, "GET" | "HEAD") { Group::Metadata } else { Group::Infer })
    }
}

/// One token of the file.
struct Token {
    /// Its name, for logs (`token` for an unnamed one); never the token itself.
    name: String,
    secret: Vec<u8>,
    /// The groups it may use, one bit each.
    groups: u8,
}

/// Why the tokens file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// It could not be read.
    #[error("cannot read the tokens file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line names a group there is not.
    #[error("{path}:{line}: `{group}` is not a group: use infer, metadata or metrics")]
    UnknownGroup {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What it said.
        group: String,
    },
    /// It holds no token, which would lock every caller out.
    #[error("{path} holds no token: every request would be refused")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The tokens a server takes, and where they come from.
pub struct Tokens {
    file: PathBuf,
    /// The header a token comes in by itself; `None`: `Authorization: Bearer`.
    header: Option<http::HeaderName>,
    tokens: RwLock<Arc<Vec<Token>>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The tokens themselves are never printed.
        f.debug_struct("Tokens").field("file", &self.file).field("header", &self.header).finish_non_exhaustive()
    }
}

impl Tokens {
    /// The tokens in `file`, sent in `header` (or as `Authorization: Bearer`).
    pub fn read(file: &Path, header: Option<http::HeaderName>) -> Result<Tokens, TokensError> {
        let tokens = read_file(file)?;
        Ok(Tokens { file: file.to_path_buf(), header, tokens: RwLock::new(Arc::new(tokens)) })
    }

    /// Reads the file again: the new tokens take effect for the next request; a file that no
    /// longer reads leaves the old ones in force.
    pub fn reload(&self) -> Result<(), TokensError> {
        let tokens = Arc::new(read_file(&self.file)?);
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = tokens;
        Ok(())
    }

    /// Whether the request may go on: 401 (with the scheme to use) without a token the file
    /// holds, 403 with one that may not use the request's group.
    pub fn check(&self, method: &str, path: &str, headers: &HeaderMap) -> Result<(), StepError> {
        let Some(group) = Group::of(method, path) else { return Ok(()) };
        let presented = match &self.header {
            Some(header) => headers.get(header).map(|value| value.as_bytes()),
            // The scheme's name is case-insensitive (RFC 9110, 11.1).
            None => headers.get(http::header::AUTHORIZATION).and_then(|value| {
                let (scheme, token) = value.as_bytes().split_at_checked(6)?;
                let separated = token.first() == Some(&b' ');
                (scheme.eq_ignore_ascii_case(b"bearer") && separated).then(|| token.trim_ascii())
            }),
        };
        let Some(presented) = presented.filter(|token| !token.is_empty()) else {
            return Err(StepError::unauthenticated(match &self.header {
                Some(header) => format!("this server takes a token in the `{header}` header"),
                None => "this server takes a bearer token: send `Authorization: Bearer TOKEN`".to_string(),
            }));
        };
        let tokens = Arc::clone(&self.tokens.read().unwrap_or_else(|e| e.into_inner()));
        // Every token is compared, whichever matches: the time taken says nothing of which.
        let mut found: Option<&Token> = None;
        for token in tokens.iter() {
            if constant_time_eq(&token.secret, presented) {
                found = Some(token);
            }
        }
        match found {
            None => Err(StepError::unauthenticated("the token is not one this server takes")),
            Some(token) if token.groups & group.bit() == 0 => Err(StepError::forbidden(format!(
                "token `{}` may not use {}: its groups are {}",
                token.name,
                group.name(),
                Group::ALL
                    .iter()
                    .filter(|g| token.groups & g.bit() != 0)
                    .map(|g| g.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Re-reads the file on every SIGHUP, for as long as the process runs.
    pub fn reload_on_hangup(self: &Arc<Self>) {
        let tokens = Arc::clone(self);
        crate::logging::on_hangup("access tokens", move || tokens.reload());
    }
}

fn read_file(file: &Path) -> Result<Vec<Token>, TokensError> {
    let text =
        std::fs::read_to_string(file).map_err(|source| TokensError::Read { path: file.to_path_buf(), source })?;
    let mut tokens = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default();
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (name, secret, groups) = match fields.as_slice() {
            [] => continue,
            [secret] => ("token", *secret, &[][..]),
            [name, secret, groups @ ..] => (*name, *secret, groups),
        };
        let mut bits = 0u8;
        for group in groups {
            let found = Group::ALL.into_iter().find(|g| g.name() == *group).ok_or_else(|| {
                TokensError::UnknownGroup { path: file.to_path_buf(), line: index + 1, group: group.to_string() }
            })?;
            bits |= found.bit();
        }
        if groups.is_empty() {
            bits = Group::ALL.iter().fold(0, |all, g| all | g.bit());
        }
        tokens.push(Token { name: name.to_string(), secret: secret.as_bytes().to_vec(), groups: bits });
    }
    if tokens.is_empty() {
        return Err(TokensError::Empty { path: file.to_path_buf() });
    }
    Ok(tokens)
}

/// Equal bytes, in a time that depends on the lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |differ, (x, y)| differ | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str, header: Option<&'static str>) -> Tokens {
        let file = std::env::temp_dir().join(format!("graphc-tokens-{}-{}", std::process::id(), text.len()));
        std::fs::write(&file, text).unwrap();
        let tokens = Tokens::read(&file, header.map(http::HeaderName::from_static)).unwrap();
        let _ = std::fs::remove_file(&file);
        tokens
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn a_token_may_use_its_groups_and_probes_are_open() {
        let tokens = tokens("# who may call\nall-of-it\nreader r3ad metadata metrics  # no inference\n", None);
        let infer = "/v2/models/m/infer";
        assert!(tokens.check("POST", infer, &bearer("all-of-it")).is_ok());
        let mut lower = HeaderMap::new();
        lower.insert(http::header::AUTHORIZATION, "bearer all-of-it".parse().unwrap());
        assert!(tokens.check("POST", infer, &lower).is_ok(), "the scheme's case does not matter");
        let mut glued = HeaderMap::new();
        glued.insert(http::header::AUTHORIZATION, "Bearerall-of-it".parse().unwrap());
        assert_eq!(tokens.check("POST", infer, &glued).unwrap_err().status(), 401);
        assert!(tokens.check("GET", "/v2/models/m", &bearer("r3ad")).is_ok());
        assert_eq!(tokens.check("POST", infer, &bearer("r3ad")).unwrap_err().status(), 403);
        assert_eq!(tokens.check("POST", infer, &bearer("wrong")).unwrap_err().status(), 401);
        assert_eq!(tokens.check("POST", infer, &HeaderMap::new()).unwrap_err().status(), 401);
        assert!(tokens.check("GET", "/v2/health/ready", &HeaderMap::new()).is_ok());
        assert_eq!(tokens.check("GET", "/metrics", &HeaderMap::new()).unwrap_err().status(), 401);
        let refused = tokens.check("POST", infer, &bearer("r3ad")).unwrap_err().message;
        assert!(!refused.contains("r3ad"), "a token is never repeated: {refused}");
    }

    #[test]
    fn a_configured_header_carries_the_token_alone() {
        let tokens = tokens("k3y\n", Some("x-api-key"));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "k3y".parse().unwrap());
        assert!(tokens.check("POST", "/", &headers).is_ok());
        assert_eq!(tokens.check("POST", "/", &bearer("k3y")).unwrap_err().status(), 401);
    }

    #[test]
    fn a_file_with_an_unknown_group_or_no_token_is_refused() {
        let file = std::env::temp_dir().join(format!("graphc-tokens-bad-{}", std::process::id()));
        std::fs::write(&file, "a b admin\n").unwrap();
        assert!(Tokens::read(&file, None).unwrap_err().to_string().contains(":1: `admin` is not a group"));
        std::fs::write(&file, "# nothing\n\n").unwrap();
        assert!(matches!(Tokens::read(&file, None), Err(TokensError::Empty { .. })));
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn reload_takes_the_new_tokens_and_keeps_the_old_when_the_file_breaks() {
        let file = std::env::temp_dir().join(format!("graphc-tokens-reload-{}", std::process::id()));
        std::fs::write(&file, "old\n").unwrap();
        let tokens = Tokens::read(&file, None).unwrap();
        std::fs::write(&file, "new\n").unwrap();
        tokens.reload().unwrap();
        assert!(tokens.check("POST", "/", &bearer("new")).is_ok());
        assert!(tokens.check("POST", "/", &bearer("old")).is_err(), "a rotated token is refused");
        std::fs::write(&file, "x y nonsense\n").unwrap();
        assert!(tokens.reload().is_err());
        assert!(tokens.check("POST", "/", &bearer("new")).is_ok(), "a broken file changes nothing");
        let _ = std::fs::remove_file(&file);
    }
}

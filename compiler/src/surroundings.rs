//! What a graph's file names on disk, checked there: its model files and its handler crate (the
//! folder, its package name, and the paths into its source). Besides [`crate::builder`], the one
//! module of the library that reads files; `graphc check`, `graphc build` and the language
//! server all call [`check`], so that each reports what the others do.

use crate::check::handler_crate::{HandlerCrate, check_handler_paths};
use crate::check::model_files::{Missing, ModelFiles, check_model_files};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir;
use std::path::{Path, PathBuf};

/// The handler crate a graph is built with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerFolder {
    /// Its folder, as found (relative to the working directory or absolute).
    pub dir: PathBuf,
    /// Its package name, as in its Cargo.toml.
    pub package: String,
}

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct Surroundings {
    /// The handler crate, when the graph or the command line names one and it exists.
    pub handlers: Option<HandlerFolder>,
    /// Every problem: missing model files, a missing handler crate, handler paths that name
    /// nothing in it.
    pub diagnostics: Vec<Diagnostic>,
}

/// Checks what the checked `graph`, read from `graph_file`, names beside it. `handlers` is the
/// handler crate's folder from the command line (`--handlers`), which wins over the graph's
/// `handlers = "..."` (relative to the graph's file).
pub fn check(graph_file: &Path, graph: &ir::Graph, handlers: Option<&Path>) -> Surroundings {
    let dir = graph_dir(graph_file);
    let mut diagnostics = check_model_files(graph, &GraphFolder(&dir));
    let (folder, span) = match (handlers, &graph.handlers) {
        (Some(flag), _) => (Some(flag.to_path_buf()), None),
        (None, Some(setting)) => (Some(dir.join(&setting.path)), Some(setting.span)),
        (None, None) => (None, None),
    };
    let mut found = None;
    if let Some(folder) = folder {
        match package_name(&folder) {
            Ok(package) => found = Some(HandlerFolder { dir: folder, package }),
            Err(why) => diagnostics.push(
                Diagnostic::error(
                    Code::HandlerCrateNotFound,
                    format!("the handler crate {} {why}", folder.display()),
                    span.unwrap_or_default(),
                    "the handler crate's folder",
                )
                .with_help(match span {
                    Some(_) => {
                        "`handlers` is relative to the graph's file: give the folder that holds the crate's Cargo.toml"
                    }
                    None => "`--handlers` takes the folder that holds the crate's Cargo.toml",
                }),
            ),
        }
    }
    let handler_crate = found.as_ref().map(|folder| {
        HandlerCrate::read(&folder.package, &mut |relative| std::fs::read_to_string(folder.dir.join(relative)).ok())
    });
    // Without a crate found (and a diagnostic for that), its paths would only repeat it.
    if found.is_some() || (graph.handlers.is_none() && handlers.is_none()) {
        diagnostics.extend(check_handler_paths(graph, handler_crate.as_ref()));
    }
    diagnostics.extend(schedules_that_have_ended(graph, chrono::Utc::now()));
    crate::diagnostic::sort(&mut diagnostics);
    Surroundings { handlers: found, diagnostics }
}

/// Cron schedules that will not fire again after `now`: a year field that has passed. The
/// checker's own test (the expression parses and fires at some time) cannot read the clock; this
/// one does, with the parser the runtime uses, so that the server never starts a schedule that
/// would only log "no further firing".
fn schedules_that_have_ended(graph: &ir::Graph, now: chrono::DateTime<chrono::Utc>) -> Vec<Diagnostic> {
    graph
        .triggers
        .iter()
        .filter_map(|trigger| match &trigger.source {
            ir::TriggerSource::Schedule { when: ir::Schedule::Cron { expression, .. }, .. } => {
                let cron = expression.parse::<croner::Cron>().ok()?;
                cron.find_next_occurrence(&now, false).is_err().then(|| {
                    Diagnostic::error(
                        Code::InvalidTrigger,
                        format!(
                            "schedule `{}` will not fire again: `{expression}` has no time after now",
                            trigger.name
                        ),
                        trigger.span,
                        "its last firing has passed",
                    )
                    .with_help("a year field names years that have passed: widen it, or remove the trigger")
                })
            }
            _ => None,
        })
        .collect()
}

/// A graph's folder, where its model files are: what [`check_model_files`] reads.
pub struct GraphFolder<'d>(pub &'d Path);

impl GraphFolder<'_> {
    fn missing(&self, model_path: &str, reason: String) -> Missing {
        Missing { resolved: self.0.join(model_path).display().to_string(), reason }
    }
}

impl ModelFiles for GraphFolder<'_> {
    fn exists(&self, model_path: &str) -> Result<(), Missing> {
        if self.0.join(model_path).is_file() {
            Ok(())
        } else {
            Err(self.missing(model_path, "does not exist".to_string()))
        }
    }

    fn read(&self, model_path: &str) -> Result<Vec<u8>, Missing> {
        std::fs::read(self.0.join(model_path)).map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => self.missing(model_path, "does not exist".to_string()),
            _ => self.missing(model_path, format!("cannot be read: {error}")),
        })
    }
}

/// The folder a graph's relative paths start from.
pub fn graph_dir(graph_file: &Path) -> PathBuf {
    graph_file.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// The package name in a crate folder's Cargo.toml, or why there is none.
fn package_name(folder: &Path) -> Result<String, String> {
    if !folder.is_dir() {
        return Err("does not exist".to_string());
    }
    let manifest = folder.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|_| "has no Cargo.toml".to_string())?;
    let package = text.split("[package]").nth(1).ok_or_else(|| "has no [package] in its Cargo.toml".to_string())?;
    package
        .lines()
        .take_while(|line| !line.trim_start().starts_with('['))
        .find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "name").then(|| value.trim().trim_matches('"').to_string())
        })
        .ok_or_else(|| "has no package name in its Cargo.toml".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_whose_years_have_passed_is_reported_and_one_that_fires_again_is_not() {
        let text = "graph g {
            topology = flow;
            trigger ended = schedule(cron = \"0 0 0 1 1 * 2020\");
            trigger later = schedule(cron = \"0 0 0 1 1 * 2040\");
            trigger daily = schedule(cron = \"0 2 * * *\");
            step a = map(body) { respond; }
        }";
        let checked = crate::check_source(text);
        assert!(checked.is_ok(), "the graph checks: {checked:?}");
        let Ok(checked) = checked else { return };
        let now = chrono::DateTime::from_timestamp(1_893_456_000, 0).unwrap_or_default(); // 2030-01-01
        let ended = schedules_that_have_ended(&checked.graph, now);
        let messages: Vec<&str> = ended.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages.first().is_some_and(|m| m.starts_with("schedule `ended` will not fire again")),
            "{messages:?}"
        );
    }
}

//! Test outcomes as JUnit XML, which CI systems read.

use super::TestOutcome;

/// JUnit XML for CI systems.
pub fn junit(suite: &str, outcomes: &[TestOutcome]) -> String {
    let escape =
        |text: &str| text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"0\" time=\"{:.6}\">\n",
        escape(suite),
        outcomes.len(),
        outcomes.iter().map(|o| o.seconds).sum::<f64>()
    );
    for outcome in outcomes {
        out.push_str(&format!(
            "  <testcase name=\"{}\" classname=\"{}\" time=\"{:.6}\"",
            escape(&outcome.name),
            escape(suite),
            outcome.seconds
        ));
        match &outcome.failure {
            None => out.push_str("/>\n"),
            Some(failure) => {
                out.push_str(&format!(">\n    <failure message=\"{}\"/>\n  </testcase>\n", escape(failure)))
            }
        }
    }
    out.push_str("</testsuite>\n");
    out
}

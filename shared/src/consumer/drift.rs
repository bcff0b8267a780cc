//! What a consumer does with the drift its decoder sees ([`crate::events::drift`]): one
//! structured warning per kind of drift, at most once per [`DriftLog::EVERY`] per
//! instance, the findings on the record's report (`cfwh dev`'s line, the inspector), and
//! a count in the batch's metrics line.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::events::{EventGroup, Finding};

/// What a consumer does with drift (`CF_DRIFT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriftMode {
    /// Checks every event against the baseline and reports what differs (the default).
    #[default]
    Report,
    /// Does not check.
    Off,
}

impl DriftMode {
    /// `report` or `off`, any case.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "report" => Some(Self::Report),
            "off" => Some(Self::Off),
            _ => None,
        }
    }
}

/// The drift one instance has logged lately: each kind of drift (group, kind, field and
/// types) logged once per [`Self::EVERY`], at most [`Self::KINDS`] kinds remembered.
///
/// A list searched in full, not a map: it holds at most [`Self::KINDS`] entries, is
/// searched only for events that drift, and keeps a hash map's code out of the bootstrap.
#[derive(Debug, Default)]
pub(super) struct DriftLog {
    logged: Mutex<Vec<(EventGroup, Finding, Instant)>>,
}

impl DriftLog {
    /// A kind of drift is logged again after this long.
    pub(super) const EVERY: Duration = Duration::from_secs(10 * 60);
    /// The kinds of drift remembered at once: past it, kinds logged longer than
    /// [`Self::EVERY`] ago are forgotten, and a new kind is not logged until there is
    /// room (its events still carry it, and the metric counts them).
    pub(super) const KINDS: usize = 256;

    /// Logs what of `findings` was not logged lately; returns how many lines it wrote.
    pub(super) fn note(&self, group: EventGroup, findings: &[Finding]) -> usize {
        let mut written = 0;
        for finding in findings {
            let now = Instant::now();
            {
                let mut logged = self.logged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match logged.iter_mut().find(|(g, f, _)| *g == group && f == finding) {
                    Some((_, _, at)) if now.duration_since(*at) < Self::EVERY => continue,
                    Some((_, _, at)) => *at = now,
                    None => {
                        if logged.len() >= Self::KINDS {
                            logged.retain(|(_, _, at)| now.duration_since(*at) < Self::EVERY);
                            if logged.len() >= Self::KINDS {
                                continue;
                            }
                        }
                        logged.push((group, finding.clone(), now));
                    }
                }
            }
            written += 1;
            log(group, finding);
        }
        written
    }
}

/// One line: the group, the kind, and the field and types (or the action) it is about.
fn log(group: EventGroup, finding: &Finding) {
    let (field, action, documented, sent) = match finding {
        Finding::UndocumentedField { field, sent } => (Some(field.as_str()), None, None, Some(sent.0.as_str())),
        Finding::UnknownAction { action } => (None, Some(action.as_str()), None, None),
        Finding::MissingField { field } => (Some(field.as_str()), None, None, None),
        Finding::RetypedField { field, documented, sent } => {
            (Some(field.as_str()), None, Some(*documented), Some(sent.0.as_str()))
        }
    };
    tracing::warn!(
        event_group = group.as_str(),
        drift = finding.kind(),
        field,
        action,
        documented,
        sent,
        "payload drift: {finding}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::baseline::JsonType;
    use crate::events::drift::JsonTypeName;

    fn undocumented(field: &str) -> Finding {
        Finding::UndocumentedField { field: field.into(), sent: JsonTypeName(JsonType::String) }
    }

    #[tokio::test(start_paused = true)]
    async fn each_kind_is_logged_once_per_window_and_the_memory_is_bounded() {
        let log = DriftLog::default();
        assert_eq!(log.note(EventGroup::Task, &[undocumented("A"), undocumented("B")]), 2);
        assert_eq!(log.note(EventGroup::Task, &[undocumented("A")]), 0, "within the window");
        assert_eq!(log.note(EventGroup::Job, &[undocumented("A")]), 1, "another group is another kind");
        tokio::time::advance(DriftLog::EVERY).await;
        assert_eq!(log.note(EventGroup::Task, &[undocumented("A")]), 1, "after the window");

        let many: Vec<Finding> = (0..DriftLog::KINDS * 2).map(|i| undocumented(&format!("F{i}"))).collect();
        let written = log.note(EventGroup::User, &many);
        // Room for all but the one kind logged within the window (the other two are older).
        assert_eq!(written, DriftLog::KINDS - 1);
        assert!(log.logged.lock().unwrap().len() <= DriftLog::KINDS);
        tokio::time::advance(DriftLog::EVERY).await;
        assert_eq!(log.note(EventGroup::User, &[undocumented("late")]), 1, "old kinds make room");
    }
}

//! The actions of each group as enums, matched the way Creative Force varies their
//! spelling: any case, with or without spaces and dashes, with or without the group's
//! prefix (`ProductReset` is `Reset`, `StatusChanged` on a work unit is
//! `WorkUnitStatusChanged`). An action this version does not know is kept as sent.

/// True when `raw` names `name` once both are normalised: ASCII letters and digits only,
/// lowercase, and the group `prefix` dropped when something follows it.
pub(crate) fn same_action(raw: &str, name: &str, prefix: &str) -> bool {
    key(raw, prefix).eq(key(name, prefix))
}

fn key<'a>(s: &'a str, prefix: &'a str) -> impl Iterator<Item = u8> + 'a {
    let normalised = move || s.bytes().filter(u8::is_ascii_alphanumeric).map(|b| b.to_ascii_lowercase());
    let has_prefix = normalised().take(prefix.len()).eq(prefix.bytes()) && normalised().nth(prefix.len()).is_some();
    normalised().skip(if has_prefix { prefix.len() } else { 0 })
}

/// `StatusChanged` as `status changed`, the group's `prefix` (`workunit`) dropped when
/// something follows it: a space before each capital that follows a lowercase letter or
/// a digit, all in lowercase.
pub(crate) fn words(name: &str, prefix: &str) -> String {
    let bare = match name.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) && name.len() > prefix.len() => &name[prefix.len()..],
        _ => name,
    };
    let mut text = String::with_capacity(bare.len() + 4);
    let mut previous_lower = false;
    for c in bare.chars() {
        if c.is_uppercase() && previous_lower {
            text.push(' ');
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        text.extend(c.to_lowercase());
    }
    text
}

macro_rules! cf_actions {
    (
        $(#[$doc:meta])*
        $name:ident, prefix = $prefix:literal,
        [$($(#[$vdoc:meta])* $variant:ident $(| $alias:literal)*),+ $(,)?]
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $(
                #[doc = concat!("`", stringify!($variant), "`")]
                $(#[$vdoc])*
                $variant,
            )+
            /// An action this version does not know, exactly as sent.
            Other(String),
        }

        impl $name {
            /// True unless it is [`Self::Other`]: an action the reference lists.
            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Other(_))
            }

            /// Matches a raw `Action` value (never fails: unknown actions are `Other`).
            pub fn parse(raw: &str) -> Self {
                // As spelled here (what ingest and `cfwh send` mostly see): one comparison
                // each, before the spelling-blind ones.
                $(
                    if raw == stringify!($variant) {
                        return Self::$variant;
                    }
                )+
                $(
                    if $crate::events::action::same_action(raw, stringify!($variant), $prefix)
                        $(|| $crate::events::action::same_action(raw, $alias, $prefix))*
                    {
                        return Self::$variant;
                    }
                )+
                Self::Other(raw.to_owned())
            }

            /// The canonical name, or the raw text of an unknown action.
            pub fn name(&self) -> &str {
                match self {
                    $(Self::$variant => stringify!($variant),)+
                    Self::Other(raw) => raw,
                }
            }

            /// Every action this version knows.
            pub const KNOWN: &'static [Self] = &[$(Self::$variant),+];

            /// The action in words, without the group's name: `status changed` for
            /// `StatusChanged` and for a work unit's `WorkUnitStatusChanged`; an unknown
            /// action as sent.
            pub fn words(&self) -> String {
                match self {
                    Self::Other(raw) => raw.clone(),
                    known => $crate::events::action::words(known.name(), $prefix),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::events::lenient::required_text(d).map(|raw| Self::parse(&raw))
            }
        }
    };
}

cf_actions! {
    /// What happened to a product.
    ProductAction, prefix = "product",
    [
        Reset, StatusChanged, StyleGuideChanged, CategoryChanged, Deactivated, Ignored,
        ColorReferenceMigrated, PropertiesUpdated, Deleted, Activated, StatusChangedViaKelvin,
        StyleGuideChangedViaKelvin, CategoryChangedViaKelvin, IgnoredViaKelvin,
        PropertiesUpdatedViaKelvin, DeletedViaKelvin, ActivatedViaKelvin, EnableProductionType,
        DisableProductionType, Imported, ColorReferenceCreated, ColorReferenceUpdated,
        ColorReferenceDeleted, Completed, MoveToAnotherJob, ApplyUpdates, AddedToBundle,
        RemovedFromBundle, TriggeredCopywriting, DeliveredCopywriting, DeliveryCopywritingFailed,
        IgnoreDeliverCopywriting,
    ]
}

cf_actions! {
    /// What happened to a sample.
    SampleAction, prefix = "sample",
    [LocationChanged, AddedToContainer, ReleasedFromContainer, CheckedIn, CheckedOut]
}

cf_actions! {
    /// What happened to a user.
    UserAction, prefix = "user",
    [
        UserLoggedIn, UserLoggedOut, PasswordChanged, AvatarUpdated, UserInvitationCompleted,
        UserUpdated, UserDeleted, UserInvitationDeleted, UserDisabled, UserEnabled, UserInvited,
        UserReInvited, ProductVendorAdded, StudioSignUpCompleted, SettingMigrateColorReferenceEcomm,
        SettingSourceEcommColorReferenceEditorial,
    ]
}

cf_actions! {
    /// What happened to a task.
    TaskAction, prefix = "task",
    [
        Completed, Created, Started, Bypassed, Reset, Assigned, Unassigned, Rejected, Approved,
        WaitingForColorReference, ProcessWithoutColorReference, Failed, CopywritingTaskEditMade,
        ReadyToWork, TaskSoftRejected, CopywritingDreemGenerateText, CopywritingDreemAdjustText,
    ]
}

cf_actions! {
    /// What happened to a work unit (a production).
    WorkUnitAction, prefix = "workunit",
    [
        WorkUnitStatusChanged, WorkUnitReset, WorkUnitEnabled, WorkUnitDisabled,
        WorkUnitChangedSource, WorkUnitCompleted,
        /// Also matches the reference's spelling `WorkUnitBypassExternaPost`.
        WorkUnitBypassExternalPost | "WorkUnitBypassExternaPost",
        WorkUnitChangePostVendor, WorkUnitCreated, WorkUnitDeleted,
        CopywritingProductionLayoutStateChanged,
    ]
}

cf_actions! {
    /// What happened to a job.
    JobAction, prefix = "job",
    [StatusChanged, Created, Updated, Deleted, DeadlineUpdated]
}

cf_actions! {
    /// What happened to a session.
    SessionAction, prefix = "session",
    [
        /// Also matches `AddToSession`, the name in the list of events.
        AddedToSession | "AddToSession",
        RemovedFromSession,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_from_the_reference_match() {
        assert_eq!(ProductAction::parse("ProductReset"), ProductAction::Reset);
        assert_eq!(ProductAction::parse("Reset"), ProductAction::Reset);
        assert_eq!(ProductAction::parse("Product Deactivated"), ProductAction::Deactivated);
        assert_eq!(ProductAction::parse("ProductStatusChangedviaKelvin"), ProductAction::StatusChangedViaKelvin);
        assert_eq!(ProductAction::parse("ProductAddedtoBundle"), ProductAction::AddedToBundle);
        assert_eq!(SampleAction::parse("Checked-in"), SampleAction::CheckedIn);
        assert_eq!(SampleAction::parse("Addedtocontainer"), SampleAction::AddedToContainer);
        assert_eq!(UserAction::parse("UserRe-Invited"), UserAction::UserReInvited);
        assert_eq!(UserAction::parse("StudioSign-UpCompleted"), UserAction::StudioSignUpCompleted);
        assert_eq!(
            UserAction::parse("SettingSourceE-Comm ColorReference(Editorial)"),
            UserAction::SettingSourceEcommColorReferenceEditorial
        );
        assert_eq!(TaskAction::parse("completed"), TaskAction::Completed);
        assert_eq!(TaskAction::parse("COMPLETED"), TaskAction::Completed);
        assert_eq!(TaskAction::parse("WaitingforColorReference"), TaskAction::WaitingForColorReference);
        assert_eq!(TaskAction::parse("SoftRejected"), TaskAction::TaskSoftRejected);
        assert_eq!(WorkUnitAction::parse("StatusChanged"), WorkUnitAction::WorkUnitStatusChanged);
        assert_eq!(WorkUnitAction::parse("WorkUnitBypassExternaPost"), WorkUnitAction::WorkUnitBypassExternalPost);
        assert_eq!(JobAction::parse("Deadline Updated"), JobAction::DeadlineUpdated);
        assert_eq!(JobAction::parse("JobDeleted"), JobAction::Deleted);
        assert_eq!(SessionAction::parse("AddToSession"), SessionAction::AddedToSession);
        assert_eq!(SessionAction::parse("RemovedfromSession"), SessionAction::RemovedFromSession);
    }

    #[test]
    fn actions_in_words_drop_the_group() {
        assert_eq!(TaskAction::Completed.words(), "completed");
        assert_eq!(ProductAction::StatusChanged.words(), "status changed");
        assert_eq!(WorkUnitAction::WorkUnitStatusChanged.words(), "status changed");
        assert_eq!(UserAction::UserReInvited.words(), "re invited");
        assert_eq!(UserAction::ProductVendorAdded.words(), "product vendor added");
        assert_eq!(TaskAction::TaskSoftRejected.words(), "soft rejected");
        assert_eq!(JobAction::DeadlineUpdated.words(), "deadline updated");
        assert_eq!(TaskAction::parse("Teleported").words(), "Teleported", "unknown: as sent");
        assert_eq!(SessionAction::KNOWN, [SessionAction::AddedToSession, SessionAction::RemovedFromSession]);
    }

    #[test]
    fn unknown_actions_are_kept_as_sent() {
        let action = TaskAction::parse("Teleported");
        assert_eq!(action, TaskAction::Other("Teleported".into()));
        assert_eq!(action.name(), "Teleported");
        // The bare prefix is not an action of its own.
        assert_eq!(ProductAction::parse("Product"), ProductAction::Other("Product".into()));
        assert_eq!(TaskAction::parse(""), TaskAction::Other(String::new()));
    }
}

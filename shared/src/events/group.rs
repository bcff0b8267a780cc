//! The seven event groups, their queue names, and the lenient matching of `EventGroupName`.

use std::fmt;
use std::str::FromStr;

/// A Creative Force event group. Each has its own queue and its own consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventGroup {
    /// `product`
    Product,
    /// `sample`
    Sample,
    /// `user`
    User,
    /// `task`
    Task,
    /// `work unit` (normalised `work-unit`)
    WorkUnit,
    /// `Job` (normalised `job`)
    Job,
    /// `session`
    Session,
}

/// `EventGroupName` is not one of the seven groups.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event group {0:?}")]
pub struct UnknownGroup(pub String);

impl EventGroup {
    /// Every group, in the order of the reference.
    pub const ALL: [EventGroup; 7] = [
        EventGroup::Product,
        EventGroup::Sample,
        EventGroup::User,
        EventGroup::Task,
        EventGroup::WorkUnit,
        EventGroup::Job,
        EventGroup::Session,
    ];

    /// The normalised name: `product`, `sample`, `user`, `task`, `work-unit`, `job`,
    /// `session`. Used in queue names, logs, metrics and the `cfwh dev` lines.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Product => "product",
            Self::Sample => "sample",
            Self::User => "user",
            Self::Task => "task",
            Self::WorkUnit => "work-unit",
            Self::Job => "job",
            Self::Session => "session",
        }
    }

    /// The group's name with spaces, for humans (`X-CF-Event` reads "Task completed").
    pub const fn title(self) -> &'static str {
        match self {
            Self::Product => "Product",
            Self::Sample => "Sample",
            Self::User => "User",
            Self::Task => "Task",
            Self::WorkUnit => "Work unit",
            Self::Job => "Job",
            Self::Session => "Session",
        }
    }

    /// Matches a name the way Creative Force spells it (`work unit`, `Job`, …): case is
    /// ignored, and so are spaces, `_` and `-`.
    pub fn parse(name: &str) -> Result<Self, UnknownGroup> {
        let mut key = [0u8; 16];
        let mut len = 0;
        for b in name.bytes().filter(|b| !matches!(b, b' ' | b'_' | b'-')) {
            if len == key.len() {
                return Err(UnknownGroup(name.to_owned()));
            }
            key[len] = b.to_ascii_lowercase();
            len += 1;
        }
        Ok(match &key[..len] {
            b"product" => Self::Product,
            b"sample" => Self::Sample,
            b"user" => Self::User,
            b"task" => Self::Task,
            b"workunit" => Self::WorkUnit,
            b"job" => Self::Job,
            b"session" => Self::Session,
            _ => return Err(UnknownGroup(name.to_owned())),
        })
    }
}

impl fmt::Display for EventGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventGroup {
    type Err = UnknownGroup;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for EventGroup {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EventGroup {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// Where a message goes: a group's queue, or `unrouted` for authentic bodies that
/// cannot be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// The queue of one event group.
    Group(EventGroup),
    /// The quarantine queue.
    Unrouted,
}

impl Route {
    /// Every route: the seven groups, then `unrouted`.
    pub const ALL: [Route; 8] = [
        Route::Group(EventGroup::Product),
        Route::Group(EventGroup::Sample),
        Route::Group(EventGroup::User),
        Route::Group(EventGroup::Task),
        Route::Group(EventGroup::WorkUnit),
        Route::Group(EventGroup::Job),
        Route::Group(EventGroup::Session),
        Route::Unrouted,
    ];

    /// `product` … `session`, or `unrouted`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Group(group) => group.as_str(),
            Self::Unrouted => "unrouted",
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--group product|…|work-unit|…`: the groups' own names, with the spellings Creative
/// Force sends as aliases.
#[cfg(feature = "clap")]
impl clap::ValueEnum for EventGroup {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let value = clap::builder::PossibleValue::new(self.as_str());
        Some(match self {
            Self::WorkUnit => value.aliases(["work_unit", "workunit", "work unit"]),
            _ => value,
        })
    }
}

/// `--group`: a group's queue, or `unrouted`.
#[cfg(feature = "clap")]
impl clap::ValueEnum for Route {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        match self {
            Self::Group(group) => group.to_possible_value(),
            Self::Unrouted => Some(clap::builder::PossibleValue::new(self.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spellings_creative_force_sends() {
        for (name, group) in [
            ("product", EventGroup::Product),
            ("sample", EventGroup::Sample),
            ("user", EventGroup::User),
            ("task", EventGroup::Task),
            ("work unit", EventGroup::WorkUnit),
            ("Job", EventGroup::Job),
            ("session", EventGroup::Session),
            ("WorkUnit", EventGroup::WorkUnit),
            ("work_unit", EventGroup::WorkUnit),
            ("work-unit", EventGroup::WorkUnit),
            ("TASK", EventGroup::Task),
            (" Product ", EventGroup::Product),
        ] {
            assert_eq!(EventGroup::parse(name), Ok(group), "{name}");
        }
    }

    #[test]
    fn normalised_names_round_trip() {
        let names: Vec<&str> = EventGroup::ALL.iter().map(|g| g.as_str()).collect();
        assert_eq!(names, ["product", "sample", "user", "task", "work-unit", "job", "session"]);
        for group in EventGroup::ALL {
            assert_eq!(EventGroup::parse(group.as_str()), Ok(group));
            assert_eq!(EventGroup::parse(group.title()), Ok(group));
        }
    }

    #[test]
    fn unknown_names_are_rejected() {
        for name in ["", "products", "work", "unit", "jobs", "ta sk x", "productproductproduct", "séssion"] {
            assert!(EventGroup::parse(name).is_err(), "{name}");
        }
    }
}

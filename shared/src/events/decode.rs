//! The typed events' decoders: one pass over the body's keys, each documented name (or
//! one of its spellings) read into its field by its lenient reader, the envelope's fields
//! read in place, anything else kept in `extra`.
//!
//! `#[serde(flatten)]` would do the same by first copying every key and value of the body
//! into a buffer and then deserializing each part from it: about twice the work per event,
//! on the path every event takes. The derived `Serialize` keeps its flatten (writing is not
//! on that path), so an event writes exactly the keys it was read from.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::baseline::JsonType;
use super::drift::{self, Seen};
use super::group::EventGroup;
use super::lenient;
use super::models::{Actor, Envelope, PlannedTimeSlot, ProductRef};

/// A key of the body, borrowed from it when it has no escapes.
pub(crate) struct Key<'de>(pub Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// A lenient reader of [`lenient`] (or of this module) as a [`DeserializeSeed`], so that a
/// decoder reads a field's value with it straight from the body.
macro_rules! seeds {
    ($($(#[$doc:meta])* $seed:ident => $ty:ty = $read:path;)+) => {$(
        $(#[$doc])*
        pub(crate) struct $seed;
        impl<'de> DeserializeSeed<'de> for $seed {
            type Value = $ty;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<$ty, D::Error> {
                $read(d)
            }
        }
    )+};
}

seeds! {
    /// Optional text ([`lenient::text`]).
    Text => Option<String> = lenient::text;
    /// An optional integer ([`lenient::int`]).
    Int => Option<i64> = lenient::int;
    /// An actor or assignee ([`actor`]).
    ActorField => Option<Actor> = actor;
    /// A sample's products ([`products`]).
    Products => Vec<ProductRef> = products;
    /// A session's time slots ([`time_slots`]).
    TimeSlots => Vec<PlannedTimeSlot> = time_slots;
}

/// A "JSON literal" field ([`lenient::json`]).
pub(crate) struct Json<T>(pub PhantomData<T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Json<T> {
    type Value = Option<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        lenient::json(d)
    }
}

/// A seed whose value's JSON type is written to `into` as the value is read: how a decoder
/// sees drift in types ([`drift`]) without a second look at the body.
pub(crate) struct Observe<'a, S> {
    pub seed: S,
    pub into: &'a mut JsonType,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Observe<'_, S> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Observer { inner: d, into: self.into })
    }
}

/// A deserializer of a self-describing format (JSON) that hands every request to its
/// `deserialize_any`, with a visitor that notes the type it meets.
struct Observer<'a, D> {
    inner: D,
    into: &'a mut JsonType,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Observer<'_, D> {
    type Error = D::Error;
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(Observing { inner: visitor, into: self.into })
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

struct Observing<'a, V> {
    inner: V,
    into: &'a mut JsonType,
}

macro_rules! observed {
    ($($method:ident($($arg:ident: $ty:ty)?) => $kind:ident;)+) => {$(
        fn $method<E: de::Error>(self, $($arg: $ty)?) -> Result<V::Value, E> {
            *self.into = JsonType::$kind;
            self.inner.$method($($arg)?)
        }
    )+};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Observing<'_, V> {
    type Value = V::Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }
    observed! {
        visit_bool(v: bool) => Boolean;
        visit_i64(v: i64) => Integer;
        visit_u64(v: u64) => Integer;
        visit_f64(v: f64) => Number;
        visit_str(v: &str) => String;
        visit_borrowed_str(v: &'de str) => String;
        visit_string(v: String) => String;
        visit_unit() => Null;
        visit_none() => Null;
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(d)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        *self.into = JsonType::Object;
        self.inner.visit_map(map)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        *self.into = JsonType::Array;
        self.inner.visit_seq(seq)
    }
}

/// `Actor` or `Assignee`: an object, a bare user ID, or empty (`{}`, `""`, `null`) → `None`.
pub(crate) fn actor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Actor>, D::Error> {
    struct ActorVisitor;
    impl<'de> Visitor<'de> for ActorVisitor {
        type Value = Option<Actor>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object, a user ID, or nothing")
        }
        fn visit_str<E: de::Error>(self, id: &str) -> Result<Self::Value, E> {
            Ok((!id.trim().is_empty()).then(|| Actor { user_id: Some(id.to_owned()), extra: Default::default() }))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let actor = <Actor as de::Deserialize>::deserialize(de::value::MapAccessDeserializer::new(map))?;
            Ok((actor.user_id.is_some() || !actor.extra.is_empty()).then_some(actor))
        }
    }
    d.deserialize_any(ActorVisitor)
}

/// A sample's products: a list, or a string holding one; absent or empty → none.
fn products<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ProductRef>, D::Error> {
    lenient::json(d).map(Option::unwrap_or_default)
}

/// A session's time slots: one or a list, as JSON or inside a string.
fn time_slots<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PlannedTimeSlot>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Slots {
        Many(Vec<PlannedTimeSlot>),
        One(PlannedTimeSlot),
    }
    Ok(match lenient::json::<D, Slots>(d)? {
        Some(Slots::Many(slots)) => slots,
        Some(Slots::One(slot)) => vec![slot],
        None => Vec::new(),
    })
}

/// The envelope's fields as a decoder meets them among the event's.
#[derive(Default)]
pub(crate) struct EnvelopeFields {
    payload_id: Option<String>,
    event_group: Option<EventGroup>,
    event_datetime_utc: Option<i64>,
    actor: Option<Option<Actor>>,
}

impl EnvelopeFields {
    /// Reads the value of `key` when it is an envelope field; false when it is not.
    pub(crate) fn read<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        seen: &mut Seen,
    ) -> Result<bool, A::Error> {
        fn once<T, E: de::Error>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), E> {
            if slot.is_some() {
                return Err(E::duplicate_field(name));
            }
            *slot = Some(value);
            Ok(())
        }
        match key {
            "PayloadId" => {
                let value = map
                    .next_value_seed(Observe { seed: Text, into: &mut seen.types[drift::PAYLOAD_ID] })?
                    .ok_or_else(|| de::Error::custom("text is missing"))?;
                once(&mut self.payload_id, "PayloadId", value)?;
            }
            "EventGroupName" => {
                let seed = Observe { seed: PhantomData, into: &mut seen.types[drift::EVENT_GROUP_NAME] };
                once(&mut self.event_group, "EventGroupName", map.next_value_seed(seed)?)?
            }
            "EventDatetimeUtc" => {
                let value = map
                    .next_value_seed(Observe { seed: Int, into: &mut seen.types[drift::EVENT_DATETIME_UTC] })?
                    .ok_or_else(|| de::Error::custom("integer is empty"))?;
                once(&mut self.event_datetime_utc, "EventDatetimeUtc", value)?;
            }
            "Actor" => {
                let seed = Observe { seed: ActorField, into: &mut seen.types[drift::ACTOR] };
                once(&mut self.actor, "Actor", map.next_value_seed(seed)?)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The envelope, or which of its required fields is missing.
    pub(crate) fn finish<E: de::Error>(self) -> Result<Envelope, E> {
        Ok(Envelope {
            payload_id: self.payload_id.ok_or_else(|| E::missing_field("PayloadId"))?,
            event_group: self.event_group.ok_or_else(|| E::missing_field("EventGroupName"))?,
            event_datetime_utc: self.event_datetime_utc.ok_or_else(|| E::missing_field("EventDatetimeUtc"))?,
            actor: self.actor.flatten(),
        })
    }
}

/// `Deserialize` for a model: each field read by its seed under its documented name or a
/// spelling Creative Force also sends (`"ClientId" | "ClientID"`), a name met twice an
/// error, every other key kept in `extra`, and the JSON type of each documented field noted
/// in a [`Seen`] for the drift check. `event` models also read their envelope's fields in
/// place and require `Action`. Each model gets `FIELDS` (its documented fields' names, in
/// the order of their slots) and `decode_seen` (its decoder, noting types in `seen`).
macro_rules! decoder {
    // An event's fields are observed (their JSON types are its drift); a nested object's are
    // not (its drift is its `extra`), which keeps the wrappers out of the nested decoders.
    (@read observe, $ty:ident, $map:ident, $seen:ident, $first:literal, $seed:expr) => {{
        const SLOT: usize = $crate::events::drift::slot(<$ty>::FIELDS, $first);
        $map.next_value_seed($crate::events::decode::Observe { seed: $seed, into: &mut $seen.types[SLOT] })?
    }};
    (@read plain, $ty:ident, $map:ident, $seen:ident, $first:literal, $seed:expr) => {{
        let _ = &$seen;
        $map.next_value_seed($seed)?
    }};
    (@visit $mode:ident, $ty:ident, $map:ident, $seen:ident, $key:ident, $extra:ident, [$($pre:tt)*], [$($other:tt)*], [$($build:tt)*],
        $($field:ident: $seed:expr => $first:literal $(| $alias:literal)*),*) => {{
        use serde::de::Error as _;
        $($pre)*
        $(let mut $field = None;)*
        let mut $extra = serde_json::Map::new();
        while let Some($crate::events::decode::Key($key)) = $map.next_key()? {
            match $key.as_ref() {
                $($first $(| $alias)* => {
                    if $field.is_some() {
                        return Err(A::Error::duplicate_field($first));
                    }
                    $field = Some(decoder!(@read $mode, $ty, $map, $seen, $first, $seed));
                })*
                _ => {
                    $($other)*
                    $extra.insert($key.into_owned(), $map.next_value()?);
                }
            }
        }
        Ok($ty { $($build)* $($field: $field.unwrap_or_default(),)* $extra })
    }};
    (@impl $ty:ident, [$($first:literal),*], |$map:ident, $seen:ident| $body:expr) => {
        impl $ty {
            /// The documented fields its decoder reads, by their first names (the drift
            /// check reads an event's; a nested object's are there for symmetry).
            #[allow(dead_code)]
            pub(crate) const FIELDS: &'static [&'static str] = &[$($first),*];

            /// Decodes one, noting the JSON type of each documented field in `seen`.
            pub(crate) fn decode_seen<'de, D: serde::Deserializer<'de>>(
                d: D,
                seen: &mut $crate::events::drift::Seen,
            ) -> Result<Self, D::Error> {
                struct ObjectVisitor<'s>(&'s mut $crate::events::drift::Seen);
                impl<'de> serde::de::Visitor<'de> for ObjectVisitor<'_> {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a JSON object (", stringify!($ty), ")"))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut $map: A) -> Result<$ty, A::Error> {
                        let $seen = self.0;
                        $body
                    }
                }
                d.deserialize_map(ObjectVisitor(seen))
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::decode_seen(d, &mut Default::default())
            }
        }
    };
    (event $ty:ident, action: $action:ty, {
        $($field:ident: $seed:expr => $first:literal $(| $alias:literal)*),* $(,)?
    }) => {
        decoder!(@impl $ty, [$($first),*], |map, seen| decoder!(@visit observe, $ty, map, seen, key, extra,
            [let mut envelope = $crate::events::decode::EnvelopeFields::default();
             let mut action: Option<$action> = None;],
            [if key == "Action" {
                 if action.is_some() {
                     return Err(A::Error::duplicate_field("Action"));
                 }
                 let into = &mut seen.types[$crate::events::drift::ACTION];
                 action = Some(map.next_value_seed($crate::events::decode::Observe { seed: std::marker::PhantomData, into })?);
                 continue;
             }
             if envelope.read(&key, &mut map, seen)? {
                 continue;
             }],
            [envelope: envelope.finish()?, action: action.ok_or_else(|| A::Error::missing_field("Action"))?,],
            $($field: $seed => $first $(| $alias)*),*));
    };
    (object $ty:ident, {
        $($field:ident: $seed:expr => $first:literal $(| $alias:literal)*),* $(,)?
    }) => {
        decoder!(@impl $ty, [$($first),*], |map, seen| decoder!(@visit plain, $ty, map, seen, key, extra, [], [], [],
            $($field: $seed => $first $(| $alias)*),*));
    };
}
pub(crate) use decoder;

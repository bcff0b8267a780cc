//! Envelope and typed decoding of any bytes: no panic; a body the envelope routes to a
//! group decodes as that group's typed event or fails with an error, never a panic.
#![no_main]

use cf_webhooks::events::{
    routing, EventGroup, GroupEvent, JobEvent, ProductEvent, SampleEvent, SessionEvent, TaskEvent, UserEvent,
    WorkUnitEvent,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let routed = routing::parse(data).map(|r| r.group);
    let _ = ProductEvent::decode(data);
    let _ = SampleEvent::decode(data);
    let _ = UserEvent::decode(data);
    let _ = TaskEvent::decode(data);
    let _ = WorkUnitEvent::decode(data);
    let _ = JobEvent::decode(data);
    let _ = SessionEvent::decode(data);
    if let Ok(group) = routed {
        let decoded_group = match group {
            EventGroup::Product => ProductEvent::decode(data).map(|e| e.envelope().event_group),
            EventGroup::Sample => SampleEvent::decode(data).map(|e| e.envelope().event_group),
            EventGroup::User => UserEvent::decode(data).map(|e| e.envelope().event_group),
            EventGroup::Task => TaskEvent::decode(data).map(|e| e.envelope().event_group),
            EventGroup::WorkUnit => WorkUnitEvent::decode(data).map(|e| e.envelope().event_group),
            EventGroup::Job => JobEvent::decode(data).map(|e| e.envelope().event_group),
            EventGroup::Session => SessionEvent::decode(data).map(|e| e.envelope().event_group),
        };
        if let Ok(decoded) = decoded_group {
            assert_eq!(decoded, group, "the envelope and the typed event disagree on the group");
        }
    }
});

//! X-Ray traces across the queue: the trace header ingest receives with its invocation
//! travels with the message (`AWSTraceHeader`), and each consumer record continues that
//! trace with a segment of its own, sent to the X-Ray daemon Lambda runs beside the
//! function (`AWS_XRAY_DAEMON_ADDRESS`).
//!
//! The header (`Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`)
//! is read and written by OpenTelemetry's X-Ray propagator, and IDs come from its X-Ray
//! ID generator. The segment is one JSON line written here: the crate's X-Ray exporter
//! needs the OpenTelemetry SDK's span pipeline and batch processor for what is, per
//! record, one datagram (BENCHMARKS.md, *Traces*).

use std::net::{SocketAddr, UdpSocket};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use opentelemetry_aws::trace::xray_propagator::{span_context_from_str, span_context_to_string};
use opentelemetry_aws::trace::XrayIdGenerator;
use opentelemetry_sdk::trace::IdGenerator as _;
use serde_json::json;

/// The message system attribute SQS and Lambda carry a trace in.
pub const AWS_TRACE_HEADER: &str = "AWSTraceHeader";
/// The variable Lambda names its X-Ray daemon in (`127.0.0.1:2000`, or
/// `udp:127.0.0.1:2000 tcp:127.0.0.1:2000`).
pub const DAEMON_ADDRESS: &str = "AWS_XRAY_DAEMON_ADDRESS";

/// The parts of a trace header a segment needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    /// `1-<8 hex: epoch seconds>-<24 hex>`.
    pub trace_id: String,
    /// The segment (or subsegment) this work descends from.
    pub parent_id: Option<String>,
    /// Whether the trace is recorded: an unsampled one is carried on, never sent.
    pub sampled: bool,
}

impl TraceHeader {
    /// Reads a header (OpenTelemetry's X-Ray propagator); `None` when it has no valid
    /// `Root`.
    pub fn parse(header: &str) -> Option<Self> {
        let context = span_context_from_str(header.trim())?;
        if context.trace_id() == TraceId::INVALID {
            return None;
        }
        let parent = (context.span_id() != SpanId::INVALID).then(|| format!("{:016x}", context.span_id()));
        Some(Self { trace_id: xray_trace_id(context.trace_id()), parent_id: parent, sampled: context.is_sampled() })
    }

    /// The header text (OpenTelemetry's X-Ray propagator when there is a parent).
    pub fn to_header(&self) -> String {
        let sampled = if self.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let context = self.parent_id.as_deref().and_then(|parent| {
            let hex: String = self.trace_id.split('-').skip(1).collect();
            let trace = TraceId::from_hex(&hex).ok()?;
            Some(SpanContext::new(trace, SpanId::from_hex(parent).ok()?, sampled, true, TraceState::default()))
        });
        context
            .as_ref()
            .and_then(span_context_to_string)
            .unwrap_or_else(|| format!("Root={};Sampled={}", self.trace_id, if self.sampled { 1 } else { 0 }))
    }
}

/// The header of a new, sampled trace with a parent of its own, as if a segment had begun
/// it (X-Ray's ID generator: the trace ID starts with the time): `cfwh dev` starts one for
/// every delivery that came without one, written at once rather than through the
/// propagator's span context (a third of the trace's cost there).
pub fn new_root_header() -> String {
    use std::fmt::Write;
    // X-Ray's trace ID: the time in seconds (32 bits), then 96 random bits; the random
    // bits from the SDK's generator, directly (the X-Ray generator formats and parses hex
    // to build the same number).
    let ids = opentelemetry_sdk::trace::RandomIdGenerator::default();
    let random = u128::from_be_bytes(ids.new_trace_id().to_bytes());
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as u32;
    // One allocation, one formatting pass.
    let mut header = String::with_capacity(78);
    let _ = write!(
        header,
        "Root=1-{seconds:08x}-{:08x}{:016x};Parent={:016x};Sampled=1",
        (random >> 64) as u32,
        random as u64,
        u64::from_be_bytes(ids.new_span_id().to_bytes())
    );
    header
}

/// The trace ID (`Root`) a header names, when it is one X-Ray writes (`1-<8 hex>-<24
/// hex>`): what a record line shows, read without building a span context. Segments are
/// built from [`TraceHeader::parse`].
pub fn root_of(header: &str) -> Option<&str> {
    let root = header.split(';').find_map(|part| part.trim().strip_prefix("Root="))?.trim();
    let bytes = root.as_bytes();
    let shaped = bytes.len() == 35
        && root.starts_with("1-")
        && bytes[10] == b'-'
        && bytes.iter().enumerate().all(|(i, b)| i < 2 || i == 10 || b.is_ascii_hexdigit());
    shaped.then_some(root)
}

/// `1-<8 hex>-<24 hex>`, X-Ray's way of writing a 128-bit trace ID.
fn xray_trace_id(id: TraceId) -> String {
    let hex = format!("{id:032x}");
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

/// What one record's segment says.
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    /// The segment's name: the function's.
    pub name: &'a str,
    /// The trace it continues.
    pub trace: &'a TraceHeader,
    /// When the work began and ended, seconds since the Unix epoch.
    pub start: f64,
    /// See `start`.
    pub end: f64,
    /// Group, action, `PayloadId`, outcome: searchable in X-Ray (`annotation.outcome = "failed"`).
    pub annotations: Vec<(&'static str, String)>,
    /// True when the record failed: the segment is marked as an error.
    pub failed: bool,
}

impl Segment<'_> {
    /// The UDP datagram the daemon takes: a header line, then the segment document.
    pub fn datagram(&self) -> String {
        let annotations: serde_json::Map<String, serde_json::Value> =
            self.annotations.iter().map(|(k, v)| ((*k).to_owned(), v.clone().into())).collect();
        let mut document = json!({
            "name": self.name,
            "id": format!("{:016x}", XrayIdGenerator::default().new_span_id()),
            "trace_id": self.trace.trace_id,
            "start_time": self.start,
            "end_time": self.end,
            "origin": "AWS::Lambda::Function",
            "annotations": annotations,
        });
        if let Some(parent) = &self.trace.parent_id {
            document["parent_id"] = parent.clone().into();
        }
        if self.failed {
            document["error"] = true.into();
        }
        format!("{{\"format\":\"json\",\"version\":1}}\n{document}")
    }
}

/// Seconds since the Unix epoch, now, as X-Ray writes times.
pub fn now_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The daemon Lambda runs beside a function with active tracing.
#[derive(Debug)]
pub struct Daemon {
    socket: UdpSocket,
    address: SocketAddr,
}

impl Daemon {
    /// The daemon at `address`: `host:port`, or `udp:host:port tcp:host:port`.
    pub fn at(address: &str) -> Option<Self> {
        let udp = address.split_whitespace().find_map(|part| part.strip_prefix("udp:")).unwrap_or(address.trim());
        let address: SocketAddr = udp.parse().ok()?;
        let bind: SocketAddr = if address.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(bind).ok()?;
        socket.set_nonblocking(true).ok()?;
        Some(Self { socket, address })
    }

    /// Sends a segment of a sampled trace; an unsampled one, or a send that fails (a
    /// full buffer), is dropped: tracing never holds up a record.
    pub fn send(&self, segment: &Segment<'_>) {
        if segment.trace.sampled {
            let _ = self.socket.send_to(segment.datagram().as_bytes(), self.address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_as_x_ray_writes_them() {
        let header =
            TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1").unwrap();
        assert_eq!(header.trace_id, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(header.parent_id.as_deref(), Some("53995c3f42cd8ad8"));
        assert!(header.sampled);
        assert_eq!(header.to_header(), "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
        let lineage =
            TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0;Lineage=a87bd80c:1").unwrap();
        assert!(!lineage.sampled && lineage.parent_id.is_none());
        for bad in ["", "Root=1-xyz-abc", "Parent=53995c3f42cd8ad8"] {
            assert_eq!(TraceHeader::parse(bad), None, "{bad}");
        }
        let written = new_root_header();
        let read = TraceHeader::parse(&written).unwrap();
        // X-Ray reads the ID's first 8 hex digits as its start time, in seconds.
        let started = u64::from_str_radix(&read.trace_id[2..10], 16).unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!(now.abs_diff(started) <= 5, "{written}");
        assert_ne!(new_root_header()[7..], written[7..], "random after the time");
        assert!(read.sampled && read.parent_id.is_some());
        assert_eq!(read.to_header(), written, "the propagator writes it the same way");
        // The record line's quick read agrees with the propagator's.
        for header in [written.as_str(), "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0", "Root=1-xyz-abc", ""] {
            assert_eq!(root_of(header).map(str::to_owned), TraceHeader::parse(header).map(|t| t.trace_id), "{header}");
        }
    }

    #[test]
    fn a_segment_names_its_trace_parent_and_annotations() {
        let trace =
            TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1").unwrap();
        let segment = Segment {
            name: "cf-consume-task",
            trace: &trace,
            start: 1.5,
            end: 2.0,
            annotations: vec![("outcome", "failed".into())],
            failed: true,
        };
        let datagram = segment.datagram();
        let (header, document) = datagram.split_once('\n').unwrap();
        assert_eq!(header, r#"{"format":"json","version":1}"#);
        let document: serde_json::Value = serde_json::from_str(document).unwrap();
        assert_eq!(document["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(document["parent_id"], "53995c3f42cd8ad8");
        assert_eq!(document["id"].as_str().unwrap().len(), 16);
        assert_eq!(
            (document["annotations"]["outcome"].as_str(), document["error"].as_bool()),
            (Some("failed"), Some(true))
        );
    }

    #[test]
    fn the_daemon_address_is_read_as_lambda_writes_it() {
        assert_eq!(Daemon::at("127.0.0.1:2000").unwrap().address, "127.0.0.1:2000".parse().unwrap());
        assert_eq!(
            Daemon::at("udp:169.254.79.129:2000 tcp:169.254.79.129:2000").unwrap().address,
            "169.254.79.129:2000".parse().unwrap()
        );
        assert!(Daemon::at("nowhere").is_none());
    }
}

//! Frame encoding on the publish path: `json::minify` of the published `data` plus SSE framing
//! (`event_frame` + `fill_id` + freeze into the one shared `Bytes`), for a ~100 B and a 64 KiB
//! payload, each sent compact and pretty-printed.
//!
//! Variants, each producing the same frame bytes for compact input:
//! - `frame_only`: `event_frame` + `fill_id` + freeze of already minified data (throughput is
//!   still counted against the raw payload size).
//! - `minify_frame`: what `Hub::publish` and the publish handler do after validation.
//! - `validate_minify_frame`: the same plus a `RawValue` parse, the validation the publish handler
//!   does anyway; this is the honest comparison with the baseline, whose parse is its validation.
//! - `baseline_value_roundtrip`: the obvious alternative, `serde_json` parse to `Value` and
//!   `to_vec` back, then the same framing. (It is also not byte-exact: without
//!   `arbitrary_precision` it rewrites `1.10` as `1.1` and large integers as floats.)

use bytes::Bytes;
use castbrick_push::id::EventId;
use castbrick_push::json;
use castbrick_push::sse::frame::{event_frame, fill_id};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::value::RawValue;
use serde_json::Value;

/// The server's allocator (`main.rs`), so allocation costs match production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENT: &str = "order.updated";
const ID: EventId = EventId(0x0190_f5b2_7c1e_7a3b_8c4d_1234_5678_90ab);

fn frame_of(data: &[u8]) -> Bytes {
    let mut f = event_frame(EVENT, data);
    fill_id(&mut f, ID);
    f.freeze()
}

/// A ~100 B order update, compact.
fn small() -> String {
    let s = r#"{"order":"ord_8f3a2c91","status":"paid","amount":19.90,"currency":"EUR","items":3,"note":"gift wrap"}"#;
    s.to_string()
}

/// An array of records, compact, just under 64 KiB (the default `max_body_bytes`, which also
/// bounds the request wrapping it): strings with spaces and escapes, decimals, nested objects.
fn large() -> String {
    let mut out = String::from("[");
    let mut i = 0u32;
    loop {
        let rec = format!(
            r#"{{"id":{i},"sku":"SKU-{i:06}","name":"Widget \"{i}\" – size M","price":{}.{:02},"tags":["a b","c\\d"],"stock":{{"eu":{},"us":{}}}}}"#,
            i % 500,
            i % 100,
            i * 7 % 1000,
            i * 13 % 1000
        );
        if out.len() + rec.len() + 2 > 64 * 1024 - 1024 {
            break;
        }
        if i > 0 {
            out.push(',');
        }
        out.push_str(&rec);
        i += 1;
    }
    out.push(']');
    out
}

/// Same value, pretty-printed with serde_json's two-space indent (key order preserved).
fn pretty(compact: &str) -> String {
    let v: Value = serde_json::from_str(compact).expect("valid");
    serde_json::to_string_pretty(&v).expect("serialize")
}

fn frame(c: &mut Criterion) {
    let small = small();
    let large = large();
    let payloads = [
        ("small_compact", small.clone()),
        ("small_pretty", pretty(&small)),
        ("64k_compact", large.clone()),
        ("64k_pretty", pretty(&large)),
    ];
    for (name, p) in &payloads {
        // All variants must frame the same bytes where the baseline is byte-exact.
        let ours = frame_of(&json::minify(p.as_bytes()));
        if name.ends_with("compact") {
            assert_eq!(&ours[..], &frame_of(p.as_bytes())[..], "{name}");
        }
        eprintln!("payload {name}: {} bytes", p.len());
    }

    let mut g = c.benchmark_group("frame");
    for (name, p) in &payloads {
        let raw = p.as_bytes();
        g.throughput(Throughput::Bytes(raw.len() as u64));
        let minified = json::minify(raw);
        g.bench_with_input(
            BenchmarkId::new("frame_only", name),
            &minified[..],
            |b, data| b.iter(|| frame_of(black_box(data))),
        );
        g.bench_with_input(BenchmarkId::new("minify_frame", name), raw, |b, raw| {
            b.iter(|| frame_of(&json::minify(black_box(raw))))
        });
        g.bench_with_input(
            BenchmarkId::new("validate_minify_frame", name),
            raw,
            |b, raw| {
                b.iter(|| {
                    let v: &RawValue = serde_json::from_slice(black_box(raw)).expect("valid");
                    frame_of(&json::minify(v.get().as_bytes()))
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("baseline_value_roundtrip", name),
            raw,
            |b, raw| {
                b.iter(|| {
                    let v: Value = serde_json::from_slice(black_box(raw)).expect("valid");
                    frame_of(&serde_json::to_vec(&v).expect("serialize"))
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, frame);
criterion_main!(benches);

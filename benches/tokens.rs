//! Token signing and verification, and the API-key check: the per-request auth cost of
//! `POST /push/tokens`, `POST /push/publish` and `GET /push/stream`.
//!
//! Baselines: the bare HMAC-SHA256 verify (`ring`) that every token verify must pay, so the rest
//! of the figure is base64 and JSON; and a plain-text `==` key list for the API key check, which
//! is what a server that stores keys in the clear and compares them early-exit would do.

use castbrick_push::auth::{ApiKeys, Claims, TokenSigner};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

/// The server's allocator (`main.rs`), so allocation costs match production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "bench-signing-secret-0123456789abcdef";
const OLD_SECRET: &str = "bench-old-signing-secret-0123456789ab";
const NOW: u64 = 1_700_000_100;

fn claims() -> Claims {
    Claims {
        channels: vec!["orders".into(), "org/42/alerts".into()],
        sub: Some("user-1234".into()),
        iat: 1_700_000_000,
        exp: 1_700_003_600,
    }
}

fn tokens(c: &mut Criterion) {
    let signer = TokenSigner::new(&[SECRET], 4096, 64);
    let claims = claims();
    let token = signer.sign(&claims);
    assert_eq!(signer.verify(&token, NOW), Ok(claims.clone()));

    // After a rotation the new secret is tried first, so an old token costs two HMACs.
    let rotated = TokenSigner::new(&[SECRET, OLD_SECRET], 4096, 64);
    let old_token = TokenSigner::new(&[OLD_SECRET], 4096, 64).sign(&claims);
    assert!(rotated.verify(&old_token, NOW).is_ok());

    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let (signed, sig_b64) = token.rsplit_once('.').expect("three parts");
    let sig = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig_b64)
            .expect("signature")
    };

    let mut g = c.benchmark_group("tokens");
    g.bench_function("sign", |b| b.iter(|| signer.sign(black_box(&claims))));
    g.bench_function("verify", |b| {
        b.iter(|| signer.verify(black_box(&token), NOW).expect("valid"))
    });
    g.bench_function("verify_old_secret_after_rotation", |b| {
        b.iter(|| rotated.verify(black_box(&old_token), NOW).expect("valid"))
    });
    g.bench_function("verify_bad_signature", |b| {
        let mut bad = token.clone();
        let last = bad.pop().expect("non-empty");
        bad.push(if last == 'A' { 'B' } else { 'A' });
        b.iter(|| signer.verify(black_box(&bad), NOW).expect_err("tampered"))
    });
    g.bench_function("baseline_bare_hmac_verify", |b| {
        b.iter(|| ring::hmac::verify(&key, black_box(signed.as_bytes()), black_box(&sig)).is_ok())
    });
    g.finish();
}

fn api_keys(c: &mut Criterion) {
    // Two keys: the usual state during a key rotation.
    let listed = [
        "cb_live_5f0c2a9e8d7b6a5f4e3d2c1b0a9f8e7d",
        "cb_live_0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    ];
    let keys = ApiKeys::new(&listed);
    let plain: Vec<String> = listed.iter().map(|k| k.to_string()).collect();
    let hit = listed[1];
    let miss = "cb_live_0a1b2c3d4e5f60718293a4b5c6d7e8f0";

    let mut g = c.benchmark_group("api_key");
    g.bench_function("verify_hit", |b| b.iter(|| keys.verify(black_box(hit))));
    g.bench_function("verify_miss", |b| b.iter(|| keys.verify(black_box(miss))));
    g.bench_function("baseline_plaintext_eq_hit", |b| {
        b.iter(|| plain.iter().any(|k| k == black_box(hit)))
    });
    g.bench_function("baseline_plaintext_eq_miss", |b| {
        b.iter(|| plain.iter().any(|k| k == black_box(miss)))
    });
    g.finish();
}

criterion_group!(benches, tokens, api_keys);
criterion_main!(benches);

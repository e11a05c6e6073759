//! Azure access tokens: validation of arbitrary text never panics and never accepts a token the
//! key did not sign; tokens generated from arbitrary names and claims validate back to the same
//! user and claims.
#![no_main]
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use talkback_core::azure::{
    encode_query_value, generate_token, AccessKey, TokenError, TokenRequest, TokenValidator,
};

const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

fuzz_target!(|data: &[u8]| {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let validator = TokenValidator::new(vec![AccessKey::new(KEY), AccessKey::new("second")])
        .with_leeway(Duration::ZERO);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 3 {
        // Arbitrary text as a token.
        0 => {
            let r = validator.validate(&text, "http://localhost/client/?hub=chat", now);
            if let Err(e) = r {
                let _ = e.to_string();
            }
        }
        // Arbitrary text as the audience of a real token: no panic, and a match only when the
        // audience is a URL.
        1 => {
            let token = generate_token(
                &AccessKey::new(KEY),
                &TokenRequest::new("http://localhost/client/?hub=chat"),
                now,
            )
            .unwrap();
            let _ = validator.validate(&token, &text, now);
        }
        // Arbitrary user id, hub and claim: generation then validation round-trips.
        _ => {
            let mut parts = text.splitn(3, '\u{1}');
            let user = parts.next().unwrap_or_default();
            let hub = parts.next().unwrap_or_default();
            let claim = parts.next().unwrap_or_default();
            let aud = format!(
                "http://localhost:8888/client/?hub={}",
                encode_query_value(hub)
            );
            let req = TokenRequest::new(aud.clone())
                .user_id(user)
                .claim(claim, claim)
                .lifetime(Duration::from_secs(u64::from(mode)));
            match generate_token(&AccessKey::new(KEY), &req, now) {
                Ok(token) => {
                    let v = validator
                        .validate(&token, &aud, now)
                        .expect("a generated token validates");
                    assert_eq!(v.user_id.as_deref(), Some(user));
                    assert!(token.len() <= 4096);
                    let forged = generate_token(&AccessKey::new("other"), &req, now).unwrap();
                    assert_eq!(
                        validator.validate(&forged, &aud, now),
                        Err(TokenError::BadSignature)
                    );
                    let later = now + Duration::from_secs(u64::from(mode) + 1);
                    assert!(matches!(
                        validator.validate(&token, &aud, later),
                        Err(TokenError::Expired { .. })
                    ));
                }
                Err(e) => assert!(matches!(e, TokenError::TooLong { .. }), "{e}"),
            }
        }
    }
});

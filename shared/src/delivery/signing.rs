//! Webhook signatures: `X-Wandb-Signature` and the Standard Webhooks `webhook-signature`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn hmac_base64(key: &[u8], parts: &[&[u8]]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `X-Wandb-Signature`: base64(HMAC-SHA256(key = the secret's UTF-8 bytes, body)).
pub fn wandb_signature(secret: &str, body: &[u8]) -> String {
    hmac_base64(secret.as_bytes(), &[body])
}

/// The Standard Webhooks key: the base64-decoded part of a `whsec_…` secret, else the
/// secret's UTF-8 bytes.
pub fn standard_webhooks_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| STANDARD.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// `webhook-signature`: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub fn standard_webhooks_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    format!(
        "v1,{}",
        hmac_base64(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wandb_signature_matches_openssl() {
        // printf '%s' '{"event_type":"DEPLOY"}' | openssl dgst -sha256 -hmac 'my-signing-secret' -binary | base64
        assert_eq!(
            wandb_signature("my-signing-secret", br#"{"event_type":"DEPLOY"}"#),
            "gKhGvF9lp9s/xUICu65Ypal2hYpOy/JV/s2ZI4hnAps="
        );
    }

    #[test]
    fn standard_webhooks_signature_matches_the_published_example() {
        // The example of the Standard Webhooks specification (and svix's documentation).
        let key = standard_webhooks_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let sig = standard_webhooks_signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn plain_secrets_are_used_as_utf8_bytes() {
        assert_eq!(standard_webhooks_key("plain"), b"plain".to_vec());
        assert_eq!(
            standard_webhooks_key("whsec_!!notbase64"),
            b"whsec_!!notbase64".to_vec()
        );
    }
}

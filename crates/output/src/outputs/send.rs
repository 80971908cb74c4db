//! One HTTP attempt of an output, and whether its failure is worth retrying.

use std::time::Duration;

use reqwest::StatusCode;

use super::retry::parse_retry_after;
use super::WireRequest;

pub(super) enum SendError {
    /// Worth retrying: network error, timeout, 408, 429, 5xx.
    Retryable {
        retry_after: Option<Duration>,
        what: String,
    },
    /// Not worth retrying: other 4xx, 3xx, an encoding bug.
    Permanent { what: String },
}

/// POSTs `req` once. The URL (it may hold a token) is never in the error.
pub(super) async fn send(
    client: &reqwest::Client,
    req: WireRequest,
    timeout: Duration,
) -> Result<(), SendError> {
    let resp = client
        .post(req.url.expose().clone())
        .headers(req.headers)
        .body(req.body)
        .timeout(timeout)
        .send()
        .await;
    match resp {
        // `without_url`: the URL may hold a token and must not be logged.
        Err(e) => Err(SendError::Retryable {
            retry_after: None,
            what: e.without_url().to_string(),
        }),
        Ok(resp) => {
            let status = resp.status();
            let retry_after = parse_retry_after(&resp);
            // Read the body so the connection can be reused; its content is not logged.
            let _ = resp.bytes().await;
            if status.is_success() {
                Ok(())
            } else if status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error()
            {
                Err(SendError::Retryable {
                    retry_after,
                    what: format!("HTTP {}", status.as_u16()),
                })
            } else {
                Err(SendError::Permanent {
                    what: format!("HTTP {}", status.as_u16()),
                })
            }
        }
    }
}

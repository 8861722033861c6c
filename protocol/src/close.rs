//! Close codes of graphql-transport-ws and the reasons the hub sends with them.

/// Invalid JSON, an unknown message type or a message of the wrong shape.
pub const BAD_REQUEST: u16 = 4400;
/// `subscribe` before `connection_ack`.
pub const UNAUTHORIZED: u16 = 4401;
/// `connection_init` rejected.
pub const FORBIDDEN: u16 = 4403;
/// The negotiated sub-protocol is not one the hub speaks.
pub const SUBPROTOCOL_NOT_ACCEPTABLE: u16 = 4406;
/// No `connection_init` within the configured timeout.
pub const CONNECTION_INIT_TIMEOUT: u16 = 4408;
/// `subscribe` with an id that is still active.
pub const SUBSCRIBER_ALREADY_EXISTS: u16 = 4409;
/// A second `connection_init`.
pub const TOO_MANY_INIT_REQUESTS: u16 = 4429;
/// The hub failed internally.
pub const INTERNAL_SERVER_ERROR: u16 = 4500;
/// Normal closure.
pub const NORMAL: u16 = 1000;
/// The hub is shutting down.
pub const GOING_AWAY: u16 = 1001;
/// A frame or message larger than the configured limit.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The client fell behind the outbound queue ("try again later"; clients retry it).
pub const TRY_AGAIN_LATER: u16 = 1013;

/// The longest reason a close frame can carry: 125 bytes of control payload less the code.
pub const MAX_REASON_BYTES: usize = 123;

/// A close code with its reason, the reason already cut to fit a close frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    pub code: u16,
    pub reason: String,
}

impl CloseFrame {
    /// A close frame whose reason is cut at a character boundary to at most 123 bytes.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > MAX_REASON_BYTES {
            let mut end = MAX_REASON_BYTES;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        CloseFrame { code, reason }
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(BAD_REQUEST, reason)
    }

    pub fn unauthorized() -> Self {
        Self::new(UNAUTHORIZED, "Unauthorized")
    }

    pub fn forbidden() -> Self {
        Self::new(FORBIDDEN, "Forbidden")
    }

    /// The client's token expired during the session (as Apollo Router and Hasura end it).
    pub fn token_expired() -> Self {
        Self::new(FORBIDDEN, "Token expired")
    }

    pub fn subprotocol_not_acceptable() -> Self {
        Self::new(SUBPROTOCOL_NOT_ACCEPTABLE, "Subprotocol not acceptable")
    }

    pub fn init_timeout() -> Self {
        Self::new(CONNECTION_INIT_TIMEOUT, "Connection initialisation timeout")
    }

    pub fn subscriber_exists(id: &str) -> Self {
        Self::new(SUBSCRIBER_ALREADY_EXISTS, format!("Subscriber for {id} already exists"))
    }

    pub fn too_many_init() -> Self {
        Self::new(TOO_MANY_INIT_REQUESTS, "Too many initialisation requests")
    }

    pub fn going_away() -> Self {
        Self::new(GOING_AWAY, "Server shutting down")
    }

    pub fn message_too_big() -> Self {
        Self::new(MESSAGE_TOO_BIG, "Message too big")
    }

    pub fn slow_consumer() -> Self {
        Self::new(TRY_AGAIN_LATER, "slow consumer")
    }

    pub fn internal() -> Self {
        Self::new(INTERNAL_SERVER_ERROR, "Internal server error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_to_fit_a_close_frame_at_a_char_boundary() {
        let long = "é".repeat(100);
        let frame = CloseFrame::bad_request(long);
        assert!(frame.reason.len() <= MAX_REASON_BYTES);
        assert_eq!(frame.reason.len(), 122);
        let id = "x".repeat(200);
        assert_eq!(CloseFrame::subscriber_exists(&id).reason.len(), MAX_REASON_BYTES);
    }
}

//! The streams reader: one blocking XREAD over every subscribed key, on its own connection, and
//! a control connection (the session's command connection) that resolves where a new key starts
//! and wakes the reader with CLIENT UNBLOCK so the next XREAD includes it. The reader's answer
//! is due within the XREAD's own block time plus the keepalive; the control connection is
//! PINGed each keepalive.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Value};
use subhub_core::{ConnectError, Heartbeat, Reconnect, SessionEnd};
use tokio::sync::mpsc;

use super::{answers, Common};
use crate::event::Event;
use crate::session::{Command, SessionTopics};

/// How long one XREAD blocks; new keys interrupt it with CLIENT UNBLOCK.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries read per key per XREAD at most.
const COUNT: usize = 512;

/// The id after which each key's next entry is read, kept across reconnects.
type Positions = HashMap<String, String>;

pub struct Connections {
    reader: MultiplexedConnection,
    reader_id: i64,
    control: MultiplexedConnection,
}

pub async fn run(common: Common, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut session = Streams { common, positions: Positions::new() };
    subhub_core::run(&mut session, &mut commands, Reconnect::default()).await;
}

struct Streams {
    common: Common,
    positions: Positions,
}

impl subhub_core::Session for Streams {
    type Request = Command;
    type Connection = Connections;
    type Error = redis::RedisError;
    const KIND: &'static str = "Redis";

    fn name(&self) -> &str {
        self.common.link.name()
    }

    async fn connect(&mut self) -> Result<Connections, ConnectError<redis::RedisError>> {
        // redis 1.x gives up on a reply after 500 ms by default: the reader's blocking read may
        // take the block time, and then its reply is due within the keepalive.
        let blocking = AsyncConnectionConfig::new().set_response_timeout(Some(BLOCK + self.common.keepalive));
        let connect = async {
            let mut reader = self.common.client.get_multiplexed_async_connection_with_config(&blocking).await?;
            let reader_id: i64 = redis::cmd("CLIENT").arg("ID").query_async(&mut reader).await?;
            let control = self.common.command_connection().await?;
            Ok(Connections { reader, reader_id, control })
        };
        connect.await.map_err(|error| self.common.failed(error))
    }

    async fn serve(&mut self, connections: Connections, commands: &mut mpsc::UnboundedReceiver<Command>) -> SessionEnd {
        let end = self.session(connections, commands).await;
        self.common.down();
        self.positions.retain(|key, _| self.common.topics.active.contains_key(key));
        end
    }

    fn offline(&mut self, command: Command) {
        self.common.topics.apply_offline(command);
    }
}

impl Streams {
    async fn session(
        &mut self,
        mut connections: Connections,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> SessionEnd {
        let mut heartbeat = Heartbeat::new(self.common.keepalive);
        let positions = &mut self.positions;
        // Keys subscribed while disconnected start where their stream ends now.
        for (key, _) in &self.common.topics.waiting {
            if !positions.contains_key(key) {
                match last_id(&mut connections.control, key).await {
                    Ok(id) => positions.insert(key.clone(), id),
                    Err(_) => return SessionEnd::Disconnected,
                };
            }
        }
        self.common.up(&connections.control);
        let Common { link, topics, .. } = &mut self.common;
        loop {
            link.held(topics);
            if topics.active.is_empty() {
                tokio::select! {
                    command = commands.recv() => {
                        let Some(command) = command else { return SessionEnd::Shutdown };
                        if let Err(end) = handle(command, &mut connections.control, topics, positions).await {
                            return end;
                        }
                    }
                    () = heartbeat.due() => {
                        if !answers(&heartbeat, &mut connections.control).await {
                            return silent(link.name(), &heartbeat);
                        }
                    }
                }
                continue;
            }
            let keys: Vec<String> = topics.active.keys().cloned().collect();
            let ids: Vec<String> =
                keys.iter().map(|k| positions.get(k).cloned().unwrap_or_else(|| "$".into())).collect();
            let mut xread = redis::cmd("XREAD");
            xread
                .arg("COUNT")
                .arg(COUNT)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&keys)
                .arg(&ids);
            let read = xread.query_async::<Option<StreamReadReply>>(&mut connections.reader);
            tokio::pin!(read);
            loop {
                tokio::select! {
                    reply = &mut read => {
                        match reply {
                            Ok(Some(reply)) => deliver(link.name(), topics, positions, reply),
                            Ok(None) => {}
                            Err(error) => {
                                tracing::warn!(broker = %link.name(), %error, "Redis streams connection lost; reconnecting");
                                return SessionEnd::Disconnected;
                            }
                        }
                        break;
                    }
                    command = commands.recv() => {
                        let Some(command) = command else { return SessionEnd::Shutdown };
                        let new_key = matches!(&command, Command::Subscribe { topic, .. } if !keys.contains(topic));
                        let mut control = connections.control.clone();
                        if let Err(end) = handle(command, &mut control, topics, positions).await {
                            return end;
                        }
                        link.held(topics);
                        if new_key {
                            // Wake the blocked XREAD so the next one includes the new key.
                            let unblock = redis::cmd("CLIENT").arg("UNBLOCK").arg(connections.reader_id).query_async::<i64>(&mut control).await;
                            if unblock.is_err() {
                                return SessionEnd::Disconnected;
                            }
                        }
                    }
                    () = heartbeat.due() => {
                        if !answers(&heartbeat, &mut connections.control.clone()).await {
                            return silent(link.name(), &heartbeat);
                        }
                    }
                }
            }
        }
    }
}

fn silent(name: &Arc<str>, heartbeat: &Heartbeat) -> SessionEnd {
    tracing::warn!(broker = %name, deadline = ?heartbeat.every(), "Redis did not answer PING in time; reconnecting");
    SessionEnd::Disconnected
}

/// Subscribing resolves where the key starts (its last entry now) before confirming: an entry
/// added after the confirmation is always read.
async fn handle(
    command: Command,
    control: &mut MultiplexedConnection,
    topics: &mut SessionTopics,
    positions: &mut Positions,
) -> Result<(), SessionEnd> {
    match command {
        Command::Subscribe { topic, sink, live } => {
            let Some(live) = topics.accept(&topic, sink, live) else { return Ok(()) };
            match last_id(control, &topic).await {
                Ok(id) => {
                    positions.insert(topic, id);
                    let _ = live.send(Ok(()));
                    Ok(())
                }
                Err(_) => {
                    topics.waiting.push((topic, live));
                    Err(SessionEnd::Disconnected)
                }
            }
        }
        Command::Unsubscribe { topic, sink } => {
            if topics.remove(&topic, &sink) {
                positions.remove(&topic);
            }
            Ok(())
        }
    }
}

/// The id of the key's last entry, or `0-0` for a stream that does not exist yet.
async fn last_id(control: &mut MultiplexedConnection, key: &str) -> redis::RedisResult<String> {
    let reply: StreamRangeReply =
        redis::cmd("XREVRANGE").arg(key).arg("+").arg("-").arg("COUNT").arg(1).query_async(control).await?;
    Ok(reply.ids.into_iter().next().map_or_else(|| "0-0".to_owned(), |entry| entry.id))
}

fn deliver(name: &Arc<str>, topics: &SessionTopics, positions: &mut Positions, reply: StreamReadReply) {
    for stream in reply.keys {
        let Some(events) = topics.active.get(&stream.key) else { continue };
        for entry in stream.ids {
            // A read issued before the key was subscribed again carries entries from before its
            // new start: they are not the new source's, and its position must not go back.
            if !positions.get(&stream.key).is_none_or(|position| is_after(&entry.id, position)) {
                continue;
            }
            positions.insert(stream.key.clone(), entry.id.clone());
            let event = event(name, &stream.key, entry);
            if events.admits(event.payload_json().len()) {
                events.send(event);
            }
        }
    }
}

/// An entry as an event: its `payload` field the body, `key` the key, other fields headers; the
/// entry id is the event's id and cursor.
pub fn event(name: &Arc<str>, key: &str, entry: redis::streams::StreamId) -> Event {
    let mut body = Bytes::new();
    let mut event_key = None;
    let mut headers = Vec::new();
    for (field, value) in entry.map {
        let bytes = match value {
            Value::BulkString(bytes) => bytes,
            Value::SimpleString(text) => text.into_bytes(),
            _ => continue,
        };
        match field.as_str() {
            "payload" => body = Bytes::from(bytes),
            "key" => event_key = Some(String::from_utf8_lossy(&bytes).into_owned()),
            _ => headers.push((field, String::from_utf8_lossy(&bytes).into_owned())),
        }
    }
    let mut event = Event::new(name.clone(), key.into(), body)
        .with_key(event_key)
        .with_timestamp(entry_time(&entry.id))
        .with_cursor(Some(entry.id.clone()))
        .with_id(Some(entry.id));
    for (field, value) in headers {
        event = event.with_header(field, serde_json::Value::String(value));
    }
    event
}

/// Whether `text` is a stream entry id (`<milliseconds>-<sequence>`).
pub fn is_entry_id(text: &str) -> bool {
    text.split_once('-').is_some_and(|(ms, seq)| ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok())
}

/// Whether a stream no longer holds what follows `cursor`, by its XINFO STREAM reply (Redis 7):
/// an entry after the cursor was deleted (`max-deleted-entry-id`), or the stream has lost
/// entries (`entries-added` above `length`) and now starts after the cursor
/// (`recorded-first-entry-id`): the ones it trimmed may have followed the cursor.
pub fn lost_after(info: &Value, cursor: &str) -> bool {
    let fields: Vec<&Value> = match info {
        Value::Array(items) => items.iter().collect(),
        Value::Map(pairs) => pairs.iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return false,
    };
    let field = |wanted: &str| {
        fields.chunks(2).find_map(|pair| match pair {
            [Value::BulkString(name), value] if name.as_slice() == wanted.as_bytes() => Some(*value),
            [Value::SimpleString(name), value] if name == wanted => Some(*value),
            _ => None,
        })
    };
    let text = |wanted: &str| match field(wanted) {
        Some(Value::BulkString(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Some(Value::SimpleString(text)) => Some(text.clone()),
        _ => None,
    };
    let number = |wanted: &str| match field(wanted) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    if text("max-deleted-entry-id").is_some_and(|deleted| is_after(&deleted, cursor)) {
        return true;
    }
    let trimmed = matches!((number("entries-added"), number("length")), (Some(added), Some(length)) if added > length);
    trimmed && text("recorded-first-entry-id").is_some_and(|first| is_after(&first, cursor))
}

/// Whether stream id `id` comes after `position` (ids are `<milliseconds>-<sequence>`).
pub fn is_after(id: &str, position: &str) -> bool {
    let parse = |id: &str| {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (ms.parse::<u64>().unwrap_or(0), seq.parse::<u64>().unwrap_or(0))
    };
    parse(id) > parse(position)
}

/// A stream id is `<milliseconds>-<sequence>`.
fn entry_time(id: &str) -> SystemTime {
    let millis = id.split('-').next().and_then(|ms| ms.parse::<u64>().ok()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::is_after;

    #[test]
    fn stream_ids_compare_by_time_then_sequence() {
        assert!(is_after("1700000000001-0", "1700000000000-5"));
        assert!(is_after("1700000000000-10", "1700000000000-9"), "numerically, not as text");
        assert!(!is_after("1700000000000-9", "1700000000000-9"));
        assert!(!is_after("999-0", "1000-0"));
        assert!(is_after("1-0", "0-0"), "every entry comes after a stream that did not exist");
    }
}

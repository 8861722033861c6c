//! Starting a client's operation, whatever its transport: a subscription joins the shared
//! execution of its key, a query or mutation runs on its own. Results arrive in the client's
//! outbox under its slot.

use std::sync::Arc;

use serde_json::{Map, Value};
use subhub_protocol::OperationPayload;
use subhub_subscriptions::{Attachment, ExecutionItem, Outbound, Outbox, Slot, TooManyExecutions};
use tokio::task::JoinHandle;

use super::resume::{self, resume_cursor};
use crate::auth::Identity;
use crate::documents::{Kind, Prepared};
use crate::hub::Hub;

/// A client's running operation. Dropping it stops it: a subscription leaves its shared execution, a
/// query or mutation is aborted.
pub enum OperationHandle {
    /// A subscription, and the replay of a resumed one while it runs.
    Subscription {
        attachment: Attachment,
        replay: Option<JoinHandle<()>>,
    },
    Single {
        slot: Arc<Slot>,
        outbox: Arc<Outbox>,
        task: JoinHandle<()>,
    },
}

impl OperationHandle {
    pub fn slot(&self) -> &Arc<Slot> {
        match self {
            OperationHandle::Subscription { attachment, .. } => attachment.slot(),
            OperationHandle::Single { slot, .. } => slot,
        }
    }
}

impl Drop for OperationHandle {
    fn drop(&mut self) {
        match self {
            OperationHandle::Single { slot, outbox, task } => {
                outbox.deactivate(slot);
                task.abort();
            }
            OperationHandle::Subscription { replay: Some(replay), .. } => replay.abort(),
            OperationHandle::Subscription { replay: None, .. } => {}
        }
    }
}

/// Who runs an operation: the client's identity, and the `connection_init` payload whose
/// `forward_init` keys go upstream (WebSocket clients only).
pub struct Caller<'a> {
    pub identity: &'a Identity,
    pub init_payload: Option<&'a Map<String, Value>>,
}

/// Starts a prepared operation for `slot` on `outbox`; refused when it needs one more shared
/// execution than `limits.max_executions`. A subscription whose payload asks to resume
/// (`extensions.resume`, DESIGN §12) joins its shared execution at once and gets its replay first.
pub fn start(
    hub: &Arc<Hub>,
    payload: &OperationPayload,
    prepared: &Prepared,
    caller: Caller<'_>,
    outbox: &Arc<Outbox>,
    slot: Arc<Slot>,
) -> Result<OperationHandle, TooManyExecutions> {
    let schema = hub.schema.clone();
    let resume = resume_cursor(payload);
    // Built only when a new execution starts: joining one costs no request.
    let request = || super::request(payload, prepared).data(caller.identity.clone());
    match &prepared.kind {
        Kind::Subscription(root) => {
            let upstream = root.as_deref().and_then(|field| hub.upstreams.route(field)).cloned();
            let attachment = match upstream {
                None => {
                    if resume.is_some() {
                        outbox.hold(&slot);
                    }
                    let key = super::key(payload, prepared, &caller.identity.scope());
                    let attached = hub.executions.attach(key, outbox.clone(), slot, || {
                        let (document, identity) = (prepared.document.clone(), caller.identity.clone());
                        super::shared_results(hub, request(), document, payload.clone(), identity)
                    })?;
                    let replay = resume.map(|cursor| {
                        let replay = super::replay_results(
                            hub,
                            request(),
                            prepared.document.clone(),
                            payload.clone(),
                            caller.identity.clone(),
                            cursor,
                        );
                        tokio::spawn(resume::run(hub.clone(), &attached, outbox.clone(), replay))
                    });
                    return Ok(OperationHandle::Subscription { attachment: attached, replay });
                }
                Some(entry) => {
                    // An upstream's results carry no position: a resumed client reloads, told so
                    // by its first result.
                    if resume.is_some() {
                        outbox.hold(&slot);
                        outbox.release(&slot, Default::default(), false, false);
                        hub.metrics.resumed(false);
                    }
                    // Forwarded credentials are part of the key: clients whose credentials
                    // differ never share an execution, nor an upstream connection.
                    let init_payload = entry.init_payload(caller.init_payload);
                    let credentials = init_payload
                        .as_ref()
                        .map_or_else(String::new, |p| subhub_protocol::canonical::text(&Value::Object(p.clone())));
                    let key = super::key(payload, prepared, &format!("{}\n{credentials}", caller.identity.scope()));
                    let (sources, metrics) = (hub.forwarded.clone(), hub.metrics.clone());
                    hub.executions.attach(key, outbox.clone(), slot, || {
                        let payload = payload.clone();
                        super::upstream_results(&schema, request(), entry, init_payload, payload, sources, metrics)
                    })
                }
            };
            attachment.map(|attachment| OperationHandle::Subscription { attachment, replay: None })
        }
        Kind::Single(_) => {
            let (task_outbox, task_slot, request) = (outbox.clone(), slot.clone(), request());
            let federated = (hub.clone(), payload.clone(), prepared.clone(), caller.identity.clone());
            let init_payload = caller.init_payload.cloned();
            let task = tokio::spawn(async move {
                let (hub, payload, prepared, identity) = federated;
                let forwarded = super::federated::Forwarded::Init(init_payload.as_ref());
                let item = match super::federated::run(&hub, &payload, &prepared, &identity, forwarded).await {
                    Some(outcome) => outcome.into(),
                    None => super::single_result(&schema, request).await,
                };
                match item {
                    ExecutionItem::Next(payload) => {
                        task_outbox.push(Outbound::Next { slot: task_slot.clone(), payload });
                        task_outbox.push(Outbound::Complete { slot: task_slot });
                    }
                    ExecutionItem::Live(_) => {}
                    ExecutionItem::Error(errors) => task_outbox.push(Outbound::Error { slot: task_slot, errors }),
                }
            });
            Ok(OperationHandle::Single { slot, outbox: outbox.clone(), task })
        }
    }
}

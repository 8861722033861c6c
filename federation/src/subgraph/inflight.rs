//! Identical requests in flight to one subgraph, sent once: the first starts the request on a
//! task of its own (so it completes even if that client goes away), the others await the same
//! result. A request is shared only while it is in flight; the next identical one is sent anew.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use http::{HeaderName, HeaderValue};

use super::SubgraphError;

/// What makes two requests identical: the same body and the same headers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub body: Bytes,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

type Flight = Shared<BoxFuture<'static, Result<Bytes, SubgraphError>>>;

#[derive(Default)]
pub struct Inflight {
    flights: Arc<Mutex<HashMap<Key, Flight>>>,
}

impl Inflight {
    /// The result of `key`'s request: joined when one is in flight (and `joined` called), else
    /// started with `send`.
    pub async fn run<F, Fut>(&self, key: Key, send: F, joined: impl FnOnce()) -> Result<Bytes, SubgraphError>
    where
        F: FnOnce(Key) -> Fut,
        Fut: Future<Output = Result<Bytes, SubgraphError>> + Send + 'static,
    {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            match flights.get(&key) {
                Some(flight) => {
                    joined();
                    flight.clone()
                }
                None => {
                    let request = send(key.clone());
                    let (registry, own_key) = (self.flights.clone(), key.clone());
                    // The task removes its entry when done; it cannot do so before the entry is
                    // inserted, since that needs the lock held here.
                    let task = tokio::spawn(async move {
                        let result = request.await;
                        registry.lock().unwrap_or_else(PoisonError::into_inner).remove(&own_key);
                        result
                    });
                    let flight = async move { task.await.unwrap_or(Err(SubgraphError::Unreachable)) }.boxed().shared();
                    flights.insert(key, flight.clone());
                    flight
                }
            }
        };
        flight.await
    }

    /// Requests in flight now.
    pub fn len(&self) -> usize {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn identical_requests_in_flight_are_sent_once() {
        let inflight = Inflight::default();
        let sent = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let key = |body: &'static str| Key { body: Bytes::from_static(body.as_bytes()), headers: Vec::new() };
        let request = |key: Key| {
            let (sent, mut released) = (sent.clone(), released.clone());
            inflight.run(
                key,
                move |key| async move {
                    sent.fetch_add(1, Ordering::SeqCst);
                    let _ = released.wait_for(|r| *r).await;
                    Ok(key.body)
                },
                || {},
            )
        };
        let all = futures_util::future::join_all([request(key("a")), request(key("a")), request(key("b"))]);
        let answers = tokio::spawn(async move {
            // Let every request join before the first answers.
            tokio::task::yield_now().await;
            release.send(true).ok();
        });
        let results = all.await;
        answers.await.unwrap();
        assert_eq!(
            results,
            vec![Ok(Bytes::from_static(b"a")), Ok(Bytes::from_static(b"a")), Ok(Bytes::from_static(b"b"))]
        );
        assert_eq!(sent.load(Ordering::SeqCst), 2);
        assert!(inflight.is_empty());
    }
}

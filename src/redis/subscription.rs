//! A channel's messages, however they arrive: on a single server's pub/sub connection, or as
//! RESP3 pushes on a cluster connection (which must live as long as the subscription).

use futures::stream::BoxStream;
use futures::StreamExt;
use redis::aio::PubSub;
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, PushInfo, PushKind};
use tokio::sync::mpsc::UnboundedReceiver;

/// The payloads published on one channel, until the connection is lost.
pub struct Subscription {
    payloads: BoxStream<'static, String>,
    /// Keeps the cluster connection (and so its subscription) open.
    _connection: Option<ClusterConnection>,
}

impl Subscription {
    pub(super) fn single(pubsub: PubSub) -> Subscription {
        Subscription {
            payloads: pubsub
                .into_on_message()
                .filter_map(|message| async move { message.get_payload::<String>().ok() })
                .boxed(),
            _connection: None,
        }
    }

    /// Ends at the first disconnection push: the client would reconnect to the same node, dead
    /// or not, and subscribe there again; a new subscription finds a living node instead.
    pub(super) fn cluster(
        connection: ClusterConnection,
        pushes: UnboundedReceiver<PushInfo>,
    ) -> Subscription {
        let pushes = futures::stream::unfold(pushes, |mut pushes| async move {
            match pushes.recv().await {
                Some(push) if push.kind != PushKind::Disconnection => Some((push, pushes)),
                _ => None,
            }
        });
        Subscription {
            payloads: pushes
                .filter_map(|push| async move { payload(push) })
                .boxed(),
            _connection: Some(connection),
        }
    }

    /// The next payload; `None` once the subscription is lost.
    pub async fn next(&mut self) -> Option<String> {
        self.payloads.next().await
    }
}

/// A message push is `[channel, payload]`; subscription confirmations and the like are not
/// messages.
fn payload(push: PushInfo) -> Option<String> {
    match (push.kind, push.data.get(1)) {
        (PushKind::Message, Some(value)) => String::from_redis_value(value.clone()).ok(),
        _ => None,
    }
}

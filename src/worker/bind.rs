//! Binding a removal to its account before the call that acts, group-committed for the workers.

use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::connectors::Bound;
use crate::store::Store;
use crate::store::queue::Claimed;

/// Binds removals to the account their attempt resolved, before the call that acts
/// ([`Store::bind`]), as a group commit: the requests that arrive while one commit runs share the
/// next, so the binding costs a fraction of a commit per removal when calls are fast.
#[derive(Clone)]
pub(super) struct Binder {
    queue: mpsc::UnboundedSender<BindRequest>,
}

struct BindRequest {
    claim: Claimed,
    account: Bound,
    reply: oneshot::Sender<Result<bool, String>>,
}

impl Binder {
    /// Starts the task that writes the bindings; it ends when the last handle is dropped.
    pub(super) fn start(store: Store, clock: Clock) -> Self {
        let (queue, mut requests) = mpsc::unbounded_channel::<BindRequest>();
        tokio::spawn(async move {
            while let Some(first) = requests.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = requests.try_recv() {
                    batch.push(more);
                }
                let pairs: Vec<(&Claimed, &Bound)> =
                    batch.iter().map(|r| (&r.claim, &r.account)).collect();
                let result = store.bind(&pairs, clock.now()).await;
                for (i, request) in batch.into_iter().enumerate() {
                    let answer = match &result {
                        Ok(applied) => Ok(applied.get(i).copied().unwrap_or(false)),
                        Err(e) => Err(format!("{e:#}")),
                    };
                    let _ = request.reply.send(answer);
                }
            }
        });
        Self { queue }
    }

    /// Binds `claim`'s removal to `account`: whether the fence let it through.
    pub(super) async fn bind(&self, claim: &Claimed, account: Bound) -> anyhow::Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(BindRequest {
                claim: claim.clone(),
                account,
                reply,
            })
            .map_err(|_| anyhow::anyhow!("the worker pool is stopping"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the worker pool is stopping"))?
            .map_err(|e| anyhow::anyhow!(e))
    }
}

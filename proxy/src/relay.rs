//! Relaying one client connection to a worker: what a reverse proxy does for
//! every connection, and where its cost comes from (a second socket, and every
//! byte read and written once more by the master).

use std::io;

use tokio::io::{AsyncWriteExt, copy};
use tokio::net::TcpStream;

/// Connects to the first worker port of `targets` that accepts, then copies
/// bytes both ways until the worker is done.
///
/// Half-close travels: when the client shuts down its sending side, the worker
/// gets a FIN too and may still answer. When the worker closes (after
/// `Connection: close`, or at its graceful stop), the client gets a FIN and
/// both sockets are closed at once: there is nobody left to talk to, and an fd
/// held for a client that lingers is an fd the master lacks at its limit.
pub async fn relay(mut client: TcpStream, targets: Vec<u16>) {
    let Some(mut worker) = connect(&targets).await else {
        // Dropping the client closes it: it sees a connection closed without
        // an answer, as with any server that cannot serve.
        return;
    };
    let (mut from_client, mut to_client) = client.split();
    let (mut from_worker, mut to_worker) = worker.split();
    let upstream = async {
        copy(&mut from_client, &mut to_worker).await?;
        to_worker.shutdown().await
    };
    let downstream = async {
        copy(&mut from_worker, &mut to_client).await?;
        to_client.shutdown().await
    };
    tokio::pin!(upstream, downstream);
    let result: io::Result<()> = tokio::select! {
        result = &mut downstream => result,
        result = &mut upstream => match result {
            // The client half-closed: let the worker finish its answer.
            Ok(()) => downstream.await,
            Err(err) => Err(err),
        },
    };
    if let Err(err) = result {
        // A reset by either side ends both; that is the client's business.
        tracing::debug!(cause = %err, "relay ended with an error");
    }
}

/// The first connection a worker accepts, trying `targets` in order.
async fn connect(targets: &[u16]) -> Option<TcpStream> {
    for &port in targets {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(stream) => {
                // Not fatal: only slower.
                let _ = stream.set_nodelay(true);
                return Some(stream);
            }
            // The master is out of fds between accept and connect: nothing
            // another port would change. Drop the client; go on serving.
            Err(err) if cluster::accept::is_resource_exhaustion(&err) => {
                tracing::warn!(cause = %err, "no fd to reach a worker; client closed");
                return None;
            }
            // ECONNREFUSED: that worker died a moment ago; try the next one.
            Err(err) => tracing::debug!(port, cause = %err, "worker unreachable"),
        }
    }
    tracing::warn!("no worker reachable; client closed");
    None
}

//! What the socket tests share: deadlines and a conformance server on `127.0.0.1:0`.

#![allow(dead_code, unreachable_pub)] // each test file uses a part

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use oxrpc::{Server, ServerHandle};

/// How long any await in a socket test may take.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test after [`DEADLINE`].
pub async fn deadline<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(DEADLINE, f).await.expect("timed out")
}

/// Sends raw request bytes on a new connection and reads until the server closes it.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    deadline(async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(request).await.expect("write");
        let mut all = Vec::new();
        tcp.read_to_end(&mut all).await.expect("read");
        String::from_utf8_lossy(&all).into_owned()
    })
    .await
}

/// A running conformance server (standalone, hyper); stop it with [`Running::shutdown`].
pub struct Running {
    /// `http://127.0.0.1:PORT/trpc`.
    pub base: String,
    /// The bound address (the real port).
    pub addr: SocketAddr,
    /// Controls its WebSocket connections.
    pub handle: ServerHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// Starts the conformance router with `configure` applied (WebSocket clients get 200 ms
    /// to leave on shutdown).
    pub async fn start(
        configure: impl FnOnce(Server<oxrpc_tests::Ctx>) -> Server<oxrpc_tests::Ctx>,
    ) -> Running {
        Running::serve(configure(
            Server::with_context(oxrpc_tests::router(), oxrpc_tests::create_context)
                .shutdown_grace(Duration::from_millis(200)),
        ))
        .await
    }

    /// Serves `server` (any router) on `127.0.0.1:0`.
    pub async fn serve<Ctx: Clone + Send + Sync + 'static>(server: Server<Ctx>) -> Running {
        let handle = server.handle();
        let listening = deadline(server.bind("127.0.0.1:0")).await.expect("bind");
        let addr = listening.local_addr();
        assert_ne!(addr.port(), 0, "port 0 must be replaced by the real port");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(listening.run_until(async {
            let _ = rx.await;
        }));
        Running {
            base: format!("http://{addr}/trpc"),
            addr,
            handle,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            deadline(task).await.expect("join").expect("server result");
        }
    }
}

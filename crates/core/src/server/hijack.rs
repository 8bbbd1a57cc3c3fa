//! Taking over a connection after a 101 response (generic `Upgrade`, not only WebSocket).

use bytes::{Bytes, BytesMut};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::error::{Error, Result};

enum State {
    Pending(OnUpgrade),
    Ready,
    Failed,
}

/// The raw byte stream of a connection taken over after a 101 response. Reads and writes may
/// run concurrently from different tasks.
pub struct RawConnection {
    reader: Mutex<Option<ReadHalf<TokioIo<Upgraded>>>>,
    writer: Mutex<Option<WriteHalf<TokioIo<Upgraded>>>>,
    state: Mutex<Option<State>>,
    /// Cancelled when the server stops: reads end, writes fail, the connection closes.
    stopped: CancellationToken,
    /// Counts the connection among its server's open ones until it is destroyed or dropped.
    alive: std::sync::Mutex<Option<TaskTrackerToken>>,
}

impl RawConnection {
    /// Wraps the upgrade future of a request; the connection is ready once the 101 is sent.
    /// A connection made here outlives its server; [`super::Server::raw_connection`] makes
    /// one that the server's `stop` ends.
    pub fn new(on_upgrade: OnUpgrade) -> Self {
        RawConnection::tracked(on_upgrade, CancellationToken::new(), None)
    }

    pub(crate) fn tracked(
        on_upgrade: OnUpgrade,
        stopped: CancellationToken,
        alive: Option<TaskTrackerToken>,
    ) -> Self {
        RawConnection {
            reader: Mutex::new(None),
            writer: Mutex::new(None),
            state: Mutex::new(Some(State::Pending(on_upgrade))),
            stopped,
            alive: std::sync::Mutex::new(alive),
        }
    }

    fn stopped_error() -> Error {
        Error::ConnectionReset("the server stopped".into())
    }

    async fn ready(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        match state.take() {
            Some(State::Pending(fut)) => match fut.await {
                Ok(upgraded) => {
                    let (r, w) = tokio::io::split(TokioIo::new(upgraded));
                    *self.reader.lock().await = Some(r);
                    *self.writer.lock().await = Some(w);
                    *state = Some(State::Ready);
                    Ok(())
                }
                Err(e) => {
                    *state = Some(State::Failed);
                    Err(Error::ConnectionReset(format!("upgrade failed: {e}")))
                }
            },
            Some(other) => {
                let failed = matches!(other, State::Failed);
                *state = Some(other);
                if failed {
                    Err(Error::ConnectionReset("upgrade failed".into()))
                } else {
                    Ok(())
                }
            }
            None => Err(Error::ConnectionReset("upgrade failed".into())),
        }
    }

    /// Reads up to `max` bytes; `None` when the peer closed its side.
    pub async fn read(&self, max: usize) -> Result<Option<Bytes>> {
        self.ready().await?;
        let mut guard = self.reader.lock().await;
        let Some(reader) = guard.as_mut() else {
            return Ok(None);
        };
        let mut buf = BytesMut::with_capacity(max.clamp(1, 1 << 20));
        let n = tokio::select! {
            r = reader.read_buf(&mut buf) => r.map_err(|e| Error::from_io(e, "upgraded connection"))?,
            () = self.stopped.cancelled() => {
                guard.take();
                drop(guard);
                self.destroy().await;
                return Ok(None);
            }
        };
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(buf.freeze()))
    }

    /// Writes all of `data`.
    pub async fn write(&self, data: &[u8]) -> Result<()> {
        self.ready().await?;
        let mut guard = self.writer.lock().await;
        let writer = guard
            .as_mut()
            .ok_or(Error::ConnectionReset("connection closed".into()))?;
        let written = async {
            writer.write_all(data).await?;
            writer.flush().await
        };
        tokio::select! {
            r = written => r.map_err(|e| Error::from_io(e, "upgraded connection")),
            () = self.stopped.cancelled() => {
                guard.take();
                Err(Self::stopped_error())
            }
        }
    }

    /// Closes the write side (sends FIN); the read side stays open until the peer closes. A
    /// connection already closed (destroyed, stopped, or never upgraded) has nothing to close.
    pub async fn shutdown(&self) -> Result<()> {
        if self.ready().await.is_err() {
            return Ok(());
        }
        let mut guard = self.writer.lock().await;
        if let Some(mut writer) = guard.take() {
            let _ = writer.shutdown().await;
        }
        Ok(())
    }

    /// Drops both halves, closing the connection.
    pub async fn destroy(&self) {
        self.reader.lock().await.take();
        self.writer.lock().await.take();
        *self.state.lock().await = Some(State::Failed);
        self.alive.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

//! A guest's standard output and error handed to the embedder as it comes: the node agent
//! keeps them in a capped, rotated log and bounds their rate ([`GuestOutput`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// What takes a guest's output. Each call gets the bytes of one write, in order; it must not
/// block for long (the guest waits in it), so a sink that cannot keep up drops and counts.
pub trait GuestOutput: Send + Sync + 'static {
    /// Takes the bytes of one write. An error ends the guest's stream: its later writes fail.
    ///
    /// # Errors
    /// When the output can no longer be kept (the embedder's log cannot be written).
    fn write(&self, bytes: &[u8]) -> std::io::Result<()>;
}

impl GuestOutput for std::fs::File {
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        std::io::Write::write_all(&mut &*self, bytes)
    }
}

/// The WASI stream over a [`GuestOutput`], for both WASIp1 and WASIp2 guests.
#[derive(Clone)]
pub(crate) struct SinkStream(pub(crate) Arc<dyn GuestOutput>);

impl IsTerminal for SinkStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for SinkStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for SinkStream {
    async fn ready(&mut self) {}
}

/// The most one write hands over (what wasmtime-wasi allows its own file streams).
const MAX_WRITE: usize = 64 << 10;

impl OutputStream for SinkStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.0.write(&bytes).map_err(|e| StreamError::LastOperationFailed(wasmtime::format_err!(e)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_WRITE)
    }
}

impl tokio::io::AsyncWrite for SinkStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.0.write(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

//! HTTP long-polling: a GET takes what the outbox holds (or waits for
//! it), a POST carries packets from the client.

use super::handle::Session;
use super::packet::{encode_payload, Frame, Packet};
use super::session::{CloseReason, Poll, Via};
use super::{text_response, EngineError};
use std::sync::Arc;
use std::time::Instant;
use tide::{Request, Response, StatusCode};

impl Session {
    pub(super) async fn poll(self: &Arc<Self>) -> Result<Response, EngineError> {
        let (poll, closed) = self.with_core(|core| (core.poll(), core.closed().is_some()));
        if closed {
            // A closed session answers a poll once (the noop owed after a
            // client close); after that it is gone.
            self.unregister();
        }
        let frames = match poll? {
            Poll::Ready(frames) => frames,
            // A dropped sender without an answer only happens at close.
            Poll::Wait(rx) => rx.await.unwrap_or_else(|_| vec![Frame::close()]),
        };
        Ok(text_response(encode_payload(&frames)))
    }

    pub(super) async fn post<S>(
        self: &Arc<Self>,
        mut req: Request<S>,
    ) -> Result<Response, EngineError> {
        self.with_core(|core| core.post_begin())?;
        let result = self.read_post(&mut req).await;
        self.with_core(|core| core.post_end());
        result.map(|()| {
            Response::builder(StatusCode::Ok)
                .content_type("text/html")
                .body("ok")
                .build()
        })
    }

    async fn read_post<S>(self: &Arc<Self>, req: &mut Request<S>) -> Result<(), EngineError> {
        use async_std::io::ReadExt;
        let max = self.engine.upgrade().map_or(0, |e| e.config.max_payload);
        let mut body = Vec::new();
        if req.len().is_some_and(|len| len > max) {
            self.close(CloseReason::PayloadTooLarge);
            return Err(EngineError::PayloadTooLarge);
        }
        let read = req
            .take_body()
            .take(max as u64 + 1)
            .read_to_end(&mut body)
            .await;
        if read.is_err() {
            self.close(CloseReason::TransportClose);
            return Err(EngineError::BadRequest);
        }
        if body.len() > max {
            self.close(CloseReason::PayloadTooLarge);
            return Err(EngineError::PayloadTooLarge);
        }
        let Ok(packets) = Packet::decode_payload(&body) else {
            self.close(CloseReason::ProtocolError);
            return Err(EngineError::BadRequest);
        };
        for packet in packets {
            let received =
                self.with_core(|core| core.receive(packet, Instant::now(), Via::Polling));
            if !self.dispatch(received) {
                break;
            }
        }
        Ok(())
    }
}

//! The Redis broker: Redis pub/sub through the `redis` crate's async client.
//!
//! A session is two connections: a multiplexed one that publishes (a batch is one pipeline, one
//! round trip) and answers pings, and a pub/sub one split into its sink (SUBSCRIBE/UNSUBSCRIBE)
//! and its stream of messages. The bridge reconnects both when either fails.
//!
//! A batch of channels is subscribed with one command per channel, all sent at once (one round
//! trip): Redis answers a many-channel SUBSCRIBE with one reply per channel, and the crate
//! matches each reply to one request, so a many-channel command would answer the requests after
//! it. The bridge bounds every call with its own timeout; the crate's (500 ms by default) is off.

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::try_join_all;
use redis::AsyncConnectionConfig;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};

use super::{Broker, BrokerError, BrokerRx, BrokerTx};

/// A Redis server (or anything speaking its pub/sub: Valkey, KeyDB).
pub struct Redis {
    client: redis::Client,
    describe: String,
}

impl Redis {
    /// A broker at `url` (`redis://host:port`, `redis://:password@host:port/`, `rediss://` is not
    /// built in). Nothing is connected yet.
    ///
    /// # Errors
    /// The URL is not a Redis URL.
    pub fn new(url: &str) -> Result<Redis, BrokerError> {
        let client = redis::Client::open(url)?;
        let info = client.get_connection_info();
        Ok(Redis {
            describe: format!("redis://{}", info.addr()),
            client,
        })
    }
}

/// Publishes and subscribes.
pub struct RedisTx {
    conn: MultiplexedConnection,
    sink: PubSubSink,
}

/// Receives.
pub struct RedisRx {
    stream: PubSubStream,
}

impl Broker for Redis {
    type Tx = RedisTx;
    type Rx = RedisRx;

    async fn connect(&mut self) -> Result<(RedisTx, RedisRx), BrokerError> {
        let (sink, stream) = self.client.get_async_pubsub().await?.split();
        let no_timeout = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&no_timeout)
            .await?;
        Ok((RedisTx { conn, sink }, RedisRx { stream }))
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

impl RedisTx {
    /// SUBSCRIBE (or UNSUBSCRIBE) each channel, one command each, all sent at once.
    async fn each_channel(&self, channels: &[String], subscribe: bool) -> Result<(), BrokerError> {
        try_join_all(channels.iter().map(|c| {
            let mut sink = self.sink.clone();
            async move {
                if subscribe {
                    sink.subscribe(c).await
                } else {
                    sink.unsubscribe(c).await
                }
            }
        }))
        .await?;
        Ok(())
    }
}

impl BrokerTx for RedisTx {
    async fn publish(&mut self, batch: &[(String, Vec<u8>)]) -> Result<(), BrokerError> {
        let mut pipe = redis::pipe();
        for (channel, payload) in batch {
            pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
        }
        pipe.query_async::<()>(&mut self.conn).await?;
        Ok(())
    }

    async fn subscribe(&mut self, channels: &[String]) -> Result<(), BrokerError> {
        self.each_channel(channels, true).await
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> Result<(), BrokerError> {
        self.each_channel(channels, false).await
    }

    async fn ping(&mut self) -> Result<(), BrokerError> {
        redis::cmd("PING").query_async::<()>(&mut self.conn).await?;
        self.sink.ping::<()>().await?;
        Ok(())
    }
}

impl BrokerRx for RedisRx {
    async fn next(&mut self) -> Option<(String, Bytes)> {
        let msg = self.stream.next().await?;
        Some((
            msg.get_channel_name().to_owned(),
            Bytes::copy_from_slice(msg.get_payload_bytes()),
        ))
    }
}

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

use std::sync::Arc;

use redis::Value;

use super::{
    Broker, BrokerError, BrokerRx, BrokerTx, LogAppend, LogConfig, LogReadAt, PresenceConfig,
    PresenceSet,
};
use crate::server::{LogEntry, LogRange, LogRead};

/// Appends one entry to a topic's log and publishes it, atomically (a script runs alone).
///
/// KEYS: the stream, the log's meta hash (epoch `e`, last offset `l`), the idempotency key.
/// ARGV: channel, payload, max entries, stream ttl ms, new epoch, epoch ttl ms, key ttl ms,
/// "1" if a key is given. The entry's stream id is `OFFSET-1` (offsets are the order), with the
/// payload `p` and the time `t` (ms). Returns `{epoch, offset}`.
const APPEND: &str = r"
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[5]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 'l', 0)
end
if ARGV[8] == '1' then
  local prev = redis.call('GET', KEYS[3])
  if prev then return {epoch, tonumber(prev)} end
end
local off = redis.call('HINCRBY', KEYS[2], 'l', 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], off .. '-1', 'p', ARGV[2], 't', now)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
if ARGV[8] == '1' then redis.call('SET', KEYS[3], off, 'PX', ARGV[7]) end
redis.call('PUBLISH', ARGV[1], 'rwl1' .. epoch .. '\n' .. off .. '\n' .. ARGV[2])
return {epoch, off}
";

/// Reads a range of a topic's log. KEYS: the stream, the meta hash. ARGV: `after` or `tail`,
/// the offset after which to read, the most entries, a new epoch (for a log that has none),
/// epoch ttl ms, max age ms. Returns `{epoch, last, {offset, payload}...}` (entries older than
/// the max age left out; the tail newest first).
const READ: &str = r"
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[4]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 'l', 0)
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
local last = redis.call('HGET', KEYS[2], 'l')
local entries
if ARGV[1] == 'tail' then
  entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[3])
else
  entries = redis.call('XRANGE', KEYS[1], (tonumber(ARGV[2]) + 1) .. '-0', '+', 'COUNT', ARGV[3])
end
local t = redis.call('TIME')
local oldest = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[6])
local out = {epoch, last}
for _, e in ipairs(entries) do
  local f = e[2]
  local p, at
  for i = 1, #f, 2 do
    if f[i] == 'p' then p = f[i + 1] elseif f[i] == 't' then at = tonumber(f[i + 1]) end
  end
  if p and at and at >= oldest then
    table.insert(out, string.match(e[1], '^(%d+)'))
    table.insert(out, p)
  end
end
return out
";

/// Sets or removes this node's presence entry for a member of a room, and tells whether
/// another live node has one.
///
/// KEYS: this node's hash of the room's presence (`<channel>|presence|<node>`), the set of the
/// nodes with entries there (`<channel>|presence`). ARGV: node, member, value ("" removes),
/// ttl ms. The other nodes' hashes are named from the first key; a node whose hash has expired
/// (it died) leaves the set. Returns 1 if another node has the member, else 0.
const PRESENCE: &str = r"
local prefix = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1])
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('SADD', KEYS[2], ARGV[1])
end
local elsewhere = 0
for _, n in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if n ~= ARGV[1] then
    local k = prefix .. n
    if redis.call('EXISTS', k) == 0 then
      redis.call('SREM', KEYS[2], n)
    elseif redis.call('HEXISTS', k, ARGV[2]) == 1 then
      elsewhere = 1
    end
  end
end
if redis.call('SCARD', KEYS[2]) > 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[4] * 4)
end
return elsewhere
";

/// Every live node's presence entries of a room. KEYS: the set of nodes; ARGV: the prefix of
/// the nodes' hashes (`<channel>|presence|`). Returns member, value, member, value, ...
const PRESENCE_LIST: &str = r"
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local all = redis.call('HGETALL', ARGV[1] .. n)
  if #all == 0 then
    redis.call('SREM', KEYS[1], n)
  else
    for i = 1, #all do out[#out + 1] = all[i] end
  end
end
return out
";

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
    /// The SHA-1 (hex) of each script, for EVALSHA.
    append: String,
    read: String,
    presence: String,
    presence_list: String,
}

/// The SHA-1 of `script` in hex, as Redis names a loaded script.
fn script_hash(script: &str) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(script.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
        Ok((
            RedisTx {
                conn,
                sink,
                append: script_hash(APPEND),
                read: script_hash(READ),
                presence: script_hash(PRESENCE),
                presence_list: script_hash(PRESENCE_LIST),
            },
            RedisRx { stream },
        ))
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

    async fn append(
        &mut self,
        log: &LogConfig,
        batch: &[LogAppend<'_>],
    ) -> Result<Vec<(Arc<str>, u64)>, BrokerError> {
        let mut pipe = redis::pipe();
        for a in batch {
            // '|' is in no room name: one room's keys never name another's (rooms may
            // contain ':').
            let id_key = format!("{}|id|{}", a.channel, a.key.unwrap_or(""));
            pipe.cmd("EVALSHA")
                .arg(&self.append)
                .arg(3)
                .arg(format!("{}|log", a.channel))
                .arg(format!("{}|meta", a.channel))
                .arg(id_key)
                .arg(a.channel)
                .arg(a.payload)
                .arg(log.max_entries)
                .arg(millis(log.max_age))
                .arg(a.new_epoch)
                .arg(millis(log.epoch_ttl))
                .arg(millis(log.key_ttl))
                .arg(if a.key.is_some() { "1" } else { "0" });
        }
        let replies: Vec<Value> = self.scripted(&pipe, batch.len()).await?;
        replies
            .iter()
            .map(|r| match r {
                Value::Array(v) if v.len() == 2 => Ok((Arc::from(text(&v[0])?), number(&v[1])?)),
                other => Err(format!("unexpected append answer {other:?}").into()),
            })
            .collect()
    }

    async fn presence(
        &mut self,
        cfg: &PresenceConfig,
        node: &str,
        batch: &[PresenceSet<'_>],
    ) -> Result<Vec<bool>, BrokerError> {
        self.set_presence(cfg, node, batch).await
    }

    async fn presence_list(
        &mut self,
        channels: &[&str],
    ) -> Result<Vec<Vec<(String, Bytes)>>, BrokerError> {
        self.list_presence(channels).await
    }

    async fn presence_refresh(
        &mut self,
        cfg: &PresenceConfig,
        node: &str,
        channels: &[String],
    ) -> Result<(), BrokerError> {
        self.refresh_presence(cfg, node, channels).await
    }

    async fn presence_drop(&mut self, node: &str, channels: &[String]) -> Result<(), BrokerError> {
        let mut pipe = redis::pipe();
        for c in channels {
            pipe.cmd("DEL").arg(format!("{c}|presence|{node}")).ignore();
            pipe.cmd("SREM")
                .arg(format!("{c}|presence"))
                .arg(node)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn).await?;
        Ok(())
    }

    async fn read(
        &mut self,
        log: &LogConfig,
        batch: &[LogReadAt<'_>],
    ) -> Result<Vec<LogRead>, BrokerError> {
        let mut pipe = redis::pipe();
        for r in batch {
            let (kind, after) = match r.range {
                LogRange::After(n) => ("after", n),
                LogRange::Tail => ("tail", 0),
            };
            pipe.cmd("EVALSHA")
                .arg(&self.read)
                .arg(2)
                .arg(format!("{}|log", r.channel))
                .arg(format!("{}|meta", r.channel))
                .arg(kind)
                .arg(after)
                .arg(r.limit.max(1))
                .arg(r.new_epoch)
                .arg(millis(log.epoch_ttl))
                .arg(millis(log.max_age));
        }
        let replies: Vec<Value> = self.scripted(&pipe, batch.len()).await?;
        replies
            .iter()
            .zip(batch)
            .map(|(reply, r)| {
                let Value::Array(v) = reply else {
                    return Err(format!("unexpected read answer {reply:?}").into());
                };
                if v.len() < 2 || v.len() % 2 != 0 {
                    return Err("a read answer of odd length".into());
                }
                let mut entries = Vec::with_capacity(v.len() / 2 - 1);
                for pair in v[2..].chunks_exact(2) {
                    entries.push(LogEntry {
                        offset: number(&pair[0])?,
                        payload: Bytes::copy_from_slice(bytes(&pair[1])?),
                    });
                }
                if r.range == LogRange::Tail {
                    entries.reverse();
                }
                Ok(LogRead {
                    epoch: Arc::from(text(&v[0])?),
                    last: number(&v[1])?,
                    entries,
                })
            })
            .collect()
    }
}

impl RedisTx {
    /// Sets or removes this node's presence entries (one round trip).
    pub(super) async fn set_presence(
        &mut self,
        cfg: &PresenceConfig,
        node: &str,
        batch: &[PresenceSet<'_>],
    ) -> Result<Vec<bool>, BrokerError> {
        let mut pipe = redis::pipe();
        for p in batch {
            pipe.cmd("EVALSHA")
                .arg(&self.presence)
                .arg(2)
                .arg(format!("{}|presence|{node}", p.channel))
                .arg(format!("{}|presence", p.channel))
                .arg(node)
                .arg(p.member)
                .arg(p.value.unwrap_or_default())
                .arg(millis(cfg.ttl));
        }
        let replies: Vec<Value> = self.scripted(&pipe, batch.len()).await?;
        replies.iter().map(|r| Ok(number(r)? == 1)).collect()
    }

    /// Every live node's entries for each channel (one round trip).
    pub(super) async fn list_presence(
        &mut self,
        channels: &[&str],
    ) -> Result<Vec<Vec<(String, Bytes)>>, BrokerError> {
        let mut pipe = redis::pipe();
        for c in channels {
            pipe.cmd("EVALSHA")
                .arg(&self.presence_list)
                .arg(1)
                .arg(format!("{c}|presence"))
                .arg(format!("{c}|presence|"));
        }
        let replies: Vec<Value> = self.scripted(&pipe, channels.len()).await?;
        replies
            .iter()
            .map(|reply| {
                let Value::Array(v) = reply else {
                    return Err(format!("unexpected presence answer {reply:?}").into());
                };
                v.chunks_exact(2)
                    .map(|pair| {
                        Ok((
                            text(&pair[0])?.to_owned(),
                            Bytes::copy_from_slice(bytes(&pair[1])?),
                        ))
                    })
                    .collect()
            })
            .collect()
    }

    /// Keeps this node's entries in `channels` alive for another ttl (one round trip).
    pub(super) async fn refresh_presence(
        &mut self,
        cfg: &PresenceConfig,
        node: &str,
        channels: &[String],
    ) -> Result<(), BrokerError> {
        let mut pipe = redis::pipe();
        for c in channels {
            pipe.cmd("PEXPIRE")
                .arg(format!("{c}|presence|{node}"))
                .arg(millis(cfg.ttl))
                .ignore();
            pipe.cmd("PEXPIRE")
                .arg(format!("{c}|presence"))
                .arg(millis(cfg.ttl) * 4)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn).await?;
        Ok(())
    }

    /// Runs a pipeline of EVALSHA of our scripts; if Redis does not know them (it restarted,
    /// or a new session), loads them and runs it once more.
    async fn scripted(
        &mut self,
        pipe: &redis::Pipeline,
        n: usize,
    ) -> Result<Vec<Value>, BrokerError> {
        match pipe.query_async::<Vec<Value>>(&mut self.conn).await {
            Ok(v) if v.len() == n => return Ok(v),
            Ok(v) => return Err(format!("{} answers to {n} scripts", v.len()).into()),
            Err(e) if e.code() == Some("NOSCRIPT") || e.to_string().contains("NOSCRIPT") => {}
            Err(e) => return Err(e.into()),
        }
        for script in [APPEND, READ, PRESENCE, PRESENCE_LIST] {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script)
                .query_async::<String>(&mut self.conn)
                .await?;
        }
        let v = pipe.query_async::<Vec<Value>>(&mut self.conn).await?;
        if v.len() != n {
            return Err(format!("{} answers to {n} scripts", v.len()).into());
        }
        Ok(v)
    }
}

fn millis(d: std::time::Duration) -> u64 {
    d.as_millis().clamp(1, u128::from(u64::MAX)) as u64
}

fn bytes(v: &Value) -> Result<&[u8], BrokerError> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.as_bytes()),
        other => Err(format!("expected a string, got {other:?}").into()),
    }
}

fn text(v: &Value) -> Result<&str, BrokerError> {
    Ok(std::str::from_utf8(bytes(v)?)?)
}

fn number(v: &Value) -> Result<u64, BrokerError> {
    match v {
        Value::Int(n) => u64::try_from(*n).map_err(|e| e.into()),
        other => Ok(text(other)?.parse()?),
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

//! # Security: duties and past vulnerabilities
//!
//! A WebSocket server reads bytes from anyone who can reach its port. This page maps each
//! security duty of RFC 6455 §10, and each class of vulnerability found in other WebSocket
//! implementations, to the ringws code that handles it and the test that shows it does. Paths are
//! relative to `src/`; each proof names a test function as `PATH#NAME` after the word "test" (checked to exist by this module's
//! own test).
//!
//! ## The rules everything below follows
//!
//! 1. **Limit bytes and counts, not just bytes.** Every quantity a peer controls has a limit in
//!    [`Limits`](crate::proto::Limits): frame bytes, message bytes, fragments per message, header
//!    bytes, header count (outbound queue bytes and timeouts join them in the runtime).
//! 2. **Never allocate from a declared length alone.** Buffers grow with bytes received: the
//!    spill buffer holds at most eight times what has arrived (it is sized for the whole frame
//!    once an eighth of it is in), and never more than `max_message_bytes + 125` plus 10 bytes
//!    of header room.
//! 3. **Never re-parse from the start.** The handshake reader scans each byte once; the frame
//!    parser carries at most 14 header bytes and 3 UTF-8 bytes between reads.
//! 4. **Fail, don't guess.** Every peer error is one [`Error`](crate::proto::Error) variant with
//!    one answer (an HTTP status or a close code); none panics.
//! 5. **Fuzz every parser** (`fuzz/`: `handshake`, `frame`, `connection`, `inflate`), with
//!    property tests in the normal test run covering the same invariants.
//!
//! ## RFC 6455 §10: what a server must do
//!
//! | § | duty | where | proof |
//! |---|---|---|---|
//! | 10.1 | Origin is sent by browsers only; never authenticate by it | `proto/handshake/origin.rs` documents it; authentication is the application's upgrade hook | (documentation) |
//! | 10.2 | check Origin against an allow-list, refuse with 403 | `proto/handshake/origin.rs`: `OriginPolicy` | test: proto/handshake/origin.rs#allow_list_matches_exactly_ignoring_case, test: proto/handshake/origin.rs#missing_origin_follows_allow_missing |
//! | 10.3 | clients mask every frame; a server fails the connection on an unmasked one (§5.1) | `proto/connection.rs`: `check_header` (`Error::UnmaskedFrame`, 1002). uWebSockets and fastwebsockets accept unmasked frames; ringws does not | test: proto/connection/tests.rs#framing_rules_close_with_1002 |
//! | 10.4 | limit frame and message size (after inflation, with deflate) | `check_header` on the header, before any payload; with permessage-deflate the inflater stops at `max_message_bytes` of output, a block at a time, so a small message that inflates past the limit (a zip bomb) closes with 1009 without the memory | test: proto/connection/tests.rs#limits_are_checked_on_the_header_before_any_payload, test: proto/deflate/codec.rs#a_bomb_stops_at_the_limit_with_bounded_memory, test: ../tests/compression.rs#a_small_message_inflating_past_the_limit_is_closed_with_1009_in_bounded_memory |
//! | 10.5 | authenticate during the handshake | the upgrade request exposes every header (cookies, tokens) to the application before it accepts | test: proto/handshake/request.rs#rfc_example_is_accepted |
//! | 10.6 | offer TLS | `--tls-cert`/`--tls-key`: TLS 1.3 and 1.2 in the workers (`tls/`); see "TLS" below | test: ../tests/tls.rs#messages_of_every_size_and_control_frames_cross_tls |
//! | 10.7 | validate all input; invalid UTF-8 in text or close reason fails with 1007 | `proto/utf8.rs` (streaming, fails on the first invalid piece), `proto/close.rs` | test: proto/connection/tests.rs#invalid_utf8_fails_fast_before_the_message_ends, test: proto/connection/tests.rs#close_frame_rules |
//! | 10.8 | SHA-1 only builds `Sec-WebSocket-Accept`, exactly as specified | `proto/handshake` with the `sha1` and `base64` crates | test: proto/handshake/key.rs#rfc_accept_key_example, test: proto/handshake/response.rs#accept_response_bytes |
//! | 10.9 | permessage-deflate side channels (RFC 7692 §8) | see "Compression side channels" below; RSV1 is refused unless permessage-deflate was negotiated | test: proto/connection/tests.rs#rsv1_with_a_negotiated_extension_marks_compressed_messages |
//!
//! ## Compression side channels (RFC 7692 §8)
//!
//! Compression makes a message's length depend on its content. When data an attacker chooses
//! is compressed together with a secret (in one message, or in one compression context across
//! messages), the attacker who can see lengths learns the secret byte by byte, as CRIME and
//! BREACH did against TLS and HTTP compression. What ringws does about it:
//!
//! - **Shared mode** (`--compression shared`, the chat's default) negotiates no context
//!   takeover in either direction: every message is compressed alone, with a fresh window, so
//!   its length depends on that message only, never on what was sent before on the connection
//!   or to anyone else. A fan-out compresses a publication once and sends the same bytes to every
//!   member. The remaining channel is within one message: an application that puts a secret and
//!   attacker-chosen text in the same message should not compress it (send it below
//!   `--compression-min-bytes`, or run with compression off).
//! - **Dedicated mode** (`--compression dedicated`) keeps each connection's window across
//!   messages (better ratios): a message's length then depends on earlier messages sent on that
//!   connection. In a chat those are messages from other people to the same reader, so one
//!   member could, with many tries and a view of the lengths (an on-path observer, since there is
//!   no TLS in ringws yet), learn about what others sent. Use it where the messages on one
//!   connection are not secret from each other, or behind TLS.
//! - Inflating is bounded by the message limit whatever the mode (10.4 above).
//!
//! | property | where | proof |
//! |---|---|---|
//! | in shared mode a message compresses to the same bytes whatever was sent before it | `Codecs::compress_frame` (a no-context deflater per window, reset per message) | test: server/compress.rs#shared_mode_output_does_not_depend_on_earlier_messages |
//! | dedicated mode keeps context (the ratio improves with history): the trade-off above is real | `Dedicated` codecs per connection | test: server/compress.rs#dedicated_mode_keeps_context_per_connection |
//!
//! ## Vulnerabilities of other implementations, and why ringws does not have them
//!
//! | id | what went wrong | in ringws | proof |
//! |---|---|---|---|
//! | gorilla/websocket CVE-2020-27813 | a frame length overflowed an integer and bypassed the read limit | lengths are `u64`, the 64-bit length's top bit is refused (1002), the limit is compared as `u64` before anything is narrowed to `u32` | test: proto/frame/mod.rs#stateless_rules, test: proto/connection/tests.rs#limits_are_checked_on_the_header_before_any_payload |
//! | rust-websocket CVE-2022-35922 | `Vec::with_capacity(declared_len)` aborted the process on a huge declared length | a declared length is checked against the limits on the header, and the spill buffer grows with bytes received (at most eight times what arrived) and is capped | test: proto/connection/tests.rs#spill_buffer_never_exceeds_the_message_limit, test: proto/connection/tests.rs#the_assembly_buffer_grows_to_the_frame_once_an_eighth_has_arrived |
//! | ws CVE-2026-48779 | tiny fragments pinned memory per part, bypassing the byte limit; empty continuations were not counted | fragments are appended into one buffer (no per-part cost), and every frame of a message counts against `max_fragments` (1008), empty ones included | test: proto/connection/tests.rs#empty_continuations_count_as_fragments |
//! | fastwebsockets #100 | no cap on the total size of a fragmented message | `max_message_bytes` is checked on every continuation header against the bytes so far | test: proto/connection/tests.rs#limits_are_checked_on_the_header_before_any_payload |
//! | tungstenite CVE-2023-43669 | the handshake was re-parsed from the start on every read: quadratic CPU | the head reader scans only new bytes and parses once, when the head is complete | test: proto/handshake/reader.rs#byte_by_byte_scans_each_byte_once, test: proto/handshake/reader.rs#endless_stream_fails_quickly_within_the_limit |
//! | ws CVE-2024-37890 | more headers than the parser's maximum crashed the server | `max_headers` bounds the parser's array; more is a 431 | test: proto/handshake/request.rs#too_many_headers |
//! | ws CVE-2021-32640 | a regular expression splitting `Sec-WebSocket-Protocol` backtracked (ReDoS) | plain linear splitting on commas, no regular expressions | test: proto/handshake/request.rs#protocol_list_of_ten_thousand_commas_is_fast |
//! | ws GHSA-5v72-xg48-5rpm | extension names such as `constructor` crashed the parser | extension offers are parsed into borrowed strings, never used as keys into anything | test: proto/handshake/extensions.rs#object_prototype_names_are_plain_names |
//! | ws 8.20.1 (2026) | uninitialised memory was sent in a close reason | close frames are built on a zeroed stack buffer from the code and a `&str` reason cut on a character boundary; no `unsafe` outside `proto/mask` | test: proto/connection/tests.rs#send_side_checks, test: proto/close.rs#reason_truncates_on_char_boundary |
//! | uWebSockets CVE-2020-36406, CVE-2021-45945 | overflows in the pub/sub topic tree and HTTP parser, found by fuzzing | the HTTP parser is `httparse`; every parser of ringws has a fuzz target and property tests; no `unsafe` in parsers | test: proto/connection/tests.rs#arbitrary_bytes_never_panic_and_stay_bounded, test: proto/frame/mod.rs#arbitrary_bytes_never_panic |
//! | (uWebSockets, fastwebsockets) | unmasked client frames accepted: the masking that protects proxies from cache poisoning was skipped | refused with 1002 | test: proto/connection/tests.rs#framing_rules_close_with_1002 |
//! | (uWebSockets, fastwebsockets) | invalid UTF-8 closed without a close frame, or reached the application | the connection fails with 1007 and a close frame; the handler only ever sees `&str` | test: proto/connection/tests.rs#invalid_utf8_fails_fast_before_the_message_ends |
//!
//! ## The running server
//!
//! | risk | in ringws | proof |
//! |---|---|---|
//! | a reader slower than its traffic makes the server buffer without bound (ws and tungstenite are unbounded by default) | `ServerConfig::max_outbound_bytes` per connection: at the mark the server stops reading the connection (flow control), so its own requests cannot grow the queue past the reply ceiling (the mark plus the receive buffers); other messages past the mark are dropped (newest or oldest) or the connection closed with 1013, by policy; close frames are never dropped | test: ../tests/flow.rs#the_servers_memory_stays_bounded_while_100_mib_wait_to_be_echoed, test: ../tests/flow.rs#a_reader_that_never_reads_is_closed_by_the_heartbeat_and_nothing_leaks, test: ../tests/backpressure.rs#a_reader_that_never_reads_costs_bounded_memory, test: ../tests/backpressure.rs#close_policy_closes_with_1013 |
//! | a peer that never answers our close keeps its socket | the close-handshake deadline (`Config::close_timeout`) closes it; graceful shutdown has its own deadline | test: proto/connection/tests.rs#our_close_waits_for_the_reply_then_times_out, test: ../tests/shutdown.rs#shutdown_closes_silent_peers_at_the_deadline |
//! | a closed connection keeps its socket or memory (a dropped read that leaves the fd open) | every close path cancels the armed receive and closes the fd through the ring; the slot is freed only when both completed; counters return to zero | test: ../tests/churn.rs#abrupt_disconnects_free_everything, test: ../tests/close.rs#protocol_errors_close_with_their_code_and_free_the_slot |
//! | an idle connection holds a receive buffer (memory × connections) | multishot receive into the worker's shared buffer ring: a buffer is lent only while its bytes are processed | test: ../tests/echo.rs#a_message_larger_than_many_receive_buffers |
//! | a stale process on the same port silently takes a share of connections (`SO_REUSEPORT`) | `Server::bind` first binds without `SO_REUSEPORT` and refuses a port in use | test: ../tests/cli.rs#a_port_in_use_is_a_one_line_error |
//! | a client that connects and never finishes its upgrade (slowloris) holds a slot | `ServerConfig::handshake_timeout` closes it, however slowly it trickles bytes | test: ../tests/heartbeat.rs#an_unfinished_handshake_is_closed_at_its_deadline |
//! | a peer that vanished without a FIN (phone changed networks) keeps its socket and queue | heartbeat pings after `ping_interval` of silence; no traffic within `pong_timeout` closes and frees it | test: ../tests/heartbeat.rs#a_silent_peer_is_pinged_then_closed_on_schedule |
//! | whatever can publish on the shared broker (another program, an old version, an attacker with Redis access) feeds every client in a room a broken frame | a message from the broker must carry ringws's envelope and exactly one complete, final, unmasked text or binary frame with its length in the shortest form and valid UTF-8 if text; anything else is counted (`ringws_broker_malformed_total`) and dropped, never forwarded | test: broker/envelope.rs#anything_else_is_refused, test: broker/bridge.rs#unreachable_then_lost_then_back_resubscribes_and_counts |
//! | a broker that is down or slow stalls the server or grows its memory | the workers never wait on the bridge thread (one lock per loop iteration to hand over a batch); while the broker is unreachable publications for other nodes are dropped and counted at once; what waits for the broker is bounded by `BrokerConfig::max_pending_bytes`; every broker call has a deadline; a node that publishes all the time still receives | test: ../tests/cluster.rs#redis_stopped_and_started_again_is_survived_and_reported, test: broker/link.rs#publications_cross_only_while_connected_and_within_the_bound, test: broker/bridge.rs#a_node_that_publishes_all_the_time_still_receives |
//! | an application (or whatever feeds it) puts a control frame, a fragment or a malformed frame on connections, which a client would take for the protocol's own | a handler sends `Frame`s only: made by `Frame::text`/`Frame::binary`, by the core for a message it assembled, or checked by `Frame::parse` (one final, unmasked text or binary frame, RSV clear, shortest length, UTF-8 if text); pings go through `Conn::ping`, bounded like pongs | test: proto/frame/message.rs#anything_but_one_whole_message_frame_is_refused, test: broker/envelope.rs#anything_else_is_refused |
//! | a handler that sets timers in a loop grows the worker's memory | `ServerConfig::max_handler_timers` per worker (40 bytes each); more are refused and counted (`ringws_handler_timers_refused_total`); a closed connection's timers are dropped when due | test: ../tests/handler_api.rs#a_worker_holds_at_most_max_handler_timers, test: ../tests/handler_api.rs#timers_fire_in_order_run_deferred_work_and_die_with_their_connection |
//! | another local user (or a stray process) takes the server's listening sockets through the hand-over's control socket, or a broken take-over stops the server | the control socket is created at a temporary name, set to mode 0600 and renamed into place (never reachable by others in between; the unit's `RuntimeDirectoryMode=0700` too); a connection from another user id (`SO_PEERCRED`) is refused before anything is sent; the running server stops only when the new process says it accepts on the sockets, and any failure before that (a process gone, silent past `--handoff-timeout`, a message that does not parse, another protocol version) leaves it serving | test: runtime/seqpacket.rs#a_message_carries_descriptors_that_work_on_the_other_side, test: ../tests/handoff.rs#a_take_over_that_dies_on_the_way_leaves_the_old_server_serving_and_answering |
//! | a Redis password appears in logs or error messages | the bridge describes the broker by host and port only; a bad `--broker` URL is reported with its credentials replaced by `***` | test: ../tests/cli.rs#a_broker_password_is_never_printed |
//!
//! ## TLS (`wss://`)
//!
//! | risk (where it was seen) | in ringws | proof |
//! |---|---|---|
//! | plaintext HTTP or garbage on the TLS port served, or holding the connection | rustls refuses anything that is not a TLS record; the connection gets an alert where there is one, is closed and counted (`ringws_tls_handshake_failures_total`) | test: ../tests/tls.rs#plaintext_http_and_garbage_on_the_tls_port_are_closed_and_counted, test: ../tests/tls_session.rs#plaintext_http_garbage_and_oversized_records_fail_with_an_alert |
//! | a record changed on the way accepted, or an oversized record buffered | AEAD checked by rustls, and after a TLS 1.3 handshake by `tls/record.rs` (`bad_record_mac`: the session dies, nothing more goes in or out); a record over the limit is refused before it is whole; bytes waiting for a record are bounded (`MAX_PENDING`) | test: ../tests/tls_session.rs#a_truncated_client_hello_waits_and_a_tampered_record_fails, test: ../tests/tls_session.rs#nothing_is_sealed_before_the_handshake_and_pending_is_bounded |
//! | a client that starts a handshake and never finishes it (slowloris over TLS) | the handshake timeout counts from the accept and covers the TLS handshake and the upgrade together | test: ../tests/tls.rs#a_tls_handshake_never_finished_is_closed_at_the_handshake_deadline |
//! | 0-RTT data replayed (TLS 1.3 early data) | no early data is accepted (`max_early_data_size = 0`) | test: ../tests/tls_session.rs#a_handshake_then_data_both_ways_in_tls_1_3_and_1_2 |
//! | idle TLS connections holding buffers (memory × connections) | the unbuffered API: the caller owns the buffers; a session keeps none while idle, and traffic leaves nothing behind; a TLS 1.3 session keeps only its keys after the handshake | test: ../tests/tls_memory.rs#an_idle_session_keeps_its_keys_and_no_buffer |
//! | a record layer of one's own (TLS 1.3 after the handshake, `tls/record.rs`): where TLS stacks have broken: a nonce used twice, a key used past its AEAD's limit, content types or padding misread, records accepted in plaintext | the nonce is the IV XOR a 64-bit sequence number that moves once per record; an AES-GCM key is updated before 2^24 records; the inner type is the last non-zero byte (a record of padding alone is refused); `change_cipher_spec`, plaintext and unknown record types are fatal; the derived keys are checked against RFC 8448's vectors and against the keys rustls hands over | test: tls/record/tests.rs#the_key_schedule_matches_rfc_8448, test: tls/record/tests.rs#the_sending_key_is_updated_before_it_seals_more_records_than_allowed, test: tls/record/tests.rs#padding_is_removed_and_a_record_of_padding_alone_fails, test: tls/record/tests.rs#oversized_change_cipher_spec_and_plaintext_records_fail_as_malformed, test: tls/record/tests.rs#any_records_cut_anywhere_open_or_fail_cleanly |
//! | `KeyUpdate` not followed (the peer's next records fail), asked for and never answered, answered after data sealed with the new key (frames queued before the request), split across records, or followed by data in its record | the next receive key at once; when asked, a `KeyUpdate` of ours goes before the next record this side seals (in the queue's order: sealing happens at the flush), several requests get one; split messages are put together (at most 5 bytes held); data after it in its record, or other records between its pieces, are fatal | test: tls/record/tests.rs#a_key_update_asked_for_is_answered_and_both_sides_move_on, test: tls/record/tests.rs#requests_before_this_side_seals_get_one_key_update_and_close_notify_follows_it, test: tls/record/tests.rs#a_key_update_spanning_two_records_is_followed, test: tls/record/tests.rs#bad_key_updates_and_other_handshake_messages_fail_with_an_alert, test: ../tests/tls_session.rs#a_tls_1_3_session_keeps_only_its_keys_and_follows_the_clients_key_updates |
//! | cheap floods after the handshake: key updates, warning alerts, empty records, each answered by work and nothing else | at most 32 key updates, 4 `user_canceled` and 32 empty records in a row without data (rustls' limits); padding counted in the 2^14 + 1 limit | test: tls/record/tests.rs#floods_of_key_updates_warnings_or_empty_records_fail, test: tls/record/tests.rs#padding_past_the_records_limit_fails |
//! | the hand-over from rustls losing or re-reading bytes (data or `close_notify` in the read that finished the handshake, a message half read) | handed over only where rustls took every byte; the sequence numbers and a `close_notify` rustls read carry over | test: ../tests/tls_session.rs#data_and_close_notify_sent_with_the_clients_finished_are_read_once_and_in_order |
//! | the alert for a failure never sent (the queue dropped with it) | a failed session's queue keeps what was sealed, its alert among it, and drops only what was not | test: ../tests/tls.rs#a_tampered_record_is_answered_with_bad_record_mac_then_closed_and_counted, test: server/outbox.rs#sealing_turns_each_run_of_frames_into_one_entry_in_place |
//! | a truncation attack: data after `close_notify`, or a forged `close_notify` | `close_notify` is only read from an authenticated record; what follows it is ignored | test: tls/record/tests.rs#close_notify_ends_the_stream_and_what_follows_is_ignored |
//! | traffic secrets leaking through the key log a session's secrets are caught from | the key log writes into a thread-local slot emptied around one session's call, never to a file; secrets are wiped when dropped (`zeroize`; copies left on the stack by moves, and ring's expanded keys, are not wiped, as with rustls on ring) | test: ../tests/tls_session.rs#a_tls_1_3_session_keeps_only_its_keys_and_follows_the_clients_key_updates |
//!
//! ## The chat application: identity, rules and the backend API
//!
//! | risk (where it was seen) | in ringws | proof |
//! |---|---|---|
//! | `alg: none` tokens accepted as signed (many JWT libraries, 2015) | the header's `alg` must be exactly the key's algorithm, checked before anything else; `none` in any case is refused | test: app/chat/identity.rs#alg_none_and_algorithm_confusion_are_refused, test: ../tests/identity.rs#tokens_are_checked_at_the_upgrade |
//! | algorithm confusion: an HS256 token whose secret is the server's RSA/EC public key (node-jsonwebtoken CVE-2015-9235, PyJWT CVE-2022-29217) | one key, one algorithm: a server with a public key accepts only RS256 or ES256, so an HS256 token is refused before any signature is computed | test: app/chat/identity.rs#alg_none_and_algorithm_confusion_are_refused |
//! | tampered claims, expired or not-yet-valid tokens, huge tokens | signature checked by `jsonwebtoken`; `exp` and `nbf` against the time passed in (5 s leeway); tokens over 4 KiB refused unread | test: app/chat/identity.rs#bad_signatures_and_shapes_are_refused, test: app/chat/identity.rs#time_and_claims_are_checked |
//! | a cache of verified tokens that a forged token could hit | keyed by the SHA-256 of the whole token, filled only after a signature verified; times are checked on every hit | test: app/chat/identity.rs#a_verified_token_is_remembered_and_still_checked_for_time |
//! | a token used past its expiry on a long-lived connection | the connection is told before `exp`, and closed with 4001 at `exp` unless it refreshed (same `sub` only) | test: ../tests/identity.rs#an_expiring_token_is_told_then_the_connection_closed_with_4001, test: ../tests/identity.rs#a_refreshed_token_keeps_the_connection |
//! | joining another user's private channel (personal rooms, claims) | `user:<id>` only for that `sub`; namespaces' rules checked on every join | test: ../tests/identity.rs#rooms_follow_their_namespace_rules |
//! | `X-Forwarded-For` believed from anyone (per-IP limits bypassed or turned on a victim) | only from `--trusted-proxy` peers, the rightmost untrusted address of every such line | test: app/chat/clients.rs#forwarded_for_is_believed_from_trusted_proxies_only, test: ../tests/identity.rs#connections_per_client_address_are_limited_behind_a_trusted_proxy |
//! | an API key guessed by timing, or a body read for a caller without a key | constant-time comparison (`subtle`), checked on the head before any body is read; its own listener, never the public port | test: ../tests/api.rs#every_request_needs_the_key_and_a_known_endpoint |
//! | a member cancelling the backend's (or another room's) messages through the duplicate-message key | the API's keys contain `:`, which no client id may; a room's Redis keys are separated by `|`, which no room name may | test: app/chat/protocol.rs#requests_parse |
//! | a token made for one purpose used for another: a room token (handed to many, for one room) opening connections, or a token of another service sharing the key | a token with `room` is refused as a connection token and one without it as a room token; `--jwt-issuer` / `--jwt-audience` make `iss` and `aud` required | test: app/chat/identity.rs#room_tokens_name_the_user_and_the_room, test: app/chat/identity.rs#issuer_and_audience_are_required_once_set, test: ../tests/identity.rs#tokens_are_checked_at_the_upgrade |
//! | a member who saw another's message id (ids are echoed) sends it first, so the other's retry is dropped as a duplicate | with tokens the duplicate key is scoped by the sender's user (`u:<user>:<id>`) | test: app/chat/cluster/tests.rs#a_users_ids_are_its_own_in_the_logs_duplicate_keys |
//! | a refreshed token with fewer rooms leaves the connection in rooms it may no longer join | on refresh every joined room whose rule is `claim` is checked again; those not allowed are left (`forbidden`, then `left`) | test: ../tests/identity.rs#a_refreshed_token_with_fewer_rooms_leaves_the_rooms_it_no_longer_allows |
//! | `--auth-token` guessed by timing | compared in constant time (`subtle`) | test: bin/ringws/cli/tests.rs#the_auth_token_is_checked_in_the_query_and_as_a_bearer |
//! | whatever can publish on the broker sends the servers control messages (disconnect a user everywhere) | control messages ride the broker, which the servers trust as they trust each other (README, Running a cluster): give Redis a password and a private network; a control message that does not parse is ignored, and the servers it names in `/api/info` are bounded (1,024) | test: app/chat/servers.rs#messages_round_trip_and_strangers_are_ignored, test: app/chat/servers.rs#the_number_remembered_is_bounded |
//! | a client flooding sends, joins, history or presence requests | token buckets per connection; refusals count, and persistent abuse closes with 1008 | test: app/chat/rate.rs#a_burst_then_the_sustained_rate, test: ../tests/identity.rs#rate_limits_refuse_the_excess_refill_and_close_persistent_abuse |

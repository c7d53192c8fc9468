// ServerOptions: every limit and interval of the transport, with the defaults --help shows.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "http/client_address.h"

namespace roomcast::net {

using std::chrono::milliseconds;

// permessage-deflate (RFC 7692), --compression.
enum class Compression : std::uint8_t {
  kOff,  // decline every offer: frames leave as they are
  // Accept offers; compress each message once, without context takeover, and send the same
  // compressed frame to every recipient that negotiated (docs/operations.md: the trade-off).
  kShared,
  // As kShared for peers that ask for server_no_context_takeover; for the others, each
  // connection has a compressor of its own that keeps its window between messages (context
  // takeover): better ratios on repetitive traffic, one deflate per recipient and about 30 KiB
  // per such connection from its first compressed message on.
  kDedicated,
};

struct ServerOptions {
  std::string host = "0.0.0.0";
  std::uint16_t port = 3000;  // 0 picks a free port
  unsigned threads = 0;  // I/O workers; 0 means one per hardware thread
  static constexpr unsigned kMaxThreads = 64;  // worker sets are 64-bit masks

  // Serve the RFC 6455 conformance echo endpoint at /echo.
  bool echo_endpoint = false;

  // Largest WebSocket message accepted, all fragments together (1009 beyond). A chat
  // message is at most 500 characters; 1 MiB leaves room for the binary extensions.
  std::size_t max_message_size = 1 << 20;

  // permessage-deflate. Shared compression costs one deflate per message (not per recipient)
  // and no memory per connection between messages: we ask every client to compress without
  // context takeover too, so no inflate state outlives a message (docs/operations.md).
  Compression compression = Compression::kShared;
  // Messages shorter than this leave uncompressed (RSV1 clear) even to peers that negotiated:
  // below it deflate saves a few bytes at best, for a compression's whole cost.
  std::size_t compression_min_bytes = 64;

  // Bytes queued for one connection, beyond what its socket takes, before it counts as a
  // slow consumer and is closed with 1008 (a burst may briefly reach twice this before a
  // write shows whether the peer keeps up). Bounds the memory one stalled reader can pin;
  // a few seconds of a busy room's traffic fit comfortably.
  std::size_t max_queued_bytes = 16 << 20;

  // Recipients of deliveries waiting in the workers' mailboxes (all workers) or behind the
  // history store (messages not yet made durable, counted by their room's members) beyond
  // which a connection that sends a message stops being read until half of them are
  // delivered (WorkerContext::pending_deliveries). A saturated server holds its backlog in the
  // senders' sockets instead of its memory, and the wait of a pong, a join or a small
  // room's message behind bulk fan-out stays about this many deliveries long: a few tens
  // of milliseconds of one worker's fan-out.
  std::size_t max_pending_deliveries = 64 << 10;

  // Heartbeat: ping every ping_interval; a connection that sends nothing at all (no pong,
  // no frame) for idle_timeout is terminated. The chapter's 15 s / 30 s.
  milliseconds ping_interval{15'000};
  milliseconds idle_timeout{30'000};

  // A client must finish its HTTP request (upgrade or not) within this time, and an idle
  // keep-alive HTTP connection is closed after it, so silent sockets cannot pile up.
  milliseconds handshake_timeout{10'000};

  // After the server sends a close frame it waits this long for the peer's close frame
  // (and, after shutting down its side, for the peer's FIN) before dropping the socket.
  milliseconds close_timeout{2'000};

  // Graceful shutdown: how long clients get to finish the closing handshake.
  milliseconds shutdown_timeout{3'000};

  // HTTP request limits (no endpoint takes a body; headers of real browsers fit in 8 KiB).
  std::size_t max_http_header_bytes = 16 << 10;
  std::size_t max_http_body_bytes = 64 << 10;

  // listen() backlog: bursts of thousands of handshakes must not be dropped.
  int listen_backlog = 4096;

  // TLS: with both set, every connection is https / wss (PEM files; the certificate file may
  // hold the chain). Empty: plain TCP.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Refuse chat connections without a valid token (close 4001 after the upgrade). Off by
  // default: anonymous users are welcome on a single-node demo.
  bool require_auth = false;

  // Open WebSockets in total and per client address; a handshake over either gets 503.
  // 0: no limit. Off by default: the descriptor limit (RLIMIT_NOFILE) already bounds the
  // total, and behind a reverse proxy every client shares the proxy's address.
  std::size_t max_connections = 0;
  std::size_t max_connections_per_ip = 0;

  // Reverse proxies whose forwarding header names the client (http/client_address.h). The
  // client address counts against max_connections_per_ip and anonymous users' shared rate
  // budget, and appears in logs. Empty: every peer is the client itself.
  http::TrustedProxies trusted_proxies;
  http::ForwardedHeader client_address_header = http::ForwardedHeader::kXForwardedFor;

  // Origins ("https://chat.example.com") whose pages may open a WebSocket; a handshake with
  // another Origin gets 403. Empty: every origin (the demo's web client is served from
  // this server, but a deployment may put it elsewhere).
  std::vector<std::string> allowed_origins;
};

}  // namespace roomcast::net

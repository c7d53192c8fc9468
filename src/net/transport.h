// Transport: how a WebSocket's bytes reach the wire, plain (a TCP descriptor) or TLS (an
// OpenSSL session on that descriptor), with one vocabulary of outcomes for both.
//
// Connection has one read path and one flush path (and SendQueue one gather loop), written
// once as templates over a transport type and instantiated for PlainTransport and
// TlsTransport; the connection picks the instantiation with one branch per event, on whether
// it has a TLS session.
//
// Why static dispatch and not a virtual Transport: the plain path is the hot path (a broadcast
// is one gather write per recipient, and bench/OPTIMIZATIONS.md measures the bytes an idle
// connection holds). A virtual interface would need a transport object per connection — a heap
// block or a vtable pointer in every Connection, bytes an idle connection pays for — and an
// indirect call per read and write that the compiler cannot inline into the gather loop. A
// std::variant would hold the larger alternative and an index in every connection. These
// transports are views made on the stack from what Connection already holds (a descriptor and
// an SSL pointer), so the seam costs nothing per connection (sizeof(Connection) unchanged), the
// plain instantiation compiles to the very sendmsg/read calls it had before (no indirect call),
// and tests instantiate the same loops with a fake. Measured under callgrind on a fixed plain
// fan-out (20,000 deliveries): the server's user-space instructions rose by about 0.7% in all,
// the flush's by about 17 per call (see SendQueue::flush); the system calls are the same.
//
// Outcomes (IoStatus): kDone moved `bytes`; kWantRead / kWantWrite would block — retry once the
// descriptor is readable / writable; kClosed: the peer ended the stream (EOF, close_notify);
// kFailed: an error, a reset, a TLS protocol error — drop the connection. "Would block" is an
// outcome, not an error (nginx's AGAIN).
//
// A Transport type T provides:
//   IoResult read(std::span<std::uint8_t> into);
//   IoResult write(std::span<const iovec> pieces);  // in order, as one stream of bytes
//   bool has_unread_input() const;  // the peer sent bytes we have not read yet
//   static constexpr bool kMayHoldInput;  // input can wait inside T, unseen by epoll
// A plain write that would block keeps nothing, so its retry may send anything; a TLS write
// must be retried with the same bytes (TlsTransport::kRetryRepeatsBytes).
//
// Both are non-owning views, used on the owning worker's thread (the descriptor and the SSL
// session belong to the Connection) for the length of one call.
//
// Below both sits the TCP stream itself: tcp_bytes_acknowledged() says how much of what we
// wrote the peer's kernel has taken (the same count under TLS, which only changes the bytes).
#pragma once

#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>

namespace roomcast::net {

enum class IoStatus : std::uint8_t {
  kDone,  // bytes moved (or the handshake finished)
  kWantRead,  // would block: retry once the descriptor is readable
  kWantWrite,  // would block: retry once it is writable
  kClosed,  // the peer ended the stream (EOF, or TLS close_notify)
  kFailed,  // an error, a reset, a protocol error, a failed handshake: drop the connection
};

struct IoResult {
  IoStatus status;
  // Bytes moved by this call. A write may move some bytes and then report kWantWrite: the
  // socket took part of what it was offered and is now full.
  std::size_t bytes = 0;
};

// A plain TCP descriptor (non-blocking).
// Bytes of this TCP stream the peer has acknowledged (TCP_INFO's tcpi_bytes_acked): it grows
// while the peer takes our data, and stops when the peer is gone or its application reads
// nothing and its receive buffer is full. 0 if the descriptor cannot say (not TCP).
std::uint64_t tcp_bytes_acknowledged(int fd);

class PlainTransport {
 public:
  explicit PlainTransport(int fd) : fd_(fd) {}

  // Level-triggered epoll reports every byte the kernel holds: one read per readiness event is
  // enough, and leaves the others' turn to the next event.
  static constexpr bool kMayHoldInput = false;

  IoResult read(std::span<std::uint8_t> into) {
    const ssize_t n = ::read(fd_, into.data(), into.size());
    if (n > 0) return {IoStatus::kDone, static_cast<std::size_t>(n)};
    if (n == 0) return {IoStatus::kClosed};
    // EINTR too: level-triggered epoll brings the descriptor back.
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return {IoStatus::kWantRead};
    return {IoStatus::kFailed};
  }

  IoResult write(std::span<const iovec> pieces) {
    // sendmsg rather than writev for MSG_NOSIGNAL: a peer that has gone away must cost us an
    // EPIPE for this connection, not a SIGPIPE that ends the whole process.
    msghdr message{};
    message.msg_iov = const_cast<iovec*>(pieces.data());
    message.msg_iovlen = pieces.size();
    for (;;) {
      const ssize_t n = ::sendmsg(fd_, &message, MSG_NOSIGNAL);
      if (n >= 0) {
        const auto moved = static_cast<std::size_t>(n);
        // A non-blocking stream socket takes less than offered only when its buffer is full.
        return {moved < total_bytes(pieces) ? IoStatus::kWantWrite : IoStatus::kDone, moved};
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoStatus::kWantWrite};
      return {IoStatus::kFailed};
    }
  }

  bool has_unread_input() const;

 private:
  static std::size_t total_bytes(std::span<const iovec> pieces) {
    std::size_t total = 0;
    for (const iovec& piece : pieces) total += piece.iov_len;
    return total;
  }

  int fd_;
};

// An OpenSSL session bound to its descriptor (SSL_set_fd), or to memory BIOs in tests.
class TlsTransport {
 public:
  // `fd` is the session's descriptor, for has_unread_input; -1 if it has none.
  TlsTransport(SSL* ssl, int fd) : ssl_(ssl), fd_(fd) {}

  // OpenSSL may hold decrypted bytes the descriptor no longer signals (a record larger than
  // one read, several records in one segment): read until it asks for more input.
  static constexpr bool kMayHoldInput = true;
  // TLS has no gather write: one write copies the pieces into a chunk of this size (one full
  // record) and hands it to SSL_write, which also keeps the records (and their overhead) few.
  static constexpr std::size_t kChunkBytes = 16 << 10;
  // After kWantWrite OpenSSL requires the retry to offer the same bytes again, at least as
  // many: the chunk is rebuilt from the same queue position, so the first kChunkBytes queued
  // there must not change (SendQueue::push_ahead respects it).
  static constexpr std::size_t kRetryRepeatsBytes = kChunkBytes;

  IoResult read(std::span<std::uint8_t> into);
  IoResult write(std::span<const iovec> pieces);
  // One contiguous buffer, as the HTTP phase writes (HttpStream).
  IoResult write(const void* data, std::size_t size);
  IoStatus handshake();
  // Sends close_notify (best effort; never waits for the peer's).
  void shutdown();
  bool has_unread_input() const;

 private:
  SSL* ssl_;
  int fd_;
};

}  // namespace roomcast::net

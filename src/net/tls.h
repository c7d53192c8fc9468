// TLS for https:// and wss:// through OpenSSL.
//
// A TLS connection keeps one SSL object bound straight to its descriptor (SSL_set_fd), for
// both phases: during the HTTP phase, Beast reads and writes through HttpStream, which waits
// for readiness with Asio; after the upgrade, the worker's epoll loop reads and writes the
// same SSL object. Both go through TlsTransport (net/transport.h). Nothing has to be handed
// over at the upgrade, which is why this is not asio::ssl::stream (its engine buffers
// ciphertext where we cannot reach it).
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <cstddef>
#include <filesystem>
#include <iterator>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "net/transport.h"
#include "net/worker.h"

namespace roomcast::net {

struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslSession = std::unique_ptr<SSL, SslDeleter>;

// The server's certificate and key. Thread-safe: workers make sessions from it while the
// control thread reloads it.
class TlsContext {
 public:
  // Loads a PEM certificate chain and its private key. Throws std::runtime_error naming the
  // file and OpenSSL's reason if either cannot be read or they do not match.
  TlsContext(std::filesystem::path cert_file, std::filesystem::path key_file);
  ~TlsContext();

  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A server-side session on descriptor `fd` (which stays owned by the caller), or nullptr
  // if OpenSSL is out of memory. Called once per accepted connection, never per message.
  SslSession new_session(int fd) const;

  // Loads the certificate and key again from the same files (SIGHUP, after a renewal): new
  // sessions use them, sessions already made keep the ones they started with. If the files
  // cannot be loaded, the current certificate stays in use and std::runtime_error says why,
  // as the constructor does.
  void reload();

  const std::filesystem::path& cert_file() const { return cert_file_; }

 private:
  const std::filesystem::path cert_file_;
  const std::filesystem::path key_file_;
  // Guards the pointer only: SSL_new takes its own reference to the context, so a reload
  // frees the old one while the sessions made from it go on using it.
  mutable std::mutex mutex_;
  SSL_CTX* ctx_;
};

// A Beast-compatible stream for the HTTP phase: plain TCP when `ssl` is null, TLS through
// `ssl` otherwise. The socket and the SSL object must outlive every pending operation.
class HttpStream {
 public:
  using executor_type = Socket::executor_type;

  HttpStream(Socket& socket, SSL* ssl) : socket_(socket), ssl_(ssl) {}

  executor_type get_executor() { return socket_.get_executor(); }
  bool is_tls() const { return ssl_ != nullptr; }

  // Completes the TLS handshake (at once for plain TCP).
  template <typename Handler>
  auto async_handshake(Handler&& handler) {
    return run([this]() { return IoResult{TlsTransport(ssl_, -1).handshake()}; },
               std::forward<Handler>(handler));
  }

  template <typename MutableBuffers, typename Handler>
  auto async_read_some(const MutableBuffers& buffers, Handler&& handler) {
    if (ssl_ == nullptr) return socket_.async_read_some(buffers, std::forward<Handler>(handler));
    return run(
        [this, buffers]() {
          const auto buffer = first_nonempty(buffers);
          return TlsTransport(ssl_, -1).read(
              {static_cast<std::uint8_t*>(buffer.data()), buffer.size()});
        },
        std::forward<Handler>(handler));
  }

  template <typename ConstBuffers, typename Handler>
  auto async_write_some(const ConstBuffers& buffers, Handler&& handler) {
    if (ssl_ == nullptr) return socket_.async_write_some(buffers, std::forward<Handler>(handler));
    return run(
        [this, buffers]() {
          const auto buffer = first_nonempty(buffers);
          return TlsTransport(ssl_, -1).write(buffer.data(), buffer.size());
        },
        std::forward<Handler>(handler));
  }

 private:
  // TLS moves one buffer per call; Beast's sequences rarely hold more than one anyway.
  template <typename Buffers>
  static auto first_nonempty(const Buffers& buffers) {
    using Buffer = typename std::iterator_traits<decltype(boost::asio::buffer_sequence_begin(
        buffers))>::value_type;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      if (Buffer(*it).size() > 0) return Buffer(*it);
    }
    return Buffer();
  }

  // Runs `attempt` until it is done, waiting for the readiness it asks for in between. The
  // first attempt is posted, so a handler never runs inside the call that started it.
  template <typename Attempt, typename Handler>
  auto run(Attempt attempt, Handler&& handler) {
    enum class Step { kStart, kRetry };
    return boost::asio::async_compose<Handler, void(boost::system::error_code, std::size_t)>(
        [this, attempt, step = Step::kStart](auto& self,
                                             boost::system::error_code ec = {}) mutable {
          if (step == Step::kStart) {
            step = Step::kRetry;
            boost::asio::post(socket_.get_executor(), std::move(self));
            return;
          }
          if (ec) {
            self.complete(ec, 0);
            return;
          }
          const IoResult result = attempt();
          switch (result.status) {
            case IoStatus::kDone:
              self.complete({}, result.bytes);
              return;
            case IoStatus::kWantRead:
              socket_.async_wait(Socket::wait_read, std::move(self));
              return;
            case IoStatus::kWantWrite:
              socket_.async_wait(Socket::wait_write, std::move(self));
              return;
            case IoStatus::kClosed:
              self.complete(boost::asio::error::eof, 0);
              return;
            case IoStatus::kFailed:
              self.complete(boost::asio::error::connection_reset, 0);
              return;
          }
        },
        handler, socket_);
  }

  Socket& socket_;
  SSL* ssl_;
};

}  // namespace roomcast::net

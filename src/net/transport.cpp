#include "net/transport.h"

#include <linux/tcp.h>  // tcp_info with tcpi_bytes_acked (glibc's copy predates it)
#include <netinet/in.h>
#include <openssl/err.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace roomcast::net {
namespace {

IoStatus status_of(SSL* ssl, int result) {
  switch (SSL_get_error(ssl, result)) {
    case SSL_ERROR_WANT_READ:
      return IoStatus::kWantRead;
    case SSL_ERROR_WANT_WRITE:
      return IoStatus::kWantWrite;
    case SSL_ERROR_ZERO_RETURN:
      return IoStatus::kClosed;
    default:
      // The error queue is per thread and shared by every connection of this worker: leave
      // nothing in it for the next one to misread.
      ERR_clear_error();
      return IoStatus::kFailed;
  }
}

bool kernel_holds_input(int fd) {
  int unread = 0;
  return fd >= 0 && ::ioctl(fd, FIONREAD, &unread) == 0 && unread > 0;
}

}  // namespace

std::uint64_t tcp_bytes_acknowledged(int fd) {
  tcp_info info{};
  socklen_t size = sizeof info;
  if (fd < 0 || ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0) return 0;
  // A kernel older than 4.1 fills a shorter struct without the field.
  if (size < offsetof(tcp_info, tcpi_bytes_acked) + sizeof info.tcpi_bytes_acked) return 0;
  return info.tcpi_bytes_acked;
}

bool PlainTransport::has_unread_input() const {
  return kernel_holds_input(fd_);
}

IoResult TlsTransport::read(std::span<std::uint8_t> into) {
  std::size_t moved = 0;
  const int result = SSL_read_ex(ssl_, into.data(), into.size(), &moved);
  if (result == 1) return {IoStatus::kDone, moved};
  return {status_of(ssl_, result)};
}

IoResult TlsTransport::write(const void* data, std::size_t size) {
  std::size_t moved = 0;
  const int result = SSL_write_ex(ssl_, data, size, &moved);
  if (result == 1) return {IoStatus::kDone, moved};
  return {status_of(ssl_, result)};
}

IoResult TlsTransport::write(std::span<const iovec> pieces) {
  // One chunk per worker thread, reused by every connection's flush.
  static thread_local std::array<std::uint8_t, kChunkBytes> chunk;
  std::size_t size = 0;
  for (const iovec& piece : pieces) {
    const std::size_t take = std::min(piece.iov_len, chunk.size() - size);
    std::memcpy(chunk.data() + size, piece.iov_base, take);
    size += take;
    if (size == chunk.size()) break;
  }
  // With SSL_MODE_ENABLE_PARTIAL_WRITE a kDone may move less than the chunk (and the chunk
  // less than the pieces): the caller goes on with the rest, as after a full write.
  return write(chunk.data(), size);
}

IoStatus TlsTransport::handshake() {
  const int result = SSL_do_handshake(ssl_);
  return result == 1 ? IoStatus::kDone : status_of(ssl_, result);
}

void TlsTransport::shutdown() {
  if (SSL_shutdown(ssl_) < 0) ERR_clear_error();
}

bool TlsTransport::has_unread_input() const {
  return SSL_pending(ssl_) > 0 || kernel_holds_input(fd_);
}

}  // namespace roomcast::net

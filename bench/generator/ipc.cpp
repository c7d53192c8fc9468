#include "ipc.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace roomcast::bench {

bool write_message(int fd, const void* data, std::size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool read_message(int fd, void* data, std::size_t size) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

void set_error(char (&field)[240], const char* text) {
  if (field[0] != '\0') return;  // keep the first
  std::strncpy(field, text, sizeof field - 1);
  field[sizeof field - 1] = '\0';
}

}  // namespace roomcast::bench

// ConnectionGate: counts open WebSockets, in total and per client address, so that neither
// one address nor everyone together can take every descriptor and every byte of memory.
// A handshake over a limit is answered 503 before the upgrade (see Connection::upgrade).
//
// Thread-safe: every worker admits and releases through the one gate, under its mutex.
// With no limit set, admit() takes no lock and counts nothing, so the default costs the
// handshake path nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace roomcast::net {

class ConnectionGate {
 public:
  // 0 means no limit.
  ConnectionGate(std::size_t max_total, std::size_t max_per_address);

  ConnectionGate(const ConnectionGate&) = delete;
  ConnectionGate& operator=(const ConnectionGate&) = delete;

  // What an admitted connection holds until release(): its address's count. Opaque.
  using Pass = std::pair<const std::string, std::size_t>;

  enum class Verdict : std::uint8_t { kAdmitted, kServerFull, kAddressFull };

  // Counts one more connection from `address` if both limits allow it. On kAdmitted,
  // `pass` is what release() must get back when the connection ends (nullptr when no limit
  // is set: nothing to give back).
  Verdict admit(const std::string& address, Pass*& pass);
  void release(Pass* pass);

 private:
  const std::size_t max_total_;
  const std::size_t max_per_address_;
  std::mutex mutex_;
  std::size_t total_ = 0;
  std::unordered_map<std::string, std::size_t> per_address_;  // addresses with a connection
};

}  // namespace roomcast::net

#include "net/connection_gate.h"

namespace roomcast::net {

ConnectionGate::ConnectionGate(std::size_t max_total, std::size_t max_per_address)
    : max_total_(max_total), max_per_address_(max_per_address) {}

ConnectionGate::Verdict ConnectionGate::admit(const std::string& address, Pass*& pass) {
  pass = nullptr;
  if (max_total_ == 0 && max_per_address_ == 0) return Verdict::kAdmitted;
  std::lock_guard lock(mutex_);
  if (max_total_ != 0 && total_ >= max_total_) return Verdict::kServerFull;
  auto [it, inserted] = per_address_.try_emplace(address, 0);
  if (max_per_address_ != 0 && it->second >= max_per_address_) return Verdict::kAddressFull;
  ++it->second;
  ++total_;
  pass = &*it;  // node-based map: the address stays put while others come and go
  return Verdict::kAdmitted;
}

void ConnectionGate::release(Pass* pass) {
  if (pass == nullptr) return;
  std::lock_guard lock(mutex_);
  --total_;
  if (--pass->second == 0) per_address_.erase(per_address_.find(pass->first));
}

}  // namespace roomcast::net

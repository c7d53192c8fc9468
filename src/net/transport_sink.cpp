#include "net/transport_sink.h"

#include "chat/protocol.h"
#include "net/connection.h"
#include "net/message_frames.h"
#include "net/worker.h"
#include "ws/close_code.h"
#include "ws/frame.h"

namespace roomcast::net {

// The chat names its close codes without knowing the codec; they must be the codec's.
static_assert(chat::close_code::kTokenExpired ==
              static_cast<std::uint16_t>(ws::CloseCode::kTokenExpired));

void TransportSink::send(chat::ConnectionId to, std::string payload) {
  published_.fetch_add(1, std::memory_order_relaxed);
  Connection* connection = worker_.find(to);
  if (connection == nullptr) return;
  MessageFrames frames(worker_, ws::Opcode::kText, payload);
  connection->enqueue(frames.for_connection(*connection));
  worker_.metrics().add(metrics::Counter::kDeliveries);
}

void TransportSink::broadcast(const chat::MemberSnapshot& members, std::string payload,
                              chat::ConnectionId except) {
  fan_out(members, ws::Opcode::kText, payload, except);
}

void TransportSink::broadcast_binary(const chat::MemberSnapshot& members, std::string_view payload,
                                     chat::ConnectionId except) {
  fan_out(members, ws::Opcode::kBinary, payload, except);
}

std::uint64_t TransportSink::fan_out(const chat::MemberSnapshot& members, ws::Opcode opcode,
                                     std::string_view payload, chat::ConnectionId except) {
  if (!members || members->empty()) return 0;
  published_.fetch_add(1, std::memory_order_relaxed);
  // Encode once (and compress once); every recipient's queue holds the same bytes.
  MessageFrames frames(worker_, opcode, payload);
  std::uint64_t delivered = 0;
  for (const chat::ConnectionId id : *members) {
    if (id == except) continue;
    if (Connection* connection = worker_.find(id)) {
      connection->enqueue(frames.for_connection(*connection));
      ++delivered;
    }
  }
  worker_.metrics().add(metrics::Counter::kDeliveries, delivered);
  return delivered;
}

void TransportSink::broadcast_message(const chat::MemberSnapshot& members, std::string payload,
                                      chat::ConnectionId except, const chat::Delivery& delivery) {
  const std::uint64_t delivered = fan_out(members, ws::Opcode::kText, payload, except);
  if constexpr (!metrics::kHistogramsRecorded) return;
  if (delivery.fan_out > 0) worker_.metrics().fan_out.record(delivery.fan_out);
  // Another node's message (no acceptance time here), or no recipient on this worker.
  if (delivery.accepted_at == base::SteadyTime{} || delivered == 0) return;
  worker_.note_delivery(delivery.accepted_at);
}

void TransportSink::broadcast_latest(const chat::MemberSnapshot& members, std::string payload,
                                     chat::ConnectionId except, std::uint64_t key) {
  if (!members || members->empty()) return;
  published_.fetch_add(1, std::memory_order_relaxed);
  MessageFrames frames(worker_, ws::Opcode::kText, payload);
  Latest& latest = latest_[key];
  std::uint64_t delivered = 0;
  for (const chat::ConnectionId id : *members) {
    if (id == except) continue;
    if (Connection* connection = worker_.find(id)) {
      connection->enqueue_latest(frames.for_connection(*connection), latest.plain.get(),
                                 latest.compressed.get());
      ++delivered;
    }
  }
  latest = {frames.plain(), frames.compressed()};
  worker_.metrics().add(metrics::Counter::kDeliveries, delivered);
  // Keys come and go with players: forget those whose frames no queue holds any more.
  constexpr std::size_t kForgetAbove = 4096;
  if (latest_.size() > kForgetAbove) {
    std::erase_if(latest_, [](const auto& entry) {
      return entry.second.plain.use_count() <= 1 && entry.second.compressed.use_count() <= 1;
    });
  }
}

void TransportSink::close(chat::ConnectionId who, std::uint16_t close_code, std::string reason) {
  worker_.close_after_batch(who, static_cast<ws::CloseCode>(close_code), std::move(reason));
}

void TransportSink::hold_reading(chat::ConnectionId who, bool hold) {
  if (hold) {
    worker_.hold_reading(who);
  } else {
    worker_.release_reading_after_batch(who);
  }
}

}  // namespace roomcast::net

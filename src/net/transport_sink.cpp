#include "net/transport_sink.h"

#include "chat/protocol.h"
#include "net/worker.h"
#include "ws/close_code.h"
#include "ws/frame.h"

namespace roomcast::net {

// The chat names its close codes without knowing the codec; they must be the codec's.
static_assert(chat::close_code::kTokenExpired ==
              static_cast<std::uint16_t>(ws::CloseCode::kTokenExpired));

void TransportSink::send(chat::ConnectionId to, std::string payload) {
  published_.fetch_add(1, std::memory_order_relaxed);
  workers_[Worker::worker_of(to)]->post_send(
      to, base::make_shared_frame(ws::make_frame(ws::Opcode::kText, payload)));
}

void TransportSink::broadcast(const chat::MemberSnapshot& members, std::string payload,
                              chat::ConnectionId except) {
  if (!members || members->empty()) return;
  published_.fetch_add(1, std::memory_order_relaxed);
  // Encode once; every worker gets the same bytes and the same member snapshot.
  const base::SharedFrame frame =
      base::make_shared_frame(ws::make_frame(ws::Opcode::kText, payload));
  if (workers_.size() == 1) {
    workers_[0]->post_broadcast(members, frame, except);
    return;
  }
  std::uint64_t workers_with_members = 0;  // bit w: worker w has a recipient
  for (const auto id : *members) {
    if (id != except) workers_with_members |= std::uint64_t{1} << Worker::worker_of(id);
  }
  for (std::size_t w = 0; w < workers_.size(); ++w) {
    if ((workers_with_members >> w) & 1) workers_[w]->post_broadcast(members, frame, except);
  }
}

void TransportSink::close(chat::ConnectionId who, std::uint16_t close_code, std::string reason) {
  workers_[Worker::worker_of(who)]->post_close(who, close_code, std::move(reason));
}

}  // namespace roomcast::net

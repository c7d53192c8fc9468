// Fuzz target for chat::Hub, the chat's state machine, driven through its public API the
// way the transport drives it, with a ManualClock and a Sink that checks what comes out.
//
// Input: a sequence of operations. Each is one byte (the operation is byte % 8) followed
// by its arguments, one byte each; input that runs out reads as zeros.
//   0 connect SLOT           a new connection in SLOT (byte % 8) if the slot is free; if
//                            not, connect() again with the same id, which must be ignored
//   1 disconnect SLOT        the connection in SLOT is gone (nothing if the slot is free)
//   2 say SLOT KIND ROOM NAME TEXT   a well-formed message built from the tables below
//   3 say-raw SLOT LEN BYTES         LEN bytes of text, as they come
//   4 tick
//   5 advance STEP           moves the clock by kClockSteps[STEP % 8]
//   6 binary SLOT            a binary message
//   7 stranger KIND ROOM NAME TEXT   a message from an id that never connected
//
// The Sink keeps a model of what the clients have been told and checks each payload
// against it: every payload is a JSON object of a known type; nothing goes to a
// connection that is not open (never connected, or already disconnected); a connection
// hears connection_established first and once; a room's broadcasts reach exactly its
// members; each member sees a room's seq numbers without gaps; typing_start and
// typing_stop alternate per user and room, and none outlives its user or the timeout.
#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "chat/hub.h"
#include "chat/protocol.h"
#include "chat/sink.h"
#include "store/memory_store.h"

namespace roomcast::chat {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

[[noreturn]] void violated(std::string_view what) {
  std::fprintf(stderr, "fuzz_hub: invariant violated: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

void require(bool ok, std::string_view what) {
  if (!ok) violated(what);
}

constexpr std::size_t kSlots = 8;
constexpr std::array<milliseconds, 8> kClockSteps{
    milliseconds(1),    milliseconds(10),   milliseconds(50),   milliseconds(100),
    milliseconds(1000), milliseconds(4999), milliseconds(5000), milliseconds(60000)};

// Arguments of a well-formed message: valid values, values at and just past each limit,
// names that trim to the same name, and names the protocol refuses.
const std::array<std::string, 8>& room_names() {
  static const std::array<std::string, 8> names{
      "lobby", "general", " lobby ", "caf\u00e9", std::string(30, 'r'), std::string(31, 'r'),
      "",      "a<b"};
  return names;
}
// Also: invisible ends, a look-alike of "alice" (Cyrillic a), a name of nothing visible, a
// bidi control, and "é" composed and decomposed (one name).
const std::array<std::string, 13>& user_names() {
  static const std::array<std::string, 13> names{"alice",
                                                 "bob",
                                                 " alice ",
                                                 "",
                                                 std::string(20, 'u'),
                                                 std::string(21, 'u'),
                                                 "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9",
                                                 "bad&name",
                                                 "\u00a0alice\u200b",
                                                 "\u0430lice",
                                                 "\u200b\u3000",
                                                 "ali\u202ece",
                                                 "e\u0301"};
  return names;
}
std::string repeated(std::string_view piece, std::size_t times) {
  std::string out;
  for (std::size_t i = 0; i < times; ++i) out += piece;
  return out;
}
const std::array<std::string, 8>& texts() {
  static const std::array<std::string, 8> texts{"hi",
                                                "",
                                                " \t ",
                                                std::string(500, 'm'),
                                                std::string(501, 'm'),
                                                repeated("\u00fc", 500),
                                                "line\nbreak \"quoted\" <b>&amp;</b>",
                                                "\u2028 \U0001F4A9 \\u0000"};
  return texts;
}

// A client message from table indices.
std::string build_message(std::uint8_t kind, std::uint8_t room, std::uint8_t name,
                          std::uint8_t text) {
  const std::string& room_name = room_names()[room % 8];
  json::object msg;
  switch (kind % 8) {
    case 0:
      msg = {{"type", "join_room"},
             {"room", room_name},
             {"username", user_names()[name % user_names().size()]}};
      break;
    case 1:
      msg = {{"type", "join_room"}, {"room", room_name}};
      if (name % 2 == 1) msg["since"] = text % 8;  // a rejoin that asks for what it missed
      break;
    case 2:
      msg = {{"type", "leave_room"}, {"room", room_name}};
      break;
    case 3:
      msg = {{"type", "chat_message"}, {"message", texts()[text % 8]}};
      break;
    case 4:
      // To one room: a chat message, or an app event of the types fuzz_options() allows (one
      // durable, one ephemeral without echo), with fields the server must not believe.
      if (name % 3 == 0) {
        msg = {{"type", "document_change"}, {"room", room_name}, {"change", text}};
      } else if (name % 3 == 1) {
        msg = {{"type", "player_moved"}, {"room", room_name}, {"x", text}, {"userId", "spoof"}};
      } else {
        msg = {{"type", "chat_message"}, {"message", texts()[text % 8]}, {"room", room_name}};
      }
      break;
    case 5:
      msg = {{"type", "typing_start"}, {"room", room_name}};
      break;
    case 6:
      msg = {{"type", "typing_stop"}, {"room", room_name}};
      break;
    default:
      msg = {{"type", "chat_message"}, {"message", texts()[text % 8]}};
      switch (name % 4) {
        case 0:
          msg["timestamp"] = 1'700'000'000'000;
          break;
        case 1:
          msg["timestamp"] = "yesterday";
          break;
        default:  // with an idempotency id; the same few ids recur, so resends happen
          msg["id"] = name % 4 == 2 ? "id-a" : "id-b";
          break;
      }
      break;
  }
  return json::serialize(msg);
}

std::string_view string_at(const json::object& obj, std::string_view key) {
  const json::value* value = obj.if_contains(key);
  require(value != nullptr && value->is_string(), "payload field missing or not a string");
  const json::string& s = value->get_string();
  return {s.data(), s.size()};
}

// The transport's side of the Hub: which connections are open, and what each has been told.
class CheckingSink final : public Sink {
 public:
  // The transport accepted a connection and is about to call Hub::connect.
  void open(ConnectionId id) {
    require(!user_ids_.contains(id), "test bug: connection id reused");
    open_.emplace(id, Peer{});
  }
  // The connection is gone; from now on nothing may be sent to it.
  void closing(ConnectionId id) { open_.erase(id); }
  // Hub::disconnect returned: the connection is in no room and typing nowhere.
  void closed(ConnectionId id) {
    for (auto it = rooms_.begin(); it != rooms_.end();) {
      std::erase(it->second, id);
      it = it->second.empty() ? rooms_.erase(it) : std::next(it);
    }
    const std::string& user_id = user_ids_[id];
    for (const auto& [room, typist] : typing_) {
      require(typist != user_id, "typing outlives its connection");
    }
  }
  // A leave_room that drew no error reply succeeded.
  void left(ConnectionId id, const std::string& room) {
    auto it = rooms_.find(room);
    require(it != rooms_.end() && std::erase(it->second, id) == 1,
            "leave_room accepted from a connection not in the room");
    if (it->second.empty()) rooms_.erase(it);
  }

  void send(ConnectionId to, std::string payload) override {
    require(open_.contains(to), "send() to a connection that is not open");
    deliver(to, parse(payload), /*direct=*/true);
  }

  // Binary messages: only ever to open connections (the Hub's unit tests check who exactly).
  void broadcast_binary(const MemberSnapshot& members, std::string_view /*payload*/,
                        ConnectionId except) override {
    require(members != nullptr, "binary broadcast to a null snapshot");
    for (const ConnectionId id : *members) {
      require(id == except || open_.contains(id),
              "binary message to a connection that is not open");
    }
  }

  void broadcast(const MemberSnapshot& members, std::string payload, ConnectionId except) override {
    require(members != nullptr, "broadcast to a null snapshot");
    const json::object doc = parse(payload);
    const std::string_view type = string_at(doc, "type");
    const std::string room(string_at(doc, "room"));
    static const std::vector<ConnectionId> kNobody;
    const auto found = rooms_.find(room);
    const std::vector<ConnectionId>& expected = found == rooms_.end() ? kNobody : found->second;
    if (type == "system_message" || type == "typing_stop") {
      // Sent while someone leaves: the snapshot may already lack them, the model not yet.
      for (const ConnectionId id : *members) {
        require(std::find(expected.begin(), expected.end(), id) != expected.end(),
                "broadcast reaches a connection that is not in the room");
      }
    } else {
      require(*members == expected, "broadcast does not reach exactly the room's members");
    }
    if (type == "typing_start" || type == "typing_stop") {
      const std::string user_id(string_at(doc, "userId"));
      require(user_ids_[except] == user_id, "typing signal echoed to the typist");
      if (type == "typing_start") {
        require(typing_.emplace(room, user_id).second, "typing_start twice without a stop");
      } else {
        require(typing_.erase({room, user_id}) == 1, "typing_stop without a typing_start");
      }
    }
    if (type == "player_moved") {
      // Ephemeral and without echo: from a local member, to the others, with the server's
      // userId whatever the sender wrote.
      require(except != kNoConnection && user_ids_[except] == string_at(doc, "userId"),
              "player_moved echoed to its sender or not naming it");
      require(!doc.contains("seq"), "an ephemeral event with a seq");
    }
    if (type == "chat_message" || type == "document_change" || type == "player_moved") {
      const std::string_view sender = string_at(doc, "userId");
      require(std::any_of(expected.begin(), expected.end(),
                          [&](ConnectionId id) { return user_ids_[id] == sender; }),
              "chat_message from someone not in the room");
    }
    if (type == "user_list") check_user_list(doc, expected);
    for (const ConnectionId id : *members) {
      if (id == except) continue;
      require(open_.contains(id), "broadcast to a connection that is not open");
      deliver(id, doc, /*direct=*/false);
    }
  }

  void close(ConnectionId who, std::uint16_t, std::string) override {
    require(open_.contains(who), "close() of a connection that is not open");
  }
  // The fuzzer feeds whole operations, not bytes: a hold only has to name an open connection.
  void hold_reading(ConnectionId who, bool) override {
    require(open_.contains(who), "hold_reading() of a connection that is not open");
  }

  std::size_t open_count() const { return open_.size(); }
  std::size_t room_count() const {
    return static_cast<std::size_t>(std::count_if(
        rooms_.begin(), rooms_.end(), [](const auto& room) { return !room.second.empty(); }));
  }
  bool anyone_typing() const { return !typing_.empty(); }
  std::size_t errors_sent_to(ConnectionId id) const {
    auto it = open_.find(id);
    return it == open_.end() ? 0 : it->second.errors;
  }

 private:
  struct Peer {
    bool established = false;
    std::size_t errors = 0;
    std::map<std::string, std::int64_t, std::less<>> last_seq;  // by room
  };

  static json::object parse(const std::string& payload) {
    boost::system::error_code ec;
    json::value doc = json::parse(payload, ec);
    require(!ec, "payload is not valid JSON");
    require(doc.is_object(), "payload is not a JSON object");
    return std::move(doc.as_object());
  }

  void check_user_list(const json::object& doc, const std::vector<ConnectionId>& members) {
    const json::value* users = doc.if_contains("users");
    require(users != nullptr && users->is_array(), "user_list without users");
    const json::array& list = users->get_array();
    require(list.size() == members.size(), "user_list size differs from the room");
    for (std::size_t i = 0; i < list.size(); ++i) {
      require(list[i].is_object(), "user_list entry is not an object");
      require(string_at(list[i].get_object(), "id") == user_ids_[members[i]],
              "user_list differs from the room's members");
    }
  }

  void deliver(ConnectionId to, const json::object& doc, bool direct) {
    static const std::set<std::string_view> kTypes{"connection_established",
                                                   "system_message",
                                                   "user_list",
                                                   "chat_message",
                                                   "typing_start",
                                                   "typing_stop",
                                                   "error",
                                                   "history",
                                                   "ack",
                                                   "document_change",
                                                   "player_moved"};
    const std::string_view type = string_at(doc, "type");
    require(kTypes.contains(type), "payload of an unknown type");
    Peer& peer = open_.at(to);
    if (!peer.established) {
      require(type == "connection_established", "first payload is not connection_established");
      require(direct, "connection_established broadcast");
      peer.established = true;
      user_ids_[to] = std::string(string_at(doc, "userId"));
      return;
    }
    require(type != "connection_established", "connection_established twice");
    if (type == "error") {
      require(direct, "error reply broadcast");
      string_at(doc, "code");
      ++peer.errors;
      return;
    }
    if (type == "system_message" && direct) {
      // The welcome: `to` has joined the room.
      const std::string room(string_at(doc, "room"));
      auto& members = rooms_[room];
      require(std::find(members.begin(), members.end(), to) == members.end(),
              "welcomed to a room twice");
      members.push_back(to);
      peer.last_seq.erase(room);
      return;
    }
    if (type == "ack") {
      require(direct, "ack broadcast");
      const json::value* seq = doc.if_contains("seq");
      require(seq != nullptr && seq->is_int64() && seq->get_int64() > 0, "ack seq");
      string_at(doc, "id");
      return;
    }
    if (type == "history") {
      // Right after the joiner's welcome: consecutive seqs, and the room's next live
      // message continues right after the last of them.
      require(direct, "history broadcast");
      const std::string room(string_at(doc, "room"));
      const auto& members = rooms_[room];
      require(std::find(members.begin(), members.end(), to) != members.end(),
              "history for a room the connection is not in");
      const json::value* messages = doc.if_contains("messages");
      require(messages != nullptr && messages->is_array(), "history without messages");
      std::int64_t previous = 0;
      for (const auto& m : messages->get_array()) {
        require(m.is_object() && (string_at(m.get_object(), "type") == "chat_message" ||
                                  string_at(m.get_object(), "type") == "document_change"),
                "history entry is not a chat_message or a durable event");
        const json::value* seq = m.get_object().if_contains("seq");
        require(seq != nullptr && seq->is_int64() && seq->get_int64() > 0, "history seq");
        require(previous == 0 || seq->get_int64() == previous + 1, "history skips a seq");
        previous = seq->get_int64();
      }
      if (previous > 0) peer.last_seq[room] = previous;
      return;
    }
    if (type == "chat_message" || type == "document_change") {  // one numbering for both
      const json::value* seq = doc.if_contains("seq");
      require(seq != nullptr && seq->is_int64() && seq->get_int64() > 0, "chat_message seq");
      const std::string_view room = string_at(doc, "room");
      auto [it, first] = peer.last_seq.try_emplace(std::string(room), seq->get_int64());
      if (!first) {
        require(seq->get_int64() == it->second + 1, "seq skips or repeats for a member");
        it->second = seq->get_int64();
      }
    }
  }

  std::unordered_map<ConnectionId, Peer> open_;
  std::unordered_map<ConnectionId, std::string> user_ids_;  // every connection ever opened
  std::map<std::string, std::vector<ConnectionId>> rooms_;  // members in join order
  std::set<std::pair<std::string, std::string>> typing_;  // (room, userId) shown typing
};

// Reads the operations; past the end every byte reads as zero.
class OpReader {
 public:
  OpReader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  bool done() const { return pos_ >= size_; }
  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::string_view bytes(std::size_t n) {
    n = std::min(n, size_ - std::min(pos_, size_));
    const std::string_view out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

class Harness {
 public:
  void run(OpReader& in) {
    while (!in.done()) {
      switch (in.byte() % 8) {
        case 0:
          connect(in.byte() % kSlots);
          break;
        case 1:
          disconnect(in.byte() % kSlots);
          break;
        case 2: {
          const std::size_t slot = in.byte() % kSlots;
          const std::uint8_t kind = in.byte();
          const std::uint8_t room = in.byte();
          const std::uint8_t name = in.byte();
          say(slot, build_message(kind, room, name, in.byte()));
          break;
        }
        case 3: {
          const std::size_t slot = in.byte() % kSlots;
          say(slot, std::string(in.bytes(in.byte())));
          break;
        }
        case 4:
          tick();
          break;
        case 5:
          clock_.advance(kClockSteps[in.byte() % 8]);
          break;
        case 6:
          if (const ConnectionId id = slots_[in.byte() % kSlots]; id != kNoConnection) {
            hub_.receive_binary(id, in.bytes(in.byte()));
          }
          break;
        default: {
          const std::uint8_t kind = in.byte();
          const std::uint8_t room = in.byte();
          const std::uint8_t name = in.byte();
          hub_.receive(kStranger, build_message(kind, room, name, in.byte()));
          break;
        }
      }
      const HubStats stats = hub_.stats();
      require(stats.connections == sink_.open_count(), "Hub counts other connections");
      require(stats.rooms == sink_.room_count(), "Hub counts other rooms");
    }
    // The transport's shutdown: everyone leaves.
    for (std::size_t slot = 0; slot < kSlots; ++slot) disconnect(slot);
    require(hub_.stats().rooms == 0, "rooms left after everyone disconnected");
  }

 private:
  static constexpr ConnectionId kStranger = 0xDEAD'BEEF;

  void connect(std::size_t slot) {
    ConnectionId& id = slots_[slot];
    if (id == kNoConnection) {
      id = next_id_++;
      sink_.open(id);
    }
    hub_.connect(id);
  }

  void disconnect(std::size_t slot) {
    ConnectionId& id = slots_[slot];
    if (id == kNoConnection) return;
    sink_.closing(id);
    hub_.disconnect(id);
    sink_.closed(id);
    id = kNoConnection;
  }

  void say(std::size_t slot, const std::string& text) {
    const ConnectionId id = slots_[slot];
    if (id == kNoConnection) return;
    last_say_ = clock_.now();
    const std::size_t errors_before = sink_.errors_sent_to(id);
    hub_.receive(id, text);
    if (sink_.errors_sent_to(id) != errors_before) return;
    // The model learns joins from the welcome; a leave draws no reply to the leaver.
    const auto decoded = decode_client_message(text, ProtocolLimits{});
    const auto* message = std::get_if<ClientMessage>(&decoded);
    if (message == nullptr) return;
    if (const auto* leave = std::get_if<LeaveRoom>(message)) sink_.left(id, leave->room);
  }

  void tick() {
    hub_.tick();
    if (clock_.now() - last_say_ >= HubOptions{}.typing_timeout) {
      require(!sink_.anyone_typing(), "typing signal outlives the typing timeout");
    }
  }

  base::ManualClock clock_;
  CheckingSink sink_;
  store::MemoryStore store_{clock_, HubOptions{}.retention()};
  static HubOptions fuzz_options() {
    HubOptions options;
    options.app_events.allow("document_change", {.durable = true, .echo = true});
    options.app_events.allow("player_moved", {.durable = false, .echo = false});
    return options;
  }
  Hub hub_{sink_, clock_, fuzz_options(), store_};
  std::array<ConnectionId, kSlots> slots_{};
  ConnectionId next_id_ = 0x1000;
  base::SteadyTime last_say_{};
};

}  // namespace
}  // namespace roomcast::chat

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  roomcast::chat::OpReader in(data, size);
  roomcast::chat::Harness harness;
  harness.run(in);
  return 0;
}

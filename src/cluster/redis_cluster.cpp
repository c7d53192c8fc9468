#include "cluster/redis_cluster.h"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <charconv>
#include <future>
#include <random>
#include <stdexcept>

#include "base/build_info.h"
#include "chat/epoch.h"

namespace roomcast::cluster {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kUnavailable = "cluster unavailable: Redis cannot be reached right now";
constexpr std::chrono::milliseconds kMaxBackoff{2000};
constexpr std::chrono::seconds kFlushTimeout{10};
// XRANGE page when filling a gap.
constexpr std::string_view kGapPage = "1000";

// Numbers, stores and publishes one message; see the header. Returns {1, seq, jumped} when
// stored (jumped: 1 if this message starts a new epoch), {0, seq} when KEYS[3] (the message
// `id`) was already stored as seq, {2, 0} when this node's message ARGV[6] was already stored
// (a resend after a lost reply), {3, 0} when Redis's generation is not ARGV[7] (Redis lost its
// data since the node last looked: nothing was done).
// The seq jumps to a new epoch (ARGV[9], from chat::epoch_seq_base) when the room's counter is
// below ARGV[8] (the newest seq the node knows of) or, once a loss was detected (KEYS[7]), when
// the room has no counter at all. Seqs may exceed 14 digits: they are formatted with %.0f,
// never with Lua's default number formatting.
// KEYS: seq, stream, id key ('' for none), publishers hash, generation, epoch, lost flag.
// ARGV: channel, fields, history size, id TTL (ms), node instance, node's message counter,
// generation, known last seq, epoch base, epoch base - 1.
constexpr std::string_view kPublishScript = R"lua(
if redis.call('GET', KEYS[5]) ~= ARGV[7] then return {3, 0} end
if KEYS[3] ~= '' then
  local seen = redis.call('GET', KEYS[3])
  if seen then return {0, tonumber(seen)} end
end
local done = redis.call('HGET', KEYS[4], ARGV[5])
if done and tonumber(done) >= tonumber(ARGV[6]) then return {2, 0} end
local cur = redis.call('GET', KEYS[1])
local jumped = 0
if (not cur and redis.call('EXISTS', KEYS[7]) == 1) or tonumber(cur or '0') < tonumber(ARGV[8]) then
  redis.call('SET', KEYS[1], ARGV[10])
  redis.call('SET', KEYS[6], ARGV[9])
  redis.call('PUBLISH', ARGV[1], 'e' .. ARGV[9])
  jumped = 1
end
local seq = string.format('%.0f', redis.call('INCR', KEYS[1]))
if tonumber(ARGV[3]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], seq .. '-1', 'm', ARGV[2])
end
if KEYS[3] ~= '' then redis.call('SET', KEYS[3], seq, 'PX', ARGV[4]) end
redis.call('HSET', KEYS[4], ARGV[5], ARGV[6])
redis.call('PUBLISH', ARGV[1], 'm' .. seq .. ' ' .. ARGV[2])
return {1, tonumber(seq), jumped}
)lua";

// A node's heartbeat: reads Redis's generation (creating ARGV[1] if there is none: a new or an
// emptied Redis), sets the lost flag if it is not ARGV[2] (the node's, '' before the first),
// refreshes this node's liveness key (its value: the node's figures, ARGV[4]; the node list is
// read from it) and its entry in the index of nodes, and says which other nodes are alive, all
// in one step, so that no node is judged dead on an emptied Redis.
// Returns {generation, {0|1 per node}}.
// KEYS: generation, lost flag, this node's liveness key, the index of nodes, other nodes'
// liveness keys.
// ARGV: new generation, the node's generation, node TTL (ms), the node's figures, its instance.
constexpr std::string_view kGenerationScript = R"lua(
local g = redis.call('GET', KEYS[1])
if not g then
  g = ARGV[1]
  redis.call('SET', KEYS[1], g)
end
if ARGV[2] ~= '' and g ~= ARGV[2] then redis.call('SET', KEYS[2], '1') end
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[3])
redis.call('SADD', KEYS[4], ARGV[5])
local alive = {}
for i = 5, #KEYS do alive[#alive + 1] = redis.call('EXISTS', KEYS[i]) end
return {g, alive}
)lua";

// The nodes alive: {instance, figures, ...} of every node of the index whose liveness key
// is still there; the others (dead: their key expired) leave the index on the way.
// KEYS: the index of nodes. ARGV: node key prefix.
constexpr std::string_view kNodesScript = R"lua(
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local figures = redis.call('GET', ARGV[1] .. id)
  if figures then
    out[#out + 1] = id
    out[#out + 1] = figures
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return out
)lua";

// A room whose numbering was lost: if its counter is below ARGV[1] (the newest seq the node
// knows of), it jumps to the epoch base ARGV[2] (ARGV[3] is the base - 1), recorded and
// announced. Returns the first seq of the room's epoch as a string ('0': never renumbered).
// KEYS: seq, epoch. ARGV: known last seq, epoch base, epoch base - 1, channel.
constexpr std::string_view kRenumberScript = R"lua(
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[3])
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('PUBLISH', ARGV[4], 'e' .. ARGV[2])
  return ARGV[2]
end
return redis.call('GET', KEYS[2]) or '0'
)lua";

// A room's state in one step: {last seq, {member id, fields, ...} of live nodes, {stream id,
// fields, ...} newest ARGV[1] of the current epoch oldest first, first seq of the epoch ('0'
// if none)}. Members of nodes whose liveness key expired are removed on the way.
// KEYS: seq, stream, members, epoch. ARGV: history count, node key prefix.
constexpr std::string_view kLoadScript = R"lua(
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local members = redis.call('HGETALL', KEYS[3])
local alive, live = {}, {}
for i = 1, #members, 2 do
  local id = members[i]
  local node = string.match(id, '^(.*)/[^/]*$')
  if node and live[node] == nil then
    live[node] = redis.call('EXISTS', ARGV[2] .. node) == 1
  end
  if node and live[node] then
    alive[#alive + 1] = id
    alive[#alive + 1] = members[i + 1]
  else
    redis.call('HDEL', KEYS[3], id)
  end
end
local epoch = redis.call('GET', KEYS[4])
local entries = {}
if tonumber(ARGV[1]) > 0 then
  local rows = redis.call('XREVRANGE', KEYS[2], '+', epoch or '-', 'COUNT', ARGV[1])
  for i = #rows, 1, -1 do
    entries[#entries + 1] = rows[i][1]
    entries[#entries + 1] = rows[i][2][2]
  end
end
return {last, alive, entries, epoch or '0'}
)lua";

// Spends ARGV[1] events of a rate budget (chat/shared_budgets.h) and returns its state:
// {events in the window, ms left of the window, ms left of the block}. A fixed window, as
// chat::RateLimiter counts it, on Redis's clock, so nodes whose clocks differ agree.
// KEYS: the budget's hash. ARGV: events, max events, window (ms), block (ms; 0: refused
// until the window ends).
constexpr std::string_view kRateScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'start', 'events', 'until')
local start, events, blocked = tonumber(s[1]) or 0, tonumber(s[2]) or 0, tonumber(s[3]) or 0
local add, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local window, block = tonumber(ARGV[3]), tonumber(ARGV[4])
if now - start >= window then events = 0 end
if add > 0 and now >= blocked then
  if events == 0 then start = now end
  events = events + add
  if events > max then
    if block > 0 then blocked, events = now + block, 0 else blocked = start + window end
  end
  redis.call('HSET', KEYS[1], 'start', start, 'events', events, 'until', blocked)
  redis.call('PEXPIRE', KEYS[1], math.max(blocked, start + window) - now + 1000)
end
return {events, math.max(start + window - now, 0), math.max(blocked - now, 0)}
)lua";

// A user's connections across the cluster (chat/online_users.h): KEYS[1], a hash of
// instance -> count, holds each node's count; the shares of nodes whose liveness key expired
// are dropped on the way. Shared by the two scripts below (Redis keeps no functions between
// scripts, so it is pasted into each).
constexpr std::string_view kOnlineTotalLua = R"lua(
local function online_total(hash, node_prefix)
  local total = 0
  local counts = redis.call('HGETALL', hash)
  for i = 1, #counts, 2 do
    if redis.call('EXISTS', node_prefix .. counts[i]) == 1 then
      total = total + tonumber(counts[i + 1])
    else
      redis.call('HDEL', hash, counts[i])
    end
  end
  return total
end
)lua";

// Sets this node's count of a user's connections; an increase bumps the user's generation.
// Returns {connections on live nodes, generation}.
// KEYS: the user's counts, the user's generation. ARGV: instance, count, opened (1/0), node
// key prefix, generation TTL (ms).
constexpr std::string_view kOnlineSetLua = R"lua(
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
local gen
if ARGV[3] == '1' then gen = redis.call('INCR', KEYS[2]) else
  gen = tonumber(redis.call('GET', KEYS[2]) or '0') end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {online_total(KEYS[1], ARGV[4]), gen}
)lua";

// Claims a user's offline report for generation ARGV[1]: 1 if nobody is connected on a live
// node, no connection opened since, and no node claimed it before; else 0.
// KEYS: the user's counts, the user's generation, the claim. ARGV: generation, node key
// prefix, claim TTL (ms).
constexpr std::string_view kOnlineClaimLua = R"lua(
if online_total(KEYS[1], ARGV[2]) > 0 then return 0 end
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then return 0 end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[3]) then return 1 end
return 0
)lua";

// A user's keys: rc:online:USER (counts), rc:online:USER:gen, rc:online:USER:offline:GEN.
constexpr std::string_view kOnlineKeyPrefix = "rc:online:";
// The generation outlives any grace period by far; once it expired (a week without a change
// of the user's connections) it starts again from 1, long after the claims of old ones did.
constexpr std::string_view kOnlineGenerationTtlMs = "604800000";
constexpr std::string_view kOnlineClaimTtlMs = "86400000";

constexpr std::string_view kNodeKeyPrefix = "rc:node:";
// The index of the nodes that refreshed a liveness key (a set of instances; the node list).
constexpr std::string_view kNodesKey = "rc:nodes";
// The server API's commands for every node (chat/cluster_control.h), on the subscriber
// connection every node already has: no third connection to reconnect and to count in up().
constexpr std::string_view kControlChannel = "rc:control";
// Conversations (chat/conversation.h): the publish script announces a conversation's message on
// "rc:dm:KEY", and every node hears all of them through one pattern subscription, since its
// users may be connected anywhere. A user's conversations: rc:dm-index:{USER} (peer -> "seq
// timestamp") and rc:dm-names:{USER} (peer -> the peer's name in their latest message).
constexpr std::string_view kDirectChannelPrefix = "rc:dm:";
constexpr std::string_view kDirectPattern = "rc:dm:*";
// Redis's generation (a random value) and the flag set once a node saw it change.
constexpr std::string_view kGenerationKey = "rc:generation";
constexpr std::string_view kLostFlagKey = "rc:lost";
// A rate budget's hash: rc:rate:BUDGET:KEY (a user id or a client address).
constexpr std::string_view kRateKeyPrefix = "rc:rate:";

// Fields travel as netstrings ("5:hello"): any bytes, no escaping.
void put(std::string& out, std::string_view field) {
  out += std::to_string(field.size());
  out += ':';
  out += field;
}

class Fields {
 public:
  explicit Fields(std::string_view text) : rest_(text) {}
  bool empty() const { return rest_.empty(); }
  bool next(std::string_view& field) {
    const auto colon = rest_.find(':');
    if (colon == std::string_view::npos) return false;
    std::size_t size = 0;
    const auto [end, ec] = std::from_chars(rest_.data(), rest_.data() + colon, size);
    if (ec != std::errc() || end != rest_.data() + colon || size > rest_.size() - colon - 1) {
      return false;
    }
    field = rest_.substr(colon + 1, size);
    rest_.remove_prefix(colon + 1 + size);
    return true;
  }
  template <typename Int>
  bool next_number(Int& value) {
    std::string_view field;
    if (!next(field)) return false;
    const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
    return ec == std::errc() && end == field.data() + field.size();
  }

 private:
  std::string_view rest_;
};

// A stored message's fields: timestamp, user id, username, text, client id, node, origin
// connection, node counter, and for a durable app event its type (absent for a chat message,
// as in entries written before app events). (Its seq is the stream id, or the channel
// message's prefix.)
std::string encode_message(const chat::Publication& p, std::string_view node,
                           std::uint64_t counter) {
  std::string out;
  out.reserve(p.message.size() + p.username.size() + p.user_id.size() + p.client_id.size() +
              node.size() + 80);
  put(out, std::to_string(p.timestamp_ms));
  put(out, p.user_id);
  put(out, p.username);
  put(out, p.message);
  put(out, p.client_id);
  put(out, node);
  put(out, std::to_string(p.origin));
  put(out, std::to_string(counter));
  if (!p.event_type.empty()) put(out, p.event_type);
  return out;
}

bool decode_message(std::string_view room, std::uint64_t seq, std::string_view text,
                    chat::StoredMessage& m, std::string& node, chat::ConnectionId& origin,
                    std::uint64_t& counter) {
  Fields fields(text);
  std::string_view user_id, username, message, client_id, node_field;
  if (!fields.next_number(m.timestamp_ms) || !fields.next(user_id) || !fields.next(username) ||
      !fields.next(message) || !fields.next(client_id) || !fields.next(node_field) ||
      !fields.next_number(origin) || !fields.next_number(counter)) {
    return false;
  }
  std::string_view event_type;
  if (!fields.empty() && !fields.next(event_type)) return false;
  m.event_type = event_type;
  m.room = room;
  m.seq = seq;
  m.user_id = user_id;
  m.username = username;
  m.message = message;
  m.client_id = client_id;
  node = node_field;
  return true;
}

// A member as other nodes hear of it: user id, name, and "1" if it holds a verified token
// (absent in entries written by a node of a version before it: anonymous).
std::string encode_member(std::string_view user_id, std::string_view username, bool authenticated) {
  std::string out;
  put(out, user_id);
  put(out, username);
  put(out, authenticated ? "1" : "0");
  return out;
}

// The record of a member another node announced (null if the fields are malformed).
chat::MemberRef decode_member(Fields& fields) {
  std::string_view user_id, username, authenticated;
  if (!fields.next(user_id) || !fields.next(username)) return nullptr;
  const bool vouched = fields.next(authenticated) && authenticated == "1";
  return chat::MemberInfo::make(user_id, std::string(username), vouched);
}

// A node's figures as its liveness key holds them: version, commit, start (Unix ms),
// connections, rooms, threads. (Figures it cannot read, of a newer version perhaps: the node
// is listed by name only.)
std::string encode_node(const chat::NodeInfo& info) {
  std::string out;
  put(out, info.version);
  put(out, info.commit);
  put(out, std::to_string(info.started_unix_ms));
  put(out, std::to_string(info.connections));
  put(out, std::to_string(info.rooms));
  put(out, std::to_string(info.threads));
  return out;
}

chat::NodeInfo decode_node(std::string_view node, std::string_view text) {
  chat::NodeInfo info;
  info.node = node;
  Fields fields(text);
  std::string_view version, commit;
  chat::NodeInfo figures;
  if (fields.next(version) && fields.next(commit) && fields.next_number(figures.started_unix_ms) &&
      fields.next_number(figures.connections) && fields.next_number(figures.rooms) &&
      fields.next_number(figures.threads)) {
    info = std::move(figures);
    info.node = node;
    info.version = version;
    info.commit = commit;
  }
  return info;
}

// A control command on the control channel: "d" sender user reason, "u" sender user room
// reason (sender: the instance that received the request, which applied it already).
std::string encode_command(const chat::ControlCommand& command, std::string_view sender) {
  const bool disconnect = command.kind == chat::ControlCommand::Kind::kDisconnect;
  std::string out(disconnect ? "d" : "u");
  put(out, sender);
  put(out, command.user_id);
  if (!disconnect) put(out, command.room);
  put(out, command.reason);
  return out;
}

// False for a malformed message (or one of an unknown kind, from a newer node).
bool decode_command(std::string_view text, std::string_view& sender,
                    chat::ControlCommand& command) {
  if (text.empty() || (text.front() != 'd' && text.front() != 'u')) return false;
  const bool disconnect = text.front() == 'd';
  Fields fields(text.substr(1));
  std::string_view user_id, room, reason;
  if (!fields.next(sender) || !fields.next(user_id) || (!disconnect && !fields.next(room)) ||
      !fields.next(reason) || user_id.empty()) {
    return false;
  }
  command.kind = disconnect ? chat::ControlCommand::Kind::kDisconnect
                            : chat::ControlCommand::Kind::kUnsubscribe;
  command.user_id = user_id;
  command.room = room;
  command.reason = reason;
  return true;
}

std::uint64_t seq_of_stream_id(std::string_view id) {
  std::uint64_t seq = 0;
  std::from_chars(id.data(), id.data() + id.size(), seq);  // "SEQ-1": stops at '-'
  return seq;
}

std::string random_suffix() {
  std::random_device random;
  char text[9];
  std::snprintf(text, sizeof text, "%08x", random());
  return text;
}

std::uint64_t parse_seq(std::string_view text) {
  std::uint64_t seq = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seq);
  return ec == std::errc() && end == text.data() + text.size() ? seq : 0;
}

std::string sanitized(std::string name) {
  // '/' separates a member id's node from its connection.
  std::replace(name.begin(), name.end(), '/', '_');
  return name.empty() ? "node" : name;
}

bool is_array(const redisReply* reply, std::size_t at_least) {
  return reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements >= at_least;
}

// The load script's reply: {last seq, {members}, {entries}, epoch}.
bool is_load_reply(const redisReply* reply) {
  return is_array(reply, 4) && reply->element[0]->type == REDIS_REPLY_INTEGER &&
         reply->element[1]->type == REDIS_REPLY_ARRAY &&
         reply->element[2]->type == REDIS_REPLY_ARRAY &&
         reply->element[3]->type == REDIS_REPLY_STRING;
}

// The messages of a load script's reply with seq > after_seq and a timestamp retention still
// keeps (at or after oldest_kept_ms), oldest first.
std::vector<chat::StoredMessage> messages_of(std::string_view room, const redisReply* load_reply,
                                             std::uint64_t after_seq, std::int64_t oldest_kept_ms) {
  std::vector<chat::StoredMessage> messages;
  const redisReply* entries = load_reply->element[2];
  messages.reserve(entries->elements / 2);
  for (std::size_t i = 0; i + 1 < entries->elements; i += 2) {
    chat::StoredMessage m;
    std::string node;
    chat::ConnectionId origin = chat::kNoConnection;
    std::uint64_t counter = 0;
    const std::uint64_t seq = seq_of_stream_id(reply_text(entries->element[i]));
    if (seq > after_seq &&
        decode_message(room, seq, reply_text(entries->element[i + 1]), m, node, origin, counter) &&
        m.timestamp_ms >= oldest_kept_ms) {
      messages.push_back(std::move(m));
    }
  }
  return messages;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Construction, the thread, the listeners
// ---------------------------------------------------------------------------------------

RedisCluster::RedisCluster(RedisClusterOptions options, const base::Clock& clock)
    : options_(std::move(options)),
      clock_(clock),
      endpoint_(RedisEndpoint::parse(options_.url)),
      instance_(sanitized(options_.node_name) + "-" + random_suffix()),
      started_unix_ms_(clock.unix_ms()),
      commands_(io_, endpoint_, "commands", options_.command_timeout),
      subscriber_(io_, endpoint_, "subscriber", options_.command_timeout) {
  subscriber_.set_push_handler([this](redisReply* reply) { on_push(reply); });
  asio::post(io_, [this] {
    connect_commands();
    connect_subscriber();
    heartbeat();
  });
  thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(io_);
    io_.run();
  });
}

RedisCluster::~RedisCluster() {
  stopping_ = true;
  asio::post(io_, [this] {
    commands_retry_.cancel();
    subscriber_retry_.cancel();
    heartbeat_timer_.cancel();
    settle_timer_.cancel();
    // The others drop this node at once instead of after its TTL (best effort, bounded).
    const bool sent = commands_.command({"DEL", std::string(kNodeKeyPrefix) + instance_},
                                        [this](redisReply*) { io_.stop(); });
    if (!sent) {
      io_.stop();
      return;
    }
    heartbeat_timer_.expires_after(std::chrono::milliseconds(500));
    heartbeat_timer_.async_wait([this](boost::system::error_code) { io_.stop(); });
  });
  thread_.join();
  // The io_context no longer runs: close the connections from here (handlers see nullptr).
  commands_.close();
  subscriber_.close();
}

bool RedisCluster::wait_until_up(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!up()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

void RedisCluster::set_listener(chat::HistoryStore::Listener* listener) {
  std::lock_guard lock(listener_mutex_);
  listener_ = listener;
}

void RedisCluster::set_presence_listener(chat::Presence::Listener* listener) {
  std::lock_guard lock(listener_mutex_);
  presence_listener_ = listener;
}

template <typename Fn>
void RedisCluster::with_listener(Fn&& fn) {
  std::lock_guard lock(listener_mutex_);
  if (listener_ != nullptr) fn(*listener_);
}

template <typename Fn>
void RedisCluster::with_presence_listener(Fn&& fn) {
  std::lock_guard lock(listener_mutex_);
  if (presence_listener_ != nullptr) fn(*presence_listener_);
}

std::string RedisCluster::member_id(chat::ConnectionId who) const {
  return instance_ + "/" + std::to_string(who);
}

// Every key of a room shares the hash tag {room}.
std::string RedisCluster::key(std::string_view room, std::string_view suffix) const {
  std::string k = "rc:{";
  k += room;
  k += "}:";
  k += suffix;
  return k;
}

std::string RedisCluster::channel(std::string_view room) const {
  std::string c = "rc:{";
  c += room;
  c += '}';
  return c;
}

// ---------------------------------------------------------------------------------------
// Connections: up, down, reconnect
// ---------------------------------------------------------------------------------------

void RedisCluster::connect_commands() {
  commands_.connect([this] { on_commands_up(); },
                    [this](const std::string& reason) { on_connection_down("commands", reason); });
}

void RedisCluster::connect_subscriber() {
  subscriber_.connect(
      [this] {
        // Up once confirmed (on_push): commands sent from then on reach this node.
        if (!subscriber_.subscribe_command({"SUBSCRIBE", kControlChannel})) {
          spdlog::error("redis: cannot subscribe to the control channel");
        }
        if (!subscriber_.subscribe_command({"PSUBSCRIBE", kDirectPattern})) {
          spdlog::error("redis: cannot subscribe to the direct messages' channels");
        }
      },
      [this](const std::string& reason) { on_connection_down("subscriber", reason); });
}

void RedisCluster::on_commands_up() {
  // Scripts go first (Redis may have restarted without them); replies come in order.
  commands_.command({"SCRIPT", "LOAD", kPublishScript}, [this](redisReply* reply) {
    if (reply != nullptr && reply->type == REDIS_REPLY_STRING) publish_sha_ = reply_text(reply);
  });
  commands_.command({"SCRIPT", "LOAD", kRateScript}, [this](redisReply* reply) {
    if (reply != nullptr && reply->type == REDIS_REPLY_STRING) rate_sha_ = reply_text(reply);
  });
  commands_.command({"SCRIPT", "LOAD", kGenerationScript}, [this](redisReply* reply) {
    if (reply != nullptr && reply->type == REDIS_REPLY_STRING) generation_sha_ = reply_text(reply);
  });
  commands_.command({"SCRIPT", "LOAD", kRenumberScript}, [this](redisReply* reply) {
    if (reply != nullptr && reply->type == REDIS_REPLY_STRING) renumber_sha_ = reply_text(reply);
  });
  commands_.command({"SCRIPT", "LOAD", kNodesScript}, [this](redisReply* reply) {
    if (reply != nullptr && reply->type == REDIS_REPLY_STRING) nodes_sha_ = reply_text(reply);
  });
  commands_.command({"SCRIPT", "LOAD", std::string(kOnlineTotalLua) + std::string(kOnlineSetLua)},
                    [this](redisReply* reply) {
                      if (reply != nullptr && reply->type == REDIS_REPLY_STRING) {
                        online_set_sha_ = reply_text(reply);
                      }
                    });
  commands_.command({"SCRIPT", "LOAD", std::string(kOnlineTotalLua) + std::string(kOnlineClaimLua)},
                    [this](redisReply* reply) {
                      if (reply != nullptr && reply->type == REDIS_REPLY_STRING) {
                        online_claim_sha_ = reply_text(reply);
                      }
                    });
  commands_.command({"SCRIPT", "LOAD", kLoadScript}, [this](redisReply* reply) {
    if (reply == nullptr) return;
    if (reply->type != REDIS_REPLY_STRING || publish_sha_.empty() || rate_sha_.empty() ||
        generation_sha_.empty() || renumber_sha_.empty() || nodes_sha_.empty() ||
        online_set_sha_.empty() || online_claim_sha_.empty()) {
      spdlog::error("redis: cannot load the cluster's scripts: {}", reply_text(reply));
      return;
    }
    load_sha_ = reply_text(reply);
    // Before anything else: a Redis that restarted empty must be known as such before the
    // rooms are resynchronised (or their members would be taken for gone).
    check_generation(true);
  });
}

void RedisCluster::check_generation(bool on_connect) {
  std::vector<std::string> nodes;
  if (!on_connect && std::chrono::steady_clock::now() >= judge_nodes_after_) {
    std::set<std::string> known;
    for (const auto& [name, room] : rooms_) {
      for (const auto& [id, member] : room.remote) known.insert(id.substr(0, id.rfind('/')));
    }
    nodes.assign(known.begin(), known.end());
  }
  std::vector<std::string> keys;
  keys.reserve(nodes.size());
  for (const auto& node : nodes) keys.push_back(std::string(kNodeKeyPrefix) + node);
  const std::string own_key = std::string(kNodeKeyPrefix) + instance_;
  const std::string key_count = std::to_string(4 + keys.size());
  const std::string candidate = random_suffix() + random_suffix();
  const std::string ttl = std::to_string(options_.node_ttl.count());
  const std::string figures = node_figures();
  std::vector<std::string_view> argv{"EVALSHA",    generation_sha_, key_count, kGenerationKey,
                                     kLostFlagKey, own_key,         kNodesKey};
  for (const auto& k : keys) argv.push_back(k);
  argv.push_back(candidate);
  argv.push_back(generation_);
  argv.push_back(ttl);
  argv.push_back(figures);
  argv.push_back(instance_);
  const bool sent = commands_.command(argv, [this, on_connect, nodes](redisReply* reply) {
    if (on_connect) {
      if (reply == nullptr) return;  // the connection went away again
      if (!is_array(reply, 2) || reply->element[0]->type != REDIS_REPLY_STRING) {
        spdlog::error("redis: reading the cluster's generation: {}", reply_text(reply));
        return;
      }
      on_generation(reply_text(reply->element[0]));
      commands_ready_ = true;
      maybe_up();
      return;
    }
    generation_check_pending_ = false;
    if (is_array(reply, 2) && reply->element[0]->type == REDIS_REPLY_STRING &&
        on_generation(reply_text(reply->element[0]))) {
      judge_nodes(nodes, reply->element[1]);
    }
    if (up()) send_held();
  });
  if (!sent) generation_check_pending_ = false;
}

bool RedisCluster::on_generation(std::string_view generation) {
  if (generation_ == generation) return true;
  const bool first = generation_.empty();
  generation_ = generation;
  if (first) return true;
  spdlog::error(
      "redis {}: Redis lost its data (emptied, restarted without persistence or failed over); "
      "rooms continue in a new epoch of seqs and members are announced again",
      endpoint_.describe());
  ++data_losses_;
  lost_data();
  return false;
}

void RedisCluster::maybe_up() {
  if (!commands_ready_ || !subscriber_.connected() || !control_subscribed_ || up()) return;
  backoff_ = std::chrono::milliseconds(100);
  up_ = true;
  if (was_up_) {
    ++reconnects_;
    spdlog::info("redis {}: reconnected; resubscribing {} rooms, resending {} messages",
                 endpoint_.describe(), rooms_.size(), in_flight_.size());
  } else {
    spdlog::info("redis {}: connected as node {}", endpoint_.describe(), instance_);
  }
  was_up_ = true;
  not_answering_ = false;
  // Every node lost its link too (or we did): give them one TTL to refresh their keys.
  judge_nodes_after_ =
      std::max(judge_nodes_after_, std::chrono::steady_clock::now() + options_.node_ttl);
  heartbeat();
  for (auto& [name, room] : rooms_) {
    if (!room.followed) continue;
    // Our liveness key may have expired meanwhile and the others dropped our members.
    for (const auto& [who, member] : room.local) announce(room, who, *member);
    if (!room.subscribed && !room.unsubscribe_pending) subscribe(room);
  }
  // In their original order; the script recognises the ones that ran before the drop.
  send_held();
  rewrite_online();
}

void RedisCluster::on_connection_down(const char* which, const std::string& reason) {
  if (stopping_) return;
  if (up() || !was_up_) {
    spdlog::warn("redis {}: {} connection: {}", endpoint_.describe(), which, reason);
  }
  const bool commands = std::string_view(which) == "commands";
  // For /healthz: the latest reason wins (a stopped Redis may be killed meanwhile).
  not_answering_ = reason.starts_with(kNoReplyReason);
  if (not_answering_) {
    if (commands && subscriber_.connected()) {
      // The same Redis: its subscriptions are as dead as its commands, though no reply is
      // owed on them. Drop it too, so both come back together.
      subscriber_.close();
      on_connection_down("subscriber", reason);
    }
  }
  if (commands) {
    commands_ready_ = false;
    generation_check_pending_ = false;
    // Those heard already were delivered and acknowledged: done. The others' handlers were
    // called with nullptr: each is sent again after the reconnect (if Redis lost its data
    // meanwhile, a message already heard would otherwise be stored a second time).
    std::erase_if(in_flight_, [this](const InFlight& f) {
      return reported_before_reply_.erase(f.counter) > 0;
    });
    for (auto& in_flight : in_flight_) in_flight.sent = false;
    unsent_ = in_flight_.size();
  } else {
    control_subscribed_ = false;
    // No UNSUBSCRIBE will be answered now: forget the rooms that waited for one.
    std::erase_if(rooms_, [](const auto& entry) { return !entry.second.followed; });
    for (auto& [name, room] : rooms_) {
      room.subscribed = false;
      room.unsubscribe_pending = false;
    }
  }
  went_down();
  schedule_reconnect(commands);
}

void RedisCluster::went_down() {
  up_ = false;
  // Loads that were under way fail: their joins are told, nobody waits on a dead link.
  std::vector<std::string> failed;
  for (const auto& [name, room] : rooms_) {
    if (room.followed && room.phase != Room::Phase::kLive) failed.push_back(name);
  }
  for (const auto& name : failed) fail_load(name);
}

void RedisCluster::schedule_reconnect(bool commands) {
  auto& timer = commands ? commands_retry_ : subscriber_retry_;
  timer.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  timer.async_wait([this, commands](boost::system::error_code ec) {
    if (ec || stopping_) return;
    if (commands) {
      connect_commands();
    } else {
      connect_subscriber();
    }
  });
}

void RedisCluster::heartbeat() {
  heartbeat_timer_.cancel();
  if (up()) check_generation(false);
  // Refresh well within the TTL; check the others as often.
  heartbeat_timer_.expires_after(std::max(std::chrono::milliseconds(100), options_.node_ttl / 4));
  heartbeat_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && !stopping_) heartbeat();
  });
}

void RedisCluster::judge_nodes(const std::vector<std::string>& nodes, const redisReply* alive) {
  if (alive == nullptr || alive->type != REDIS_REPLY_ARRAY) return;
  for (std::size_t i = 0; i < nodes.size() && i < alive->elements; ++i) {
    const redisReply* r = alive->element[i];
    if (r->type != REDIS_REPLY_INTEGER || r->integer != 0) continue;
    const std::string& node = nodes[i];
    spdlog::info("cluster: node {} stopped refreshing its liveness key; its members left", node);
    const std::string prefix = node + "/";
    for (auto& [name, room] : rooms_) {
      std::vector<std::string> gone;
      for (const auto& [id, member] : room.remote) {
        if (id.starts_with(prefix)) gone.push_back(id);
      }
      for (const auto& id : gone) {
        commands_.command({"HDEL", key(name, "members"), id}, nullptr);
        member_gone(room, id);
      }
    }
  }
}

void RedisCluster::lost_data() {
  const auto settle = std::chrono::steady_clock::now() + options_.node_ttl;
  // Every node refreshes its liveness key and announces its members again within a TTL.
  judge_nodes_after_ = std::max(judge_nodes_after_, settle);
  for (auto& [name, room] : rooms_) {
    if (room.followed && room.phase == Room::Phase::kLive) room_lost(room);
  }
  settle_until_ = std::max(settle_until_, settle);
  settle_presence();
  rewrite_online();
}

void RedisCluster::room_lost(Room& room) {
  const std::uint64_t base = chat::epoch_seq_base(room.last_seq, clock_.unix_ms());
  const std::string known = std::to_string(room.last_seq);
  const std::string first = std::to_string(base);
  const std::string before = std::to_string(base - 1);
  commands_.command(
      {"EVALSHA", renumber_sha_, "2", key(room.name, "seq"), key(room.name, "epoch"), known, first,
       before, channel(room.name)},
      [this, name = room.name](redisReply* reply) {
        if (reply == nullptr || reply->type != REDIS_REPLY_STRING) {
          if (reply != nullptr) {
            spdlog::error("redis: new epoch of {}: {}", name, reply_text(reply));
          }
          return;
        }
        const std::uint64_t epoch = parse_seq(reply_text(reply));
        if (epoch == 0 || !rooms_.contains(name)) return;
        spdlog::warn("cluster: room {} continues in a new epoch from seq {}", name, epoch);
        with_listener([&](chat::HistoryStore::Listener& l) { l.on_history_reset(name, epoch); });
      });
  // Our members' entries may be gone with the rest: put them back and tell the others.
  for (const auto& [who, member] : room.local) announce(room, who, *member);
  const auto settle = std::chrono::steady_clock::now() + options_.node_ttl;
  judge_nodes_after_ = std::max(judge_nodes_after_, settle);
  if (settle > settle_until_) {
    settle_until_ = settle;
    settle_presence();
  }
}

void RedisCluster::settle_presence() {
  settle_timer_.expires_at(settle_until_);
  settle_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopping_ || !up()) return;
    // Every live node has announced its members again by now: what is still missing left.
    for (auto& [name, room] : rooms_) {
      if (room.followed && room.subscribed && room.phase == Room::Phase::kLive) {
        start_load(room, true);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// Rooms: subscribe, load, hear
// ---------------------------------------------------------------------------------------

void RedisCluster::load(std::string room_name) {
  asio::post(io_, [this, room_name = std::move(room_name)] {
    if (!up()) {
      with_listener(
          [&](chat::HistoryStore::Listener& l) { l.on_load_failed(room_name, kUnavailable); });
      return;
    }
    Room& room = rooms_[room_name];
    room.name = room_name;
    room.followed = true;
    room.phase = Room::Phase::kSubscribing;
    room.pending.clear();
    if (room.unsubscribe_pending) return;  // subscribes when the UNSUBSCRIBE is answered
    if (room.subscribed) {
      start_load(room, false);
    } else {
      subscribe(room);
    }
  });
}

void RedisCluster::unload(std::string room_name) {
  asio::post(io_, [this, room_name = std::move(room_name)] {
    const auto it = rooms_.find(room_name);
    if (it == rooms_.end()) return;
    Room& room = it->second;
    if (room.subscribed && subscriber_.subscribe_command({"UNSUBSCRIBE", channel(room_name)})) {
      // Kept, not followed, until the reply: hiredis forgets a channel's handler when the
      // UNSUBSCRIBE is answered, so a new SUBSCRIBE must not be sent before that.
      room.followed = false;
      room.unsubscribe_pending = true;
      room.pending.clear();
      room.local.clear();
      room.remote.clear();
      return;
    }
    rooms_.erase(it);
  });
}

void RedisCluster::subscribe(Room& room) {
  if (!subscriber_.subscribe_command({"SUBSCRIBE", channel(room.name)})) {
    if (room.phase != Room::Phase::kLive) fail_load(room.name);
  }
}

void RedisCluster::on_push(redisReply* reply) {
  if (!is_array(reply, 3) || reply->element[0]->type != REDIS_REPLY_STRING ||
      reply->element[1]->type != REDIS_REPLY_STRING) {
    return;
  }
  const std::string_view kind = reply_text(reply->element[0]);
  const std::string_view ch = reply_text(reply->element[1]);
  if (kind == "pmessage") {
    if (is_array(reply, 4) && reply->element[2]->type == REDIS_REPLY_STRING &&
        reply->element[3]->type == REDIS_REPLY_STRING) {
      on_direct(reply_text(reply->element[2]), reply_text(reply->element[3]));
    }
    return;
  }
  if (ch == kControlChannel) {
    if (kind == "message") {
      on_control(reply_text(reply->element[2]));
    } else if (kind == "subscribe") {
      control_subscribed_ = true;
      maybe_up();
    }
    return;
  }
  if (!ch.starts_with("rc:{") || !ch.ends_with('}')) return;
  const std::string room_name(ch.substr(4, ch.size() - 5));
  const auto it = rooms_.find(room_name);
  if (it == rooms_.end()) return;
  Room& room = it->second;
  if (kind == "message") {
    if (room.followed) on_event(room, reply_text(reply->element[2]));
  } else if (kind == "subscribe") {
    room.subscribed = true;
    if (!room.followed || room.unsubscribe_pending) return;
    if (room.phase == Room::Phase::kSubscribing) {
      start_load(room, false);
    } else {
      // Resubscribed after a reconnect: catch up on what happened meanwhile.
      start_load(room, true);
    }
  } else if (kind == "unsubscribe") {
    room.subscribed = false;
    if (!room.unsubscribe_pending) return;
    room.unsubscribe_pending = false;
    if (!room.followed) {
      rooms_.erase(it);  // nobody loaded it again meanwhile
      return;
    }
    subscribe(room);
  }
}

void RedisCluster::start_load(Room& room, bool resync) {
  if (!resync) room.phase = Room::Phase::kLoading;
  room.snapshot_pending = true;
  room.heard_during_snapshot.clear();
  const std::string count = resync ? "0" : std::to_string(options_.retention.max_messages);
  const bool sent = commands_.command(
      {"EVALSHA", load_sha_, "4", key(room.name, "seq"), key(room.name, "log"),
       key(room.name, "members"), key(room.name, "epoch"), count, kNodeKeyPrefix},
      [this, name = room.name, resync](redisReply* reply) { on_load_reply(name, resync, reply); });
  if (!sent && !resync) fail_load(room.name);
}

void RedisCluster::on_load_reply(const std::string& room_name, bool resync, redisReply* reply) {
  const auto it = rooms_.find(room_name);
  if (it == rooms_.end() || !it->second.followed) return;  // unloaded meanwhile
  Room& room = it->second;
  if (!resync && room.phase != Room::Phase::kLoading) return;
  if (!is_load_reply(reply)) {
    if (reply != nullptr) spdlog::error("redis: loading room {}: {}", room_name, reply_text(reply));
    if (!resync) fail_load(room_name);
    return;
  }
  const auto last_seq = static_cast<std::uint64_t>(reply->element[0]->integer);
  // Other nodes' members now.
  std::map<std::string, chat::MemberRef> members;
  const redisReply* list = reply->element[1];
  for (std::size_t i = 0; i + 1 < list->elements; i += 2) {
    const std::string_view id = reply_text(list->element[i]);
    if (id.starts_with(instance_ + "/")) continue;
    Fields fields(reply_text(list->element[i + 1]));
    if (chat::MemberRef member = decode_member(fields)) {
      // A member already known keeps its record: the Hubs name it by that record.
      const auto known = room.remote.find(std::string(id));
      members.emplace(std::string(id), known != room.remote.end() ? known->second : member);
    }
  }
  for (auto& event : room.heard_during_snapshot) {
    if (event.member != nullptr) {
      const auto known = room.remote.find(event.id);
      members.try_emplace(event.id, known != room.remote.end() ? known->second : event.member);
    } else {
      members.erase(event.id);
    }
  }
  room.snapshot_pending = false;
  room.heard_during_snapshot.clear();
  if (resync) {
    // The members changed while we were away: report the difference. Not the leaves while
    // presence settles after Redis lost its data: those entries may only be missing until
    // their node announces them again (settle_presence() looks again).
    if (std::chrono::steady_clock::now() >= settle_until_) {
      std::vector<std::string> gone;
      for (const auto& [id, member] : room.remote) {
        if (!members.contains(id)) gone.push_back(id);
      }
      for (const auto& id : gone) member_gone(room, id);
    }
    for (const auto& [id, member] : members) {
      if (!room.remote.emplace(id, member).second) continue;
      // A name of its own: C++20 lets a lambda capture a structured binding, clang 14 not yet.
      const auto& joined = member;
      with_presence_listener(
          [&](chat::Presence::Listener& l) { l.on_member_joined(room.name, joined); });
    }
    // Numbering below what we saw (a replica that lagged), or a new epoch we did not hear
    // of while away: the room lost its numbering.
    const std::uint64_t epoch = parse_seq(reply_text(reply->element[3]));
    if (last_seq < room.last_seq || epoch > room.last_seq) {
      if (last_seq < room.last_seq) ++data_losses_;
      room_lost(room);
    }
    // Messages published while the subscriber was away.
    if (last_seq > room.last_seq) fill_gap(room);
    return;
  }
  chat::RoomHistory history;
  history.last_seq = last_seq;
  history.messages =
      messages_of(room.name, reply, 0, options_.retention.oldest_kept_ms(clock_.unix_ms()));
  room.remote.clear();
  for (auto& [id, member] : members) {
    history.remote_members.push_back(member);
    room.remote.emplace(id, std::move(member));
  }
  room.last_seq = last_seq;
  room.phase = Room::Phase::kLive;
  with_listener(
      [&](chat::HistoryStore::Listener& l) { l.on_loaded(room.name, std::move(history)); });
  drain(room);
}

void RedisCluster::on_event(Room& room, std::string_view payload) {
  if (payload.empty()) return;
  const char kind = payload.front();
  payload.remove_prefix(1);
  if (kind == 'e') {
    // A node started a new epoch of the room (its next message follows on the channel).
    if (room.phase == Room::Phase::kLive && parse_seq(payload) > room.last_seq) room_lost(room);
    return;
  }
  if (kind == 'm') {
    const auto space = payload.find(' ');
    if (space == std::string_view::npos) return;
    Committed c;
    const std::uint64_t seq = seq_of_stream_id(payload.substr(0, space));
    if (!decode_message(room.name, seq, payload.substr(space + 1), c.message, c.node, c.origin,
                        c.counter)) {
      spdlog::warn("cluster: malformed message on {}", channel(room.name));
      return;
    }
    accept(room, std::move(c));
    return;
  }
  // Relayed: "r" node payload (an ephemeral app event's JSON), "b" node payload (binary).
  if (kind == 'r' || kind == 'b') {
    Fields relayed(payload);
    std::string_view node, body;
    if (!relayed.next(node) || !relayed.next(body) || node == instance_ + "/") return;
    if (room.phase != Room::Phase::kLive) return;
    const auto shared = std::make_shared<const std::string>(body);
    with_presence_listener(
        [&](chat::Presence::Listener& l) { l.on_relayed(room.name, shared, kind == 'b'); });
    return;
  }
  // Presence: "j" id user_id username, "l" id, "t" 0|1 id user_id username.
  Fields fields(payload);
  std::string_view id;
  if (kind == 't') {
    std::string_view started, user_id, username;
    if (!fields.next(started) || !fields.next(id) || !fields.next(user_id) ||
        !fields.next(username) || id.starts_with(instance_ + "/")) {
      return;
    }
    if (room.phase != Room::Phase::kLive) return;
    with_presence_listener([&](chat::Presence::Listener& l) {
      l.on_typing(room.name, user_id, username, started == "1");
    });
    return;
  }
  if (!fields.next(id) || id.starts_with(instance_ + "/")) return;
  chat::MemberRef member;
  if (kind == 'j') {
    member = decode_member(fields);
    if (member == nullptr) return;
  } else if (kind != 'l') {
    return;
  }
  if (room.snapshot_pending) room.heard_during_snapshot.push_back({std::string(id), member});
  if (room.phase != Room::Phase::kLive) return;  // applied on top of the load's snapshot
  if (kind == 'l') {
    member_gone(room, std::string(id));
    return;
  }
  if (!room.remote.emplace(id, member).second) return;
  with_presence_listener(
      [&](chat::Presence::Listener& l) { l.on_member_joined(room.name, member); });
}

void RedisCluster::on_direct(std::string_view ch, std::string_view payload) {
  if (!ch.starts_with(kDirectChannelPrefix) || !payload.starts_with('m')) return;  // 'e': none
  const std::string_view key = ch.substr(kDirectChannelPrefix.size());
  if (!chat::is_conversation(key)) return;
  payload.remove_prefix(1);
  const auto space = payload.find(' ');
  if (space == std::string_view::npos) return;
  Committed c;
  const std::uint64_t seq = seq_of_stream_id(payload.substr(0, space));
  if (!decode_message(key, seq, payload.substr(space + 1), c.message, c.node, c.origin,
                      c.counter)) {
    spdlog::warn("cluster: malformed message on {}", ch);
    return;
  }
  // This node's own were reported from the script's reply.
  if (c.node == instance_) return;
  with_listener([&](chat::HistoryStore::Listener& l) {
    open_report_run(l);
    l.on_committed(std::move(c.message), chat::kNoConnection);
  });
}

void RedisCluster::report_direct(const InFlight& done, std::uint64_t seq) {
  const chat::Publication& p = done.publication;
  const auto users = chat::conversation_users(p.room);
  if (!users) return;
  // The users' lists (not atomic with the script: at worst an entry lags a message behind).
  const std::string value = std::to_string(seq) + " " + std::to_string(p.timestamp_ms);
  for (const std::string_view user : {users->first, users->second}) {
    const std::string_view peer = user == users->first ? users->second : users->first;
    commands_.command({"HSET", direct_key(user, "dm-index"), peer, value}, nullptr);
    if (p.user_id == peer) {
      commands_.command({"HSET", direct_key(user, "dm-names"), peer, p.username}, nullptr);
    }
  }
  chat::StoredMessage message{p.room,    seq,          p.timestamp_ms, p.user_id,     p.username,
                              p.message, p.sender_key, p.client_id,    p.accepted_at, p.event_type};
  with_listener([&](chat::HistoryStore::Listener& l) {
    open_report_run(l);
    l.on_committed(std::move(message), p.origin);
  });
}

std::string RedisCluster::direct_key(std::string_view user_id, std::string_view what) {
  std::string k = "rc:";
  k += what;
  k += ":{";
  k += user_id;
  k += '}';
  return k;
}

void RedisCluster::member_gone(Room& room, const std::string& id) {
  const auto it = room.remote.find(id);
  if (it == room.remote.end()) return;
  const chat::MemberRef member = std::move(it->second);
  room.remote.erase(it);
  if (room.phase != Room::Phase::kLive) return;
  with_presence_listener([&](chat::Presence::Listener& l) { l.on_member_left(room.name, member); });
}

// ---------------------------------------------------------------------------------------
// Messages: in seq order, each once
// ---------------------------------------------------------------------------------------

void RedisCluster::accept(Room& room, Committed committed) {
  const std::uint64_t seq = committed.message.seq;
  if (room.phase != Room::Phase::kLive) {
    room.pending.emplace(seq, std::move(committed));  // the load decides
    return;
  }
  if (seq <= room.last_seq) return;
  if (seq == room.last_seq + 1 && room.pending.empty()) {
    report(room, committed);
    return;
  }
  room.pending.emplace(seq, std::move(committed));
  drain(room);
}

void RedisCluster::drain(Room& room) {
  while (!room.pending.empty()) {
    auto first = room.pending.begin();
    if (first->first <= room.last_seq) {
      room.pending.erase(first);
      continue;
    }
    if (first->first != room.last_seq + 1) break;
    const Committed next = std::move(first->second);
    room.pending.erase(first);
    report(room, next);
  }
  if (!room.pending.empty()) fill_gap(room);
}

void RedisCluster::fill_gap(Room& room) {
  if (room.filling) return;
  const std::string from = std::to_string(room.last_seq + 1);
  room.filling = commands_.command(
      {"XRANGE", key(room.name, "log"), from, "+", "COUNT", kGapPage},
      [this, name = room.name](redisReply* reply) {
        const auto it = rooms_.find(name);
        if (it == rooms_.end() || !it->second.followed) return;
        Room& gapped = it->second;
        gapped.filling = false;
        if (!is_array(reply, 0)) return;  // lost; the resubscription fills it again
        std::size_t got = 0;
        for (std::size_t i = 0; i < reply->elements; ++i) {
          const redisReply* entry = reply->element[i];
          if (!is_array(entry, 2) || !is_array(entry->element[1], 2)) continue;
          Committed c;
          const std::uint64_t seq = seq_of_stream_id(reply_text(entry->element[0]));
          if (seq <= gapped.last_seq) continue;
          if (!decode_message(gapped.name, seq, reply_text(entry->element[1]->element[1]),
                              c.message, c.node, c.origin, c.counter)) {
            continue;
          }
          if (seq != gapped.last_seq + 1) {
            spdlog::warn("cluster: room {} skips from seq {} to {} (trimmed from history)",
                         gapped.name, gapped.last_seq, seq);
          }
          gapped.pending.erase(seq);
          report(gapped, c);
          ++got;
        }
        if (got == 0 && !gapped.pending.empty()) {
          // The stream no longer has what the gap needs (trimmed): move on.
          const auto first = gapped.pending.begin()->first;
          spdlog::warn("cluster: room {} skips from seq {} to {} (not in history)", gapped.name,
                       gapped.last_seq, first);
          gapped.last_seq = first - 1;
        }
        if (reply->elements > 0 || !gapped.pending.empty()) drain(gapped);
      });
}

void RedisCluster::report(Room& room, const Committed& committed) {
  room.last_seq = committed.message.seq;
  const bool ours = committed.node == instance_;
  chat::StoredMessage message = committed.message;
  if (ours) {
    if (const auto awaited = awaiting_report_.find(committed.counter);
        awaited != awaiting_report_.end()) {
      message.accepted_at = awaited->second;
      awaiting_report_.erase(awaited);
    } else {
      // Heard before the script's reply: the reply must not wait for it again.
      const auto it =
          std::lower_bound(in_flight_.begin(), in_flight_.end(), committed.counter,
                           [](const InFlight& f, std::uint64_t c) { return f.counter < c; });
      if (it != in_flight_.end() && it->counter == committed.counter) {
        reported_before_reply_.insert(committed.counter);
        message.accepted_at = it->publication.accepted_at;
      }
    }
  }
  with_listener([&](chat::HistoryStore::Listener& l) {
    open_report_run(l);
    l.on_committed(std::move(message), ours ? committed.origin : chat::kNoConnection);
  });
}

void RedisCluster::open_report_run(chat::HistoryStore::Listener& listener) {
  if (report_run_open_) return;
  report_run_open_ = true;
  listener.begin_reports();
  asio::post(io_, [this] {
    report_run_open_ = false;
    with_listener([](chat::HistoryStore::Listener& l) { l.end_reports(); });
  });
}

// ---------------------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------------------

void RedisCluster::publish(chat::Publication publication) {
  asio::post(io_, [this, publication = std::move(publication)]() mutable {
    if (!up()) {
      refuse(publication);
      return;
    }
    in_flight_.push_back({std::move(publication), next_counter_++, false});
    ++unsent_;
    // Behind publications waiting to be sent again, so that a sender's order holds.
    if (unsent_ == 1 && !generation_check_pending_) send_publication(in_flight_.back());
  });
}

void RedisCluster::send_held() {
  if (unsent_ == 0 || generation_check_pending_) return;
  for (auto& in_flight : in_flight_) {
    if (!in_flight.sent) send_publication(in_flight);
  }
}

void RedisCluster::send_publication(InFlight& in_flight) {
  const chat::Publication& p = in_flight.publication;
  // The resend key's name. Not chat::idempotency_key: that joins sender and id with a NUL,
  // this names them by the sender's length, and keys already in Redis have this form: a
  // node with the other form would not recognise a resend published before its upgrade (a
  // rolling upgrade would store it twice). Both are unambiguous; same (sender_key, id), same
  // key, as the rule requires.
  std::string id_key;
  if (!p.client_id.empty()) {
    id_key = key(p.room, "id:");
    id_key += std::to_string(p.sender_key.size());
    id_key += ':';
    id_key += p.sender_key;
    id_key += p.client_id;
  }
  // An id is recognised as long as retention keeps messages by age.
  const auto id_ttl = options_.retention.max_age.count() > 0
                          ? options_.retention.max_age
                          : std::chrono::milliseconds(std::chrono::hours(24 * 30));
  const std::uint64_t counter = in_flight.counter;
  // The newest seq this node knows of in the room: Redis's counter below it means lost data.
  std::uint64_t known = 0;
  if (const auto room = rooms_.find(p.room); room != rooms_.end()) known = room->second.last_seq;
  const std::uint64_t base = chat::epoch_seq_base(known, clock_.unix_ms());
  const bool sent = commands_.command(
      {"EVALSHA",
       publish_sha_,
       "7",
       key(p.room, "seq"),
       key(p.room, "log"),
       id_key,
       key(p.room, "publishers"),
       kGenerationKey,
       key(p.room, "epoch"),
       kLostFlagKey,
       chat::is_conversation(p.room) ? std::string(kDirectChannelPrefix) + p.room : channel(p.room),
       encode_message(p, instance_, counter),
       std::to_string(options_.retention.max_messages),
       std::to_string(id_ttl.count()),
       instance_,
       std::to_string(counter),
       generation_,
       std::to_string(known),
       std::to_string(base),
       std::to_string(base - 1)},
      [this, counter, sent_at = std::chrono::steady_clock::now()](redisReply* reply) {
        // The history commit of cluster mode: the script numbered, stored
        // and published the message (a dropped connection: no reply).
        if (reply != nullptr) {
          publish_latency_.record(std::chrono::steady_clock::now() - sent_at);
        }
        on_publish_reply(counter, reply);
      });
  // Not sent: the connection is down, and everything unsent goes again after the reconnect.
  if (sent && !in_flight.sent) {
    in_flight.sent = true;
    --unsent_;
  }
}

void RedisCluster::on_publish_reply(std::uint64_t counter, redisReply* reply) {
  if (reply == nullptr) return;  // the connection dropped: sent again after reconnecting
  // in_flight_ is in counter order.
  const auto it =
      std::lower_bound(in_flight_.begin(), in_flight_.end(), counter,
                       [](const InFlight& f, std::uint64_t c) { return f.counter < c; });
  if (it == in_flight_.end() || it->counter != counter) return;
  const bool reported = reported_before_reply_.erase(counter) > 0;
  if (is_array(reply, 2) && reply->element[0]->type == REDIS_REPLY_INTEGER &&
      reply->element[0]->integer == 3) {
    // Redis lost its data since we last looked: nothing was stored. Find out, then send it
    // again (with everything behind it) in the new epoch.
    it->sent = false;
    ++unsent_;
    if (!generation_check_pending_) {
      generation_check_pending_ = true;
      check_generation(false);
    }
    return;
  }
  const InFlight done = std::move(*it);
  in_flight_.erase(it);
  if (!is_array(reply, 2) || reply->element[0]->type != REDIS_REPLY_INTEGER ||
      reply->element[1]->type != REDIS_REPLY_INTEGER) {
    spdlog::error("redis: publishing to {}: {}", done.publication.room, reply_text(reply));
    refuse(done.publication);
    return;
  }
  const auto status = reply->element[0]->integer;
  const auto seq = static_cast<std::uint64_t>(reply->element[1]->integer);
  if (status == 0) {
    with_listener([&](chat::HistoryStore::Listener& l) { l.on_duplicate(done.publication, seq); });
  } else if (status == 1 && chat::is_conversation(done.publication.room)) {
    // A conversation is followed by no node: its sender's node reports it now, the others
    // when they hear it (on_direct).
    report_direct(done, seq);
  } else if (status == 1 && !reported) {
    // Reported when heard on the channel (or read from the stream), in seq order.
    const auto room = rooms_.find(done.publication.room);
    if (room != rooms_.end() && room->second.last_seq < seq) {
      awaiting_report_.emplace(counter, done.publication.accepted_at);
    } else if (room != rooms_.end()) {
      // Stored under a seq this node is already past: it would never be delivered here
      // (Redis lost data between our checks). Refuse rather than leave it unanswered.
      spdlog::error("cluster: room {}: message stored as seq {} behind seq {}; refused",
                    done.publication.room, seq, room->second.last_seq);
      refuse(done.publication);
    }
  }
  // status 2: stored before the connection dropped; the stream reports it.
}

void RedisCluster::refuse(const chat::Publication& publication) {
  with_listener([&](chat::HistoryStore::Listener& l) { l.on_refused(publication, kUnavailable); });
}

void RedisCluster::fail_load(const std::string& room_name) {
  const auto it = rooms_.find(room_name);
  if (it == rooms_.end()) return;
  if (it->second.subscribed) subscriber_.subscribe_command({"UNSUBSCRIBE", channel(room_name)});
  rooms_.erase(it);
  with_listener(
      [&](chat::HistoryStore::Listener& l) { l.on_load_failed(room_name, kUnavailable); });
}

// ---------------------------------------------------------------------------------------
// Presence
// ---------------------------------------------------------------------------------------

void RedisCluster::member_joined(std::string_view room_name, chat::ConnectionId who,
                                 const chat::MemberRef& member) {
  asio::post(io_, [this, room_name = std::string(room_name), who, member] {
    const auto it = rooms_.find(room_name);
    if (it == rooms_.end() || !it->second.followed) return;
    Room& room = it->second;
    room.local.insert_or_assign(who, member);
    if (up()) announce(room, who, *member);
  });
}

void RedisCluster::announce(Room& room, chat::ConnectionId who, const chat::MemberInfo& member) {
  const std::string id = member_id(who);
  const std::string fields =
      encode_member(member.user_id(), member.username(), member.authenticated());
  commands_.command({"HSET", key(room.name, "members"), id, fields}, nullptr);
  std::string event = "j";
  put(event, id);
  event += fields;
  commands_.command({"PUBLISH", channel(room.name), event}, nullptr);
}

void RedisCluster::member_left(std::string_view room_name, chat::ConnectionId who,
                               const chat::MemberRef& /*member*/) {
  asio::post(io_, [this, room_name = std::string(room_name), who] {
    const auto it = rooms_.find(room_name);
    if (it == rooms_.end()) return;
    it->second.local.erase(who);
    if (!up()) return;  // our members are re-announced from `local` after the reconnect
    const std::string id = member_id(who);
    commands_.command({"HDEL", key(room_name, "members"), id}, nullptr);
    std::string event = "l";
    put(event, id);
    commands_.command({"PUBLISH", channel(room_name), event}, nullptr);
  });
}

void RedisCluster::typing(std::string_view room_name, std::string_view user_id,
                          std::string_view username, bool started) {
  std::string event = "t";
  put(event, started ? "1" : "0");
  put(event, instance_ + "/");
  put(event, user_id);
  put(event, username);
  asio::post(io_, [this, ch = channel(room_name), event = std::move(event)] {
    if (up()) commands_.command({"PUBLISH", ch, event}, nullptr);
  });
}

void RedisCluster::relay(std::string_view room_name, chat::ConnectionId,
                         const std::shared_ptr<const std::string>& payload, bool binary) {
  std::string event(binary ? "b" : "r");
  put(event, instance_ + "/");
  put(event, *payload);
  asio::post(io_, [this, ch = channel(room_name), event = std::move(event)] {
    if (up()) commands_.command({"PUBLISH", ch, event}, nullptr);
  });
}

// ---------------------------------------------------------------------------------------
// Rate budgets
// ---------------------------------------------------------------------------------------

void RedisCluster::set_budget_listener(chat::SharedBudgets::Listener* listener) {
  std::lock_guard lock(listener_mutex_);
  budget_listener_ = listener;
}

void RedisCluster::spend(std::vector<Spend> spends) {
  asio::post(io_, [this, spends = std::move(spends)] {
    // Unreachable: each node limits on its own counters meanwhile (see the interface).
    if (!up()) return;
    for (const Spend& spend : spends) {
      std::string rate_key(kRateKeyPrefix);
      rate_key += spend.budget;
      rate_key += ':';
      rate_key += spend.key;
      commands_.command(
          {"EVALSHA", rate_sha_, "1", rate_key, std::to_string(spend.events),
           std::to_string(spend.policy.max_events), std::to_string(spend.policy.window.count()),
           std::to_string(spend.policy.block_windows > 0 ? spend.policy.block().count() : 0)},
          [this, budget = spend.budget, key = spend.key](redisReply* reply) {
            if (!is_array(reply, 3) || reply->element[0]->type != REDIS_REPLY_INTEGER ||
                reply->element[1]->type != REDIS_REPLY_INTEGER ||
                reply->element[2]->type != REDIS_REPLY_INTEGER) {
              if (reply != nullptr) spdlog::warn("redis: rate budget: {}", reply_text(reply));
              return;
            }
            const chat::SharedBudgets::State state{
                static_cast<std::uint32_t>(reply->element[0]->integer),
                std::chrono::milliseconds(reply->element[1]->integer),
                std::chrono::milliseconds(reply->element[2]->integer)};
            std::lock_guard lock(listener_mutex_);
            if (budget_listener_ != nullptr) budget_listener_->on_budget(budget, key, state);
          });
    }
  });
}

// ---------------------------------------------------------------------------------------
// Control: the server API's commands for every node, the node list
// ---------------------------------------------------------------------------------------

void RedisCluster::set_control_listener(chat::ClusterControl::Listener* listener) {
  std::lock_guard lock(listener_mutex_);
  control_listener_ = listener;
}

void RedisCluster::send_command(chat::ControlCommand command, SendDone done) {
  asio::post(
      io_, [this, message = encode_command(command, instance_), done = std::move(done)]() mutable {
        auto reply_done = std::make_shared<SendDone>(std::move(done));
        const bool sent =
            up() && commands_.command(
                        {"PUBLISH", kControlChannel, message}, [reply_done](redisReply* reply) {
                          // The subscribers that got it: one connection per node.
                          if (reply == nullptr || reply->type != REDIS_REPLY_INTEGER) {
                            (*reply_done)(std::nullopt);
                            return;
                          }
                          (*reply_done)(static_cast<std::size_t>(reply->integer));
                        });
        if (!sent) (*reply_done)(std::nullopt);
      });
}

void RedisCluster::on_control(std::string_view payload) {
  std::string_view sender;
  chat::ControlCommand command;
  if (!decode_command(payload, sender, command)) {
    spdlog::warn("cluster: malformed control message on {}", kControlChannel);
    return;
  }
  if (sender == instance_) return;  // applied when the request came in
  spdlog::info(
      "cluster: node {} asks to {} user {}{}{}", sender,
      command.kind == chat::ControlCommand::Kind::kDisconnect ? "disconnect" : "unsubscribe",
      command.user_id, command.room.empty() ? "" : " from ", command.room);
  std::lock_guard lock(listener_mutex_);
  if (control_listener_ != nullptr) control_listener_->on_command(command);
}

std::string RedisCluster::node_figures() {
  chat::NodeInfo info;
  {
    std::lock_guard lock(listener_mutex_);
    if (control_listener_ != nullptr) info = control_listener_->node_info();
  }
  const auto build = base::build_info();
  info.version = build.version;
  info.commit = build.commit;
  info.started_unix_ms = started_unix_ms_;
  return encode_node(info);
}

void RedisCluster::list_nodes(NodesDone done) {
  asio::post(io_, [this, done = std::move(done)]() mutable {
    auto reply_done = std::make_shared<NodesDone>(std::move(done));
    const bool sent =
        up() &&
        commands_.command({"EVALSHA", nodes_sha_, "1", kNodesKey, kNodeKeyPrefix},
                          [reply_done](redisReply* reply) {
                            if (!is_array(reply, 0)) {
                              (*reply_done)(std::nullopt);
                              return;
                            }
                            std::vector<chat::NodeInfo> nodes;
                            for (std::size_t i = 0; i + 1 < reply->elements; i += 2) {
                              nodes.push_back(decode_node(reply_text(reply->element[i]),
                                                          reply_text(reply->element[i + 1])));
                            }
                            std::sort(nodes.begin(), nodes.end(),
                                      [](const auto& a, const auto& b) { return a.node < b.node; });
                            (*reply_done)(std::move(nodes));
                          });
    if (!sent) (*reply_done)(std::nullopt);
  });
}

void RedisCluster::set_connections(std::string_view user_id, std::size_t connections, bool opened,
                                   CountDone done) {
  asio::post(io_, [this, user = std::string(user_id), connections, opened,
                   done = std::move(done)]() mutable {
    if (connections > 0) {
      online_[user] = connections;
      online_unwritten_.erase(user);
    } else {
      online_.erase(user);
      online_unwritten_.insert(user);
    }
    const std::string hash = std::string(kOnlineKeyPrefix) + user;
    const std::string count = std::to_string(connections);
    auto reply_done = std::make_shared<CountDone>(std::move(done));
    const bool sent =
        up() && commands_.command(
                    {"EVALSHA", online_set_sha_, "2", hash, hash + ":gen", instance_, count,
                     opened ? "1" : "0", kNodeKeyPrefix, kOnlineGenerationTtlMs},
                    [this, user, connections, reply_done](redisReply* reply) {
                      const bool ok = is_array(reply, 2) &&
                                      reply->element[0]->type == REDIS_REPLY_INTEGER &&
                                      reply->element[1]->type == REDIS_REPLY_INTEGER;
                      // Written: a zero needs no rewriting (unless a newer one came since).
                      if (ok && connections == 0 && !online_.contains(user)) {
                        online_unwritten_.erase(user);
                      }
                      if (!*reply_done) return;
                      if (!ok) return (*reply_done)(std::nullopt);
                      (*reply_done)(Count{static_cast<std::uint64_t>(reply->element[0]->integer),
                                          static_cast<std::uint64_t>(reply->element[1]->integer)});
                    });
    if (!sent && *reply_done) (*reply_done)(std::nullopt);
  });
}

void RedisCluster::claim_offline(std::string_view user_id, std::uint64_t generation,
                                 ClaimDone done) {
  asio::post(
      io_, [this, user = std::string(user_id), generation, done = std::move(done)]() mutable {
        const std::string hash = std::string(kOnlineKeyPrefix) + user;
        const std::string gen = std::to_string(generation);
        auto reply_done = std::make_shared<ClaimDone>(std::move(done));
        const bool sent =
            up() &&
            commands_.command({"EVALSHA", online_claim_sha_, "3", hash, hash + ":gen",
                               hash + ":offline:" + gen, gen, kNodeKeyPrefix, kOnlineClaimTtlMs},
                              [reply_done](redisReply* reply) {
                                if (reply == nullptr || reply->type != REDIS_REPLY_INTEGER) {
                                  return (*reply_done)(std::nullopt);
                                }
                                (*reply_done)(reply->integer == 1);
                              });
        if (!sent) (*reply_done)(std::nullopt);
      });
}

void RedisCluster::rewrite_online() {
  if (!up()) return;
  for (const auto& [user, connections] : online_) {
    commands_.command(
        {"HSET", std::string(kOnlineKeyPrefix) + user, instance_, std::to_string(connections)},
        nullptr);
  }
  // A user leaves the unwritten set only once Redis has answered its HDEL: if the connection
  // drops mid-rewrite, the next reconnection's rewrite sends it again.
  for (const auto& user : online_unwritten_) {
    commands_.command(
        {"HDEL", std::string(kOnlineKeyPrefix) + user, instance_}, [this, user](redisReply* reply) {
          if (reply != nullptr && reply->type != REDIS_REPLY_ERROR && !online_.contains(user)) {
            online_unwritten_.erase(user);
          }
        });
  }
}

// ---------------------------------------------------------------------------------------
// Blocking calls (not on the cluster thread)
// ---------------------------------------------------------------------------------------

void RedisCluster::read(std::string_view room_name, std::uint64_t after_seq, std::size_t limit,
                        ReadDone done) {
  asio::post(io_, [this, name = std::string(room_name), after_seq, limit,
                   done = std::move(done)]() mutable {
    auto reply_done = std::make_shared<ReadDone>(std::move(done));
    // The stream may hold a few more than retention keeps (MAXLEN ~): never read past it.
    const std::size_t count = std::min(limit, options_.retention.max_messages);
    const bool sent =
        up() &&
        commands_.command(
            {"EVALSHA", load_sha_, "4", key(name, "seq"), key(name, "log"), key(name, "members"),
             key(name, "epoch"), std::to_string(count), kNodeKeyPrefix},
            [this, reply_done, name, after_seq](redisReply* reply) {
              if (!is_load_reply(reply)) {
                (*reply_done)(std::nullopt);
                return;
              }
              chat::RoomHistory history;
              history.last_seq = static_cast<std::uint64_t>(reply->element[0]->integer);
              history.messages = messages_of(name, reply, after_seq,
                                             options_.retention.oldest_kept_ms(clock_.unix_ms()));
              (*reply_done)(std::move(history));
            });
    if (!sent) (*reply_done)(std::nullopt);
  });
}

void RedisCluster::conversations(std::string_view user_id, std::size_t limit,
                                 ConversationsDone done) {
  asio::post(io_, [this, user = std::string(user_id), limit, done = std::move(done)]() mutable {
    auto answer = std::make_shared<ConversationsDone>(std::move(done));
    // Replies come in order: the names' reply finds the index's kept in `list`.
    auto list = std::make_shared<std::optional<std::vector<chat::ConversationSummary>>>();
    const bool sent =
        up() &&
        commands_.command({"HGETALL", direct_key(user, "dm-index")},
                          [list](redisReply* reply) {
                            if (!is_array(reply, 0)) return;
                            list->emplace();
                            for (std::size_t i = 0; i + 1 < reply->elements; i += 2) {
                              chat::ConversationSummary c;
                              c.peer_id = reply_text(reply->element[i]);
                              const std::string_view value = reply_text(reply->element[i + 1]);
                              const auto space = value.find(' ');
                              if (space == std::string_view::npos) continue;
                              c.last_seq = parse_seq(value.substr(0, space));
                              c.last_timestamp_ms =
                                  static_cast<std::int64_t>(parse_seq(value.substr(space + 1)));
                              (*list)->push_back(std::move(c));
                            }
                          }) &&
        commands_.command(
            {"HGETALL", direct_key(user, "dm-names")}, [list, answer, limit](redisReply* reply) {
              if (!*list || !is_array(reply, 0)) {
                (*answer)(std::nullopt);
                return;
              }
              auto& entries = **list;
              for (std::size_t i = 0; i + 1 < reply->elements; i += 2) {
                const std::string_view peer = reply_text(reply->element[i]);
                for (auto& c : entries) {
                  if (c.peer_id == peer) c.peer_username = reply_text(reply->element[i + 1]);
                }
              }
              std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
                return a.last_timestamp_ms != b.last_timestamp_ms
                           ? a.last_timestamp_ms > b.last_timestamp_ms
                           : a.peer_id < b.peer_id;
              });
              if (entries.size() > limit) entries.resize(limit);
              (*answer)(std::move(*list));
            });
    if (!sent) (*answer)(std::nullopt);
  });
}

void RedisCluster::flush() {
  const auto deadline = std::chrono::steady_clock::now() + kFlushTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto idle = std::make_shared<std::promise<bool>>();
    auto answer = idle->get_future();
    asio::post(io_,
               [this, idle] { idle->set_value(in_flight_.empty() && awaiting_report_.empty()); });
    if (answer.wait_for(std::chrono::seconds(1)) == std::future_status::ready && answer.get()) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  spdlog::warn("redis: gave up waiting for messages to be stored (Redis unreachable?)");
}

}  // namespace roomcast::cluster

#include "worker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>

#include "clock.h"
#include "wire.h"
#include "ws/deflate_negotiation.h"
#include "ws/frame.h"
#include "ws/handshake.h"

namespace roomcast::bench {
namespace {

// epoll user data of the command pipe; client slots are indexes into clients_.
constexpr std::uint32_t kCommandSlot = std::numeric_limits<std::uint32_t>::max();
// One read takes at most this much; level-triggered epoll brings us back for the rest.
constexpr std::size_t kReadBufferBytes = 256 * 1024;
// Largest message we accept from the server: a user_list of a very big room is large.
constexpr std::size_t kMaxServerMessage = 64 << 20;
// An upgrade response longer than this is not one.
constexpr std::size_t kMaxUpgradeResponse = 16 * 1024;
// Messages sent per loop turn at most, so a generator that falls behind still reads.
constexpr std::uint64_t kMaxSendBurst = 1024;
// How often connect/join deadlines are checked during setup.
constexpr std::uint64_t kSetupTickNs = 50'000'000;
// IP_BIND_ADDRESS_NO_PORT (Linux 4.2): defer the source port choice to connect(), so a
// port is unique per 4-tuple rather than per source address.
constexpr int kBindAddressNoPort = 24;

std::string errno_text(const char* what, int error) {
  return std::string(what) + ": " + std::strerror(error);
}

// "room-3", "u42": a prefix and a number. Appended, not written "room-" + std::to_string(n):
// GCC 12 at -O3 takes that operator+ (an insert at the front of the temporary) for an
// overlapping memcpy and warns (-Wrestrict, a known false positive of GCC 12 in C++20 mode).
std::string numbered(std::string_view prefix, std::uint64_t number) {
  std::string out(prefix);
  out += std::to_string(number);
  return out;
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& ch : out) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  return out;
}

// Value of header `name` (lowercase, with the colon) in a raw HTTP response head.
std::string_view header_value(std::string_view head, std::string_view lower_head,
                              std::string_view name) {
  const auto at = lower_head.find(name);
  if (at == std::string_view::npos) return {};
  auto begin = at + name.size();
  auto end = head.find("\r\n", begin);
  if (end == std::string_view::npos) end = head.size();
  while (begin < end && (head[begin] == ' ' || head[begin] == '\t')) ++begin;
  while (end > begin && (head[end - 1] == ' ' || head[end - 1] == '\t')) --end;
  return head.substr(begin, end - begin);
}

// What a browser offers (Chromium's offer): the server chooses the rest.
constexpr const char* kDeflateOffer =
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

// True if the server's Sec-WebSocket-Extensions accepted our permessage-deflate offer.
bool accepted_deflate(std::string_view extensions) {
  const auto answers = ws::parse_extensions(extensions);
  return answers && std::any_of(answers->begin(), answers->end(), [](const auto& answer) {
           return answer.name == "permessage-deflate";
         });
}

}  // namespace

Worker::Worker(const Options& options, int worker_index, int first_client, int client_count,
               int command_fd, int report_fd)
    : options_(options),
      worker_index_(worker_index),
      first_client_(first_client),
      command_fd_(command_fd),
      report_fd_(report_fd),
      random_(std::random_device{}() ^ (static_cast<std::uint64_t>(getpid()) << 32)),
      clients_(static_cast<std::size_t>(client_count)),
      read_buffer_(kReadBufferBytes),
      frame_buffer_(ws::kMaxHeaderSize + message_capacity() + 256) {
  connect_concurrency_ = std::max(1, options.connect_concurrency / options.processes);
  for (std::size_t slot = 0; slot < clients_.size(); ++slot) {
    Client& client = clients_[slot];
    client.index = first_client_ + static_cast<int>(slot);
    const std::uint64_t bits = random_();
    for (std::size_t i = 0; i < client.mask.size(); ++i) {
      client.mask[i] = static_cast<std::uint8_t>(bits >> (8 * i));
    }
    if (client.index % options.clients_per_room < options.senders_per_room) {
      senders_.push_back(static_cast<std::uint32_t>(slot));
      sender_rooms_.push_back(numbered("room-", client.index / options.clients_per_room));
    }
  }
}

Worker::~Worker() {
  for (Client& client : clients_) {
    if (client.fd >= 0) ::close(client.fd);
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

int Worker::run() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    fatal(errno_text("epoll_create1", errno));
    return 1;
  }
  epoll_event command_event{};
  command_event.events = EPOLLIN;
  command_event.data.u32 = kCommandSlot;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, command_fd_, &command_event) != 0) {
    fatal(errno_text("epoll_ctl(command pipe)", errno));
    return 1;
  }

  now_ns_ = monotonic_ns();
  connect_begin_ns_ = now_ns_;
  std::uint64_t next_setup_tick = now_ns_ + kSetupTickNs;
  std::array<epoll_event, 512> events;
  while (!quit_ && !fatal_) {
    start_connects();
    send_joins();
    send_due_messages();
    finish_step_if_due();
    maybe_report_phase();
    if (quit_ || fatal_) break;

    const int ready =
        epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms());
    if (ready < 0 && errno != EINTR) {
      fatal(errno_text("epoll_wait", errno));
      break;
    }
    now_ns_ = monotonic_ns();
    for (int i = 0; i < ready; ++i) {
      const auto& event = events[static_cast<std::size_t>(i)];
      if (event.data.u32 == kCommandSlot) {
        if (!on_command()) break;
      } else {
        on_event(event.data.u32, event.events);
      }
    }
    now_ns_ = monotonic_ns();
    if (!join_reported_ && now_ns_ >= next_setup_tick) {
      check_setup_deadlines();
      next_setup_tick = now_ns_ + kSetupTickNs;
    }
  }
  return fatal_ ? 1 : 0;
}

// ---- setup ---------------------------------------------------------------------------------

void Worker::start_connects() {
  while (connects_in_flight_ < connect_concurrency_ && next_to_connect_ < clients_.size()) {
    start_connect(clients_[next_to_connect_++]);
  }
}

void Worker::start_connect(Client& client) {
  client.state = State::kConnecting;
  client.deadline_ns = now_ns_ + s_to_ns(options_.connect_timeout_s);
  ++connects_in_flight_;

  client.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (client.fd < 0) {
    fail_setup(client, errno_text("socket", errno) +
                           (errno == EMFILE ? " (too many open files: use more --processes)" : ""));
    return;
  }
  const int one = 1;
  setsockopt(client.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (options_.source_ips > 0 && options_.target_is_loopback()) {
    setsockopt(client.fd, IPPROTO_IP, kBindAddressNoPort, &one, sizeof one);
    sockaddr_in source{};
    source.sin_family = AF_INET;
    source.sin_addr.s_addr =
        htonl((127U << 24) | static_cast<std::uint32_t>(1 + client.index % options_.source_ips));
    if (::bind(client.fd, static_cast<const sockaddr*>(static_cast<const void*>(&source)),
               sizeof source) != 0) {
      fail_setup(client, errno_text("bind to source address", errno));
      return;
    }
  }
  sockaddr_in target{};
  target.sin_family = AF_INET;
  target.sin_port = htons(options_.port);
  inet_pton(AF_INET, options_.host.c_str(), &target.sin_addr);
  if (::connect(client.fd, static_cast<const sockaddr*>(static_cast<const void*>(&target)),
                sizeof target) != 0 &&
      errno != EINPROGRESS) {
    fail_setup(client, errno_text("connect", errno));
    return;
  }
  epoll_event event{};
  event.events = EPOLLIN | EPOLLOUT;
  event.data.u32 = static_cast<std::uint32_t>(&client - clients_.data());
  client.want_write = true;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, client.fd, &event) != 0) {
    fail_setup(client, errno_text("epoll_ctl", errno));
  }
}

void Worker::on_connected(Client& client) {
  int error = 0;
  socklen_t length = sizeof error;
  if (getsockopt(client.fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
  if (error != 0) {
    fail_setup(client, errno_text("connect", error));
    return;
  }
  std::array<std::uint8_t, 16> nonce{};
  for (std::size_t i = 0; i < nonce.size(); i += 8) {
    const std::uint64_t bits = random_();
    std::memcpy(nonce.data() + i, &bits, 8);
  }
  const std::string key = base64(nonce.data(), nonce.size());
  client.accept_key = ws::accept_key(key);
  client.state = State::kUpgrading;
  const std::string request = "GET " + options_.path + " HTTP/1.1\r\nHost: " + options_.host + ":" +
                              std::to_string(options_.port) +
                              "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: " +
                              key + "\r\nSec-WebSocket-Version: 13\r\n" +
                              (options_.deflate ? kDeflateOffer : "") + "\r\n";
  set_want_write(client, false);
  queue_bytes(client, request.data(), request.size());
}

void Worker::on_upgrade_bytes(Client& client, std::uint8_t* data, std::size_t len) {
  client.http_response.append(static_cast<const char*>(static_cast<const void*>(data)), len);
  const auto head_end = client.http_response.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    if (client.http_response.size() > kMaxUpgradeResponse) {
      fail_setup(client, "upgrade response too long");
    }
    return;
  }
  const std::string_view head(client.http_response.data(), head_end + 2);
  const std::string lower_head = lowercase(head);
  if (head.rfind("HTTP/1.1 101", 0) != 0) {
    fail_setup(client, "upgrade refused: " + std::string(head.substr(0, head.find("\r\n"))));
    return;
  }
  if (header_value(head, lower_head, "\r\nsec-websocket-accept:") != client.accept_key) {
    fail_setup(client, "upgrade response has a wrong Sec-WebSocket-Accept");
    return;
  }
  const std::size_t rest = client.http_response.size() - (head_end + 4);
  std::string().swap(client.http_response);
  std::string().swap(client.accept_key);
  client.reader = std::make_unique<ws::Reader>(ws::Role::kClient, kMaxServerMessage);
  if (options_.deflate &&
      accepted_deflate(header_value(head, lower_head, "\r\nsec-websocket-extensions:"))) {
    // Inflate state kept between messages whatever the server answered: a server without
    // context takeover never refers back, so this reads its messages too, and it saves an
    // inflate state made and freed per delivery (the generator must stay cheaper per delivery
    // than the server it measures).
    client.reader->enable_inflate(true);
    ++health_.deflate_connections;
  }
  client.state = State::kAwaitEstablished;
  if (rest > 0) {
    current_ = &client;
    const ws::ReadResult result = client.reader->feed({data + len - rest, rest}, *this);
    current_ = nullptr;
    if (!result.ok) client.close_pending = true;
    if (client.close_pending) close_client(client, "server broke the WebSocket protocol");
  }
}

void Worker::on_established(Client& client) {
  client.state = State::kEstablished;
  ++established_;
  --connects_in_flight_;
  last_established_ns_ = now_ns_;
}

void Worker::send_joins() {
  if (!joining_ || next_to_join_ >= clients_.size()) return;
  const double elapsed_s = ns_to_s(now_ns_ - std::min(now_ns_, join_command_.start_ns));
  const auto due = static_cast<std::uint64_t>(elapsed_s * join_command_.rate) + 1;
  while (next_to_join_ < clients_.size() && joins_sent_ < due) {
    Client& client = clients_[next_to_join_++];
    if (client.state != State::kEstablished) continue;  // closed meanwhile, counted then
    const int room = client.index / options_.clients_per_room;
    const std::string join =
        join_json(numbered("room-", room), numbered("u", client.index), options_.batch,
                  options_.message_kind == MessageKind::kBinary);
    client.state = State::kJoining;
    client.deadline_ns = now_ns_ + s_to_ns(options_.connect_timeout_s);
    ++joins_sent_;
    send_frame(client, ws::Opcode::kText, join.data(), join.size());
  }
}

void Worker::on_welcome(Client& client) {
  if (client.state != State::kJoining) return;
  client.state = State::kJoined;
  ++joined_;
  last_joined_ns_ = now_ns_;
}

void Worker::fail_setup(Client& client, const std::string& why) {
  if (first_error_.empty()) first_error_ = "client u" + std::to_string(client.index) + ": " + why;
  switch (client.state) {
    case State::kConnecting:
    case State::kUpgrading:
    case State::kAwaitEstablished:
      ++connect_failed_;
      --connects_in_flight_;
      break;
    case State::kEstablished:
    case State::kJoining:
      ++join_failed_;
      break;
    default:
      break;
  }
  if (client.fd >= 0) {
    ::close(client.fd);  // also removes it from the epoll set
    client.fd = -1;
  }
  client.reader.reset();
  std::string().swap(client.outbound);
  std::string().swap(client.http_response);
  client.state = State::kFailed;
}

void Worker::check_setup_deadlines() {
  for (Client& client : clients_) {
    const bool in_setup = client.state == State::kConnecting || client.state == State::kUpgrading ||
                          client.state == State::kAwaitEstablished ||
                          client.state == State::kJoining;
    if (in_setup && now_ns_ >= client.deadline_ns) {
      fail_setup(client, client.state == State::kJoining
                             ? "no welcome within --connect-timeout after join_room"
                             : "not established within --connect-timeout");
    }
  }
}

void Worker::maybe_report_phase() {
  if (!connect_reported_ && established_ + connect_failed_ == clients_.size()) {
    connect_reported_ = true;
    Report out;
    out.kind = ReportKind::kConnected;
    out.ok = established_;
    out.failed = connect_failed_;
    out.phase_begin_ns = connect_begin_ns_;
    out.phase_end_ns = established_ > 0 ? last_established_ns_ : now_ns_;
    report(out);
  }
  if (joining_ && !join_reported_ && joined_ + join_failed_ == established_) {
    join_reported_ = true;
    Report out;
    out.kind = ReportKind::kJoined;
    out.ok = joined_;
    out.failed = join_failed_;
    out.phase_begin_ns = join_command_.start_ns;
    out.phase_end_ns = joined_ > 0 ? last_joined_ns_ : now_ns_;
    report(out);
  }
  if (settling_ && (full_lists_ == joined_ || now_ns_ >= settle_command_.cutoff_ns)) {
    settling_ = false;
    Report out;
    out.kind = ReportKind::kSettled;
    out.ok = full_lists_;
    out.failed = joined_ - full_lists_;
    out.phase_begin_ns = join_command_.start_ns;
    out.phase_end_ns = full_lists_ > 0 ? last_full_list_ns_ : now_ns_;
    report(out);
  }
}

// ---- steady state ---------------------------------------------------------------------------

void Worker::send_due_messages() {
  if (!step_.active || step_.window_closed || now_ns_ < step_.command.start_ns) return;
  if (!step_.window_started) {
    step_.window_started = true;
    step_.window_start_ns = now_ns_;
    step_.cpu_start_ns = process_cpu_ns();
  }
  const Command& command = step_.command;
  // Messages due before the window's end are still sent when the loop wakes a little late
  // (a busy turn, a preempted process), so a step sends its full count unless the generator
  // is truly behind. Each carries its actual send time.
  const std::uint64_t until = std::min(now_ns_, command.send_end_ns);
  if (command.rate > 0 && !senders_.empty()) send_messages_due_by(until);
  if (now_ns_ >= command.send_end_ns) {
    step_.window_closed = true;
    step_.window_end_ns = now_ns_;
    step_.cpu_end_ns = process_cpu_ns();
  }
}

void Worker::send_messages_due_by(std::uint64_t until_ns) {
  const Command& command = step_.command;
  // Message k is due at start + k / rate; those due at or before `until_ns` (strictly
  // before send_end) are due now.
  const double elapsed_s = ns_to_s(until_ns - command.start_ns);
  auto due = static_cast<std::uint64_t>(elapsed_s * command.rate) + 1;
  if (until_ns == command.send_end_ns) {
    due = static_cast<std::uint64_t>(std::ceil(elapsed_s * command.rate));
  }
  std::array<char, message_capacity()> text;
  for (std::uint64_t burst = 0; step_.sent < due && burst < kMaxSendBurst; ++burst) {
    // Round-robin over the senders, skipping any the server closed.
    Client* sender = nullptr;
    std::size_t sender_at = 0;
    for (std::size_t tries = 0; tries < senders_.size() && sender == nullptr; ++tries) {
      sender_at = step_.next_sender;
      Client& candidate = clients_[senders_[sender_at]];
      step_.next_sender = (step_.next_sender + 1) % senders_.size();
      if (candidate.state == State::kJoined) sender = &candidate;
    }
    if (sender == nullptr) {
      step_.senders_gone = true;  // nothing left to pace: stop waking up for it
      return;
    }
    const std::size_t len = compose_message(text.data(), sender_rooms_[sender_at], command.step);
    send_frame(
        *sender,
        options_.message_kind == MessageKind::kBinary ? ws::Opcode::kBinary : ws::Opcode::kText,
        text.data(), len);
    ++step_.sent;
    step_.sent_bytes += len;
    step_.expected += static_cast<std::uint64_t>(
        options_.deliveries_per_message(sender->index / options_.clients_per_room));
  }
}

std::size_t Worker::compose_message(char* out, std::string_view room, std::uint32_t step) {
  const auto text_bytes = static_cast<std::size_t>(options_.payload_bytes);
  switch (options_.message_kind) {
    case MessageKind::kChat:
      break;
    case MessageKind::kEvent:
      return write_event_json(out, options_.event_type, room, monotonic_ns(), step, text_bytes,
                              options_.ids);
    case MessageKind::kPosition:
      return write_position_json(out, options_.event_type, room, position_at(step_.sent),
                                 monotonic_ns(), step);
    case MessageKind::kBinary:
      return write_position_binary(out, position_at(step_.sent), monotonic_ns(), step);
  }
  return write_chat_json(out, monotonic_ns(), step, text_bytes, options_.ids);
}

void Worker::finish_step_if_due() {
  if (!step_.active || !step_.window_closed || now_ns_ < step_.command.cutoff_ns) return;
  Report out;
  out.kind = ReportKind::kStep;
  out.step = step_.command.step;
  out.sent = step_.sent;
  out.expected = step_.expected;
  out.sent_bytes = step_.sent_bytes;
  out.received = step_.received;
  out.wire_bytes = step_.wire_bytes;
  out.cpu_ns = step_.cpu_end_ns - step_.cpu_start_ns;
  out.window_ns = step_.window_end_ns - step_.window_start_ns;
  out.latency = step_.latency;
  step_.active = false;
  report(out);
}

// ---- I/O ------------------------------------------------------------------------------------

void Worker::on_event(std::uint32_t slot, std::uint32_t events) {
  Client& client = clients_[slot];
  if (client.fd < 0) return;
  if (client.state == State::kConnecting) {
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) on_connected(client);
    return;
  }
  if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) on_readable(client);
  if (client.fd >= 0 && (events & EPOLLOUT) != 0) flush(client);
}

void Worker::on_readable(Client& client) {
  const ssize_t n = ::recv(client.fd, read_buffer_.data(), read_buffer_.size(), 0);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    close_client(client, std::strerror(errno));
    return;
  }
  if (n == 0) {
    close_client(client, "the server closed the connection");
    return;
  }
  now_ns_ = monotonic_ns();  // the arrival time of every message in this read
  const auto len = static_cast<std::size_t>(n);
  if (step_.active && step_.window_started && now_ns_ <= step_.command.cutoff_ns) {
    step_.wire_bytes += len;
  }
  if (client.state == State::kUpgrading) {
    on_upgrade_bytes(client, read_buffer_.data(), len);
    return;
  }
  if (!client.reader) return;
  current_ = &client;
  const ws::ReadResult result = client.reader->feed({read_buffer_.data(), len}, *this);
  current_ = nullptr;
  if (!result.ok) {
    close_client(client, "the server broke the WebSocket protocol");
  } else if (client.close_pending) {
    close_client(client, "the server sent a close frame");
  }
}

void Worker::send_frame(Client& client, ws::Opcode opcode, const char* payload, std::size_t len) {
  if (client.fd < 0) return;
  auto* frame = static_cast<std::uint8_t*>(static_cast<void*>(frame_buffer_.data()));
  const std::size_t header = ws::write_frame_header(frame, opcode, true, len, &client.mask);
  std::memcpy(frame + header, payload, len);
  ws::apply_mask(frame + header, len, client.mask);
  queue_bytes(client, frame_buffer_.data(), header + len);
}

void Worker::queue_bytes(Client& client, const char* data, std::size_t len) {
  if (client.fd < 0) return;
  if (client.outbound.empty()) {
    const ssize_t n = ::send(client.fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      close_client(client, std::strerror(errno));
      return;
    }
    const auto written = n < 0 ? std::size_t{0} : static_cast<std::size_t>(n);
    if (written == len) return;
    data += written;
    len -= written;
  }
  client.outbound.append(data, len);
  set_want_write(client, true);
}

void Worker::flush(Client& client) {
  if (client.outbound.empty()) {
    set_want_write(client, false);
    return;
  }
  const ssize_t n = ::send(client.fd, client.outbound.data(), client.outbound.size(), MSG_NOSIGNAL);
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) close_client(client, std::strerror(errno));
    return;
  }
  client.outbound.erase(0, static_cast<std::size_t>(n));
  if (client.outbound.empty()) {
    std::string().swap(client.outbound);
    set_want_write(client, false);
  }
}

void Worker::set_want_write(Client& client, bool want) {
  if (client.want_write == want || client.fd < 0) return;
  epoll_event event{};
  event.events = EPOLLIN | (want ? EPOLLOUT : 0U);
  event.data.u32 = static_cast<std::uint32_t>(&client - clients_.data());
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, client.fd, &event);
  client.want_write = want;
}

void Worker::close_client(Client& client, const char* why) {
  if (current_ == &client) {  // inside the reader's feed(): close once it returns
    client.close_pending = true;
    return;
  }
  if (client.fd < 0) return;
  if (client.state != State::kJoined && client.state != State::kClosed) {
    fail_setup(client, why);
    return;
  }
  ++health_.closed_by_server;
  if (first_error_.empty()) first_error_ = "client u" + std::to_string(client.index) + ": " + why;
  ::close(client.fd);
  client.fd = -1;
  client.reader.reset();
  std::string().swap(client.outbound);
  client.state = State::kClosed;
}

bool Worker::on_command() {
  Command command;
  if (!read_message(command_fd_, &command, sizeof command)) {
    fatal_ = true;  // the parent is gone; nobody to report to
    return false;
  }
  switch (command.kind) {
    case CommandKind::kJoin:
      joining_ = true;
      join_command_ = command;
      break;
    case CommandKind::kSettle:
      settling_ = true;
      settle_command_ = command;
      break;
    case CommandKind::kStep:
      step_ = StepState{};
      step_.active = true;
      step_.command = command;
      break;
    case CommandKind::kQuit: {
      Report out;
      out.kind = ReportKind::kFinal;
      report(out);
      quit_ = true;
      return false;
    }
  }
  return true;
}

// ---- ws::ReaderHandler ----------------------------------------------------------------------

void Worker::on_message(std::string_view payload, bool binary) {
  Client& client = *current_;
  if (binary) {
    if (const auto stamp = read_binary_stamp(payload)) on_delivery(*stamp);
    return;
  }
  switch (classify(payload, options_.event_type)) {
    case ServerMessageKind::kChat:
    case ServerMessageKind::kEvent: {
      if (const auto stamp = find_stamp(payload)) on_delivery(*stamp);
      break;
    }
    case ServerMessageKind::kBatch: {
      std::size_t end = 0;
      for (std::string_view rest = payload; const auto stamp = find_stamp(rest, &end);
           rest.remove_prefix(end)) {
        on_delivery(*stamp);
      }
      break;
    }
    case ServerMessageKind::kConnectionEstablished:
      if (client.state == State::kAwaitEstablished) on_established(client);
      break;
    case ServerMessageKind::kWelcome:
      on_welcome(client);
      break;
    case ServerMessageKind::kUserList:
      if (!client.saw_full_user_list && client.state == State::kJoined &&
          count_users(payload) == static_cast<std::size_t>(options_.room_size(
                                      client.index / options_.clients_per_room))) {
        client.saw_full_user_list = true;
        ++full_lists_;
        last_full_list_ns_ = now_ns_;
      }
      break;
    case ServerMessageKind::kError:
      ++health_.error_messages;
      if (first_server_error_.empty()) first_server_error_ = std::string(payload.substr(0, 200));
      break;
    case ServerMessageKind::kOther:
      break;
  }
}

void Worker::on_delivery(const ChatStamp& stamp) {
  const Command& command = step_.command;
  if (step_.active && stamp.step == command.step && stamp.sent_ns >= command.start_ns &&
      now_ns_ <= command.cutoff_ns) {
    ++step_.received;
    step_.latency.record(now_ns_ > stamp.sent_ns ? now_ns_ - stamp.sent_ns : 0);
  } else if (stamp.sent_ns >= connect_begin_ns_) {
    ++health_.late_deliveries;
  }  // else: history from an earlier run, not ours to count
}

void Worker::on_ping(std::string_view payload) {
  ++health_.pings_received;
  send_frame(*current_, ws::Opcode::kPong, payload.data(), payload.size());
  ++health_.pongs_sent;
}

void Worker::on_pong(std::string_view /*payload*/) {}

void Worker::on_close(std::uint16_t code, std::string_view reason) {
  Client& client = *current_;
  std::array<char, 2> echo{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
  if (code != static_cast<std::uint16_t>(ws::CloseCode::kNoStatus)) {
    send_frame(client, ws::Opcode::kClose, echo.data(), echo.size());
  }
  if (first_error_.empty()) {
    first_error_ = "client u" + std::to_string(client.index) + ": server closed with code " +
                   std::to_string(code) + " " + std::string(reason);
  }
  client.close_pending = true;
}

// ---- loop plumbing --------------------------------------------------------------------------

int Worker::timeout_ms() const {
  std::uint64_t next = std::numeric_limits<std::uint64_t>::max();
  if (!join_reported_) next = now_ns_ + kSetupTickNs;
  if (joining_ && next_to_join_ < clients_.size() && join_command_.rate > 0) {
    const auto gap =
        static_cast<std::uint64_t>(static_cast<double>(joins_sent_) * 1e9 / join_command_.rate);
    next = std::min(next, join_command_.start_ns + gap);
  }
  if (settling_) next = std::min(next, settle_command_.cutoff_ns);
  if (step_.active) {
    const Command& command = step_.command;
    if (!step_.window_closed) {
      next = std::min(next, command.send_end_ns);
      if (now_ns_ < command.start_ns) {
        next = std::min(next, command.start_ns);
      } else if (command.rate > 0 && !senders_.empty() && !step_.senders_gone) {
        const auto gap =
            static_cast<std::uint64_t>(static_cast<double>(step_.sent) * 1e9 / command.rate);
        next = std::min(next, command.start_ns + gap);
      }
    } else {
      next = std::min(next, command.cutoff_ns);
    }
  }
  if (next == std::numeric_limits<std::uint64_t>::max()) return -1;
  if (next <= now_ns_) return 0;
  return static_cast<int>((next - now_ns_ + 999'999) / 1'000'000);
}

void Worker::report(Report& out) {
  out.worker = static_cast<std::uint32_t>(worker_index_);
  out.health = health_;
  std::uint64_t open = 0;
  for (const Client& client : clients_) open += client.fd >= 0 ? 1 : 0;
  out.health.open_connections = open;
  if (!first_error_.empty()) set_error(out.error, first_error_.c_str());
  if (!first_server_error_.empty()) {
    set_error(out.error, ("server error message: " + first_server_error_).c_str());
  }
  if (!write_message(report_fd_, &out, sizeof out)) fatal_ = true;
}

void Worker::fatal(const std::string& why) {
  Report out;
  out.kind = ReportKind::kFatal;
  set_error(out.error, why.c_str());
  report(out);
  fatal_ = true;
}

}  // namespace roomcast::bench

// Worker: one load-generating process. Owns a contiguous slice of the clients and drives
// them from a single thread with raw epoll (level-triggered, non-blocking sockets): connect
// and upgrade, join, send paced messages (--message-kind), count and time every delivery,
// answer pings.
// It obeys Commands from the parent and answers with Reports (ipc.h).
#pragma once

#include <sys/epoll.h>

#include <array>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ipc.h"
#include "options.h"
#include "wire.h"
#include "ws/reader.h"

namespace roomcast::bench {

class Worker : private ws::ReaderHandler {
 public:
  // Clients [first_client, first_client + client_count) of the whole run. `command_fd` and
  // `report_fd` are this worker's ends of the pipes to the parent; the worker owns neither.
  Worker(const Options& options, int worker_index, int first_client, int client_count,
         int command_fd, int report_fd);
  ~Worker() override;

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Runs until the parent says quit (0) or something fatal happens (1, after a kFatal
  // report when the pipe still works).
  int run();

 private:
  enum class State : std::uint8_t {
    kWaiting,  // not yet started
    kConnecting,  // TCP connect in progress
    kUpgrading,  // HTTP upgrade request sent, reading the response
    kAwaitEstablished,  // upgraded, waiting for connection_established
    kEstablished,  // ready to join
    kJoining,  // join_room sent, waiting for "Welcome to ROOM!"
    kJoined,
    kFailed,  // gave up during setup
    kClosed,  // closed by the server (or a protocol error) after setup
  };

  struct Client {
    int fd = -1;
    int index = 0;  // global client number
    State state = State::kWaiting;
    bool want_write = false;  // EPOLLOUT registered
    bool close_pending = false;
    bool saw_full_user_list = false;  // presence of its whole room has arrived
    std::array<std::uint8_t, 4> mask{};
    std::uint64_t deadline_ns = 0;  // for the current setup stage
    std::string accept_key;  // expected Sec-WebSocket-Accept while upgrading
    std::string http_response;  // upgrade response bytes so far
    std::string outbound;  // bytes the socket did not take yet
    std::unique_ptr<ws::Reader> reader;
  };

  struct StepState {
    bool active = false;
    Command command;
    std::uint64_t sent = 0;
    std::uint64_t expected = 0;
    std::uint64_t sent_bytes = 0;
    std::uint64_t received = 0;
    std::uint64_t wire_bytes = 0;  // read from the window's start to the cutoff
    std::size_t next_sender = 0;
    std::uint64_t cpu_start_ns = 0;
    std::uint64_t cpu_end_ns = 0;
    std::uint64_t window_start_ns = 0;
    std::uint64_t window_end_ns = 0;
    bool window_started = false;  // the send window [start, send_end) has begun
    bool window_closed = false;
    bool senders_gone = false;  // every sender was closed by the server
    LatencyHistogram latency;
  };

  // Setup.
  void start_connects();
  void start_connect(Client& client);
  void on_connected(Client& client);
  void on_upgrade_bytes(Client& client, std::uint8_t* data, std::size_t len);
  void on_established(Client& client);
  void send_joins();
  void on_welcome(Client& client);
  void fail_setup(Client& client, const std::string& why);
  void check_setup_deadlines();
  void maybe_report_phase();

  // Steady state.
  void send_due_messages();
  void send_messages_due_by(std::uint64_t until_ns);
  // Writes the next message of --message-kind from a sender in `room`, stamped now; returns
  // its length (at most message_capacity()).
  std::size_t compose_message(char* out, std::string_view room, std::uint32_t step);
  void finish_step_if_due();

  // I/O.
  void on_event(std::uint32_t slot, std::uint32_t events);
  void on_readable(Client& client);
  void send_frame(Client& client, ws::Opcode opcode, const char* payload, std::size_t len);
  void queue_bytes(Client& client, const char* data, std::size_t len);
  void flush(Client& client);
  void set_want_write(Client& client, bool want);
  void close_client(Client& client, const char* why);
  bool on_command();

  // ws::ReaderHandler, called for the client in current_.
  void on_message(std::string_view payload, bool binary) override;
  void on_ping(std::string_view payload) override;
  // One stamped message arrived (a chat_message or event, alone or in a message_batch, or a
  // binary position update): counted and timed.
  void on_delivery(const ChatStamp& stamp);
  void on_pong(std::string_view payload) override;
  void on_close(std::uint16_t code, std::string_view reason) override;

  int timeout_ms() const;
  void report(Report& report);
  void fatal(const std::string& why);

  const Options& options_;
  int worker_index_;
  int first_client_;
  int command_fd_;
  int report_fd_;
  int epoll_fd_ = -1;
  bool quit_ = false;
  bool fatal_ = false;
  std::uint64_t now_ns_ = 0;
  std::mt19937_64 random_;

  std::vector<Client> clients_;
  std::vector<std::uint32_t> senders_;  // slots of the clients that send
  std::vector<std::string> sender_rooms_;  // the room of each of senders_, for app events
  Client* current_ = nullptr;

  // Connect phase.
  std::size_t next_to_connect_ = 0;
  int connects_in_flight_ = 0;
  int connect_concurrency_ = 1;
  std::uint64_t established_ = 0;
  std::uint64_t connect_failed_ = 0;
  std::uint64_t connect_begin_ns_ = 0;
  std::uint64_t last_established_ns_ = 0;
  bool connect_reported_ = false;

  // Join phase.
  bool joining_ = false;
  Command join_command_;
  std::size_t next_to_join_ = 0;
  std::uint64_t joins_sent_ = 0;
  std::uint64_t joined_ = 0;
  std::uint64_t join_failed_ = 0;
  std::uint64_t last_joined_ns_ = 0;
  bool join_reported_ = false;

  // Settle phase: waiting for the last coalesced user_list.
  bool settling_ = false;
  Command settle_command_;
  std::uint64_t full_lists_ = 0;  // clients that saw a user_list of their whole room
  std::uint64_t last_full_list_ns_ = 0;

  StepState step_;
  HealthCounters health_;
  std::string first_error_;  // first setup failure or close, for the reports
  std::string first_server_error_;  // first "error" message the server sent

  std::vector<std::uint8_t> read_buffer_;
  std::vector<char> frame_buffer_;
};

}  // namespace roomcast::bench

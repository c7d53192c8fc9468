// HttpPublishHook: chat::PublishHook over HTTP (--publish-hook). Each question is a signed
// JSON POST to the backend (hooks/http_client.h); the answer is the verdict. The request and
// answer shapes are in docs/api.md ("Publish hook").
//
// Threads: ask() (any worker) builds the body and posts it to the hook's own thread (started by
// the constructor), which owns an io_context, the requests in flight (one connection each,
// any number at once: a slow answer to one message does not hold up the next question) and
// one deadline timer per question. Every verdict is decided there: the backend's, or, when it
// gives none by the deadline (or fails, or answers something that is not a verdict), the
// failure policy's; each failure is counted and logged. stop() ends the thread; questions
// still open then are never answered (their senders' Hubs are being torn down too).
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <thread>

#include "chat/publish_hook.h"
#include "hooks/delivery.h"
#include "hooks/http_client.h"
#include "hooks/publish_hook_options.h"
#include "metrics/histogram.h"
#include "metrics/metrics.h"

namespace roomcast::hooks {

class HttpPublishHook final : public chat::PublishHook {
 public:
  // Starts the thread. Throws std::invalid_argument if options.url is not one parse_http_url
  // accepts, or is https:// and options.ca_file cannot be read (backend_of).
  explicit HttpPublishHook(PublishHookOptions options);
  ~HttpPublishHook() override;

  HttpPublishHook(const HttpPublishHook&) = delete;
  HttpPublishHook& operator=(const HttpPublishHook&) = delete;

  // Thread-safe; returns at once.
  void ask(chat::PublishQuestion question, std::function<void(chat::PublishVerdict)> done) override;

  // Ends the thread (idempotent): no `done` is called once it returns. Call it before the
  // Hubs that asked are destroyed.
  void stop();

  // The questions by outcome and their latency. Thread-safe.
  metrics::PublishHookState stats() const;

  // The verdict in the backend's answer `body` to a question about a chat message (`event`
  // false) or an app event, or why it is none (the failure policy then decides). Public for
  // the unit tests: it is the whole of the answer's shape.
  static std::variant<chat::PublishVerdict, std::string> read_verdict(
      std::string_view body, bool event, const chat::ProtocolLimits& limits);

 private:
  struct Question;
  // Hook thread.
  void start(std::shared_ptr<Question> question);
  void decide(Question& question, std::variant<chat::PublishVerdict, std::string> outcome);

  const PublishHookOptions options_;
  const Backend backend_;

  std::atomic<std::uint64_t> pending_{0};
  std::atomic<std::uint64_t> allowed_{0};
  std::atomic<std::uint64_t> rewritten_{0};
  std::atomic<std::uint64_t> denied_{0};
  std::atomic<std::uint64_t> failed_open_{0};
  std::atomic<std::uint64_t> failed_closed_{0};
  metrics::Histogram latency_{metrics::kSecondsLayout};  // written by the hook thread only

  boost::asio::io_context io_;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace roomcast::hooks

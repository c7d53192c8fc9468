#include "hooks/publish_hook.h"

#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <stdexcept>

#include "hooks/http_client.h"

namespace roomcast::hooks {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// A verdict is a small JSON object; anything longer is not one.
constexpr std::uint64_t kMaxAnswerBytes = 64 << 10;
// The backend's reason reaches the sender inside an `error`: short, one line.
constexpr std::size_t kMaxReasonBytes = 200;
constexpr std::string_view kDefaultReason = "Refused by the server's publish policy";
constexpr std::string_view kFailClosedReason =
    "The message could not be checked now; it was not sent, send it again later";

// The backend's reason as the sender may see it: control characters (line breaks, escapes
// that would reach a terminal) dropped, at most kMaxReasonBytes, cut between characters.
// `reason` is valid UTF-8 (Boost.JSON checks what it parses).
std::string sanitized_reason(std::string_view reason) {
  std::string out;
  for (const char c : reason) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) continue;
    out.push_back(c);
  }
  if (out.size() > kMaxReasonBytes) {
    std::size_t cut = kMaxReasonBytes;
    // Back to the start of a character (UTF-8 continuation bytes are 10xxxxxx).
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
  }
  if (out.find_first_not_of(' ') == std::string::npos) return std::string(kDefaultReason);
  return out;
}

}  // namespace

struct HttpPublishHook::Question {
  explicit Question(asio::io_context& io) : deadline(io) {}
  std::string body;
  bool event = false;
  std::string room;
  std::function<void(chat::PublishVerdict)> done;
  asio::steady_timer deadline;
  std::chrono::steady_clock::time_point started{};
  bool decided = false;
};

HttpPublishHook::HttpPublishHook(PublishHookOptions options)
    : options_(std::move(options)),
      backend_(backend_of("--publish-hook", options_.url, options_.ca_file)) {
  thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(io_);
    io_.run();
  });
}

HttpPublishHook::~HttpPublishHook() {
  stop();
}

void HttpPublishHook::stop() {
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

void HttpPublishHook::ask(chat::PublishQuestion question,
                          std::function<void(chat::PublishVerdict)> done) {
  json::object body;
  body["room"] = question.room;
  body["userId"] = question.user_id;
  body["username"] = question.username;
  const bool event = !question.event_type.empty();
  if (event) {
    body["type"] = question.event_type;
    // The event's fields as members get them (the Hub stores them as a JSON object's text).
    json::error_code ec;
    json::value fields = json::parse(question.message, ec);
    body["event"] = ec ? json::value(question.message) : std::move(fields);
  } else {
    body["type"] = "chat_message";
    body["message"] = question.message;
  }
  if (!question.client_id.empty()) body["id"] = question.client_id;
  auto asked = std::make_shared<Question>(io_);
  asked->body = json::serialize(body);
  asked->event = event;
  asked->room = std::move(question.room);
  asked->done = std::move(done);
  pending_.fetch_add(1, std::memory_order_relaxed);
  asio::post(io_, [this, asked = std::move(asked)]() mutable { start(std::move(asked)); });
}

void HttpPublishHook::start(std::shared_ptr<Question> question) {
  question->started = std::chrono::steady_clock::now();
  // The deadline is the hook's own, whatever step the request is at (name resolution too).
  question->deadline.expires_after(options_.timeout);
  question->deadline.async_wait([this, question](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: answered in time
    decide(*question, "no verdict within " + std::to_string(options_.timeout.count()) + " ms");
  });
  HttpRequest request = make_json_post(backend_.target, question->body, options_.secret);
  send_request(io_, backend_, std::move(request), options_.timeout, kMaxAnswerBytes,
               [this, question](HttpAnswer answer) {
                 if (question->decided) return;  // the deadline came first
                 if (!answer.error.empty()) return decide(*question, std::move(answer.error));
                 if (answer.status < 200 || answer.status >= 300) {
                   return decide(*question, "answered HTTP " + std::to_string(answer.status));
                 }
                 decide(*question, read_verdict(answer.body, question->event, options_.limits));
               });
}

std::variant<chat::PublishVerdict, std::string> HttpPublishHook::read_verdict(
    std::string_view body, bool event, const chat::ProtocolLimits& limits) {
  json::error_code ec;
  const json::value parsed = json::parse(body, ec);
  if (ec || !parsed.is_object()) return std::string("the answer is not a JSON object");
  const json::object& answer = parsed.get_object();
  const json::value* result = answer.if_contains("result");
  if (result == nullptr || !result->is_string()) {
    return std::string("the answer has no \"result\" string");
  }
  const json::value* reason = answer.if_contains("reason");
  if (reason != nullptr && !reason->is_string()) {
    return std::string("the answer's \"reason\" is not a string");
  }
  const json::value* message = answer.if_contains("message");
  if (result->get_string() == "deny") {
    return chat::PublishVerdict{
        std::string(chat::error_code::kDenied),
        reason != nullptr ? sanitized_reason(reason->get_string()) : std::string(kDefaultReason),
        std::nullopt};
  }
  if (result->get_string() != "allow") {
    return "the answer's \"result\" is neither \"allow\" nor \"deny\"";
  }
  if (message == nullptr || message->is_null()) return chat::PublishVerdict{};
  if (event) return std::string("a rewrite (\"message\") of an app event: only chat text is");
  if (!message->is_string()) return std::string("the answer's \"message\" is not a string");
  const json::string& text = message->get_string();
  if (auto broken = chat::check_message_text(text, limits)) {
    return "the rewritten text breaks the message rules (" + broken->message + ")";
  }
  return chat::PublishVerdict{{}, {}, std::string(text)};
}

void HttpPublishHook::decide(Question& question,
                             std::variant<chat::PublishVerdict, std::string> outcome) {
  if (question.decided) return;
  question.decided = true;
  question.deadline.cancel();
  latency_.record(std::chrono::steady_clock::now() - question.started);
  pending_.fetch_sub(1, std::memory_order_relaxed);
  if (auto* verdict = std::get_if<chat::PublishVerdict>(&outcome)) {
    (!verdict->error_code.empty() ? denied_
     : verdict->rewritten         ? rewritten_
                                  : allowed_)
        .fetch_add(1, std::memory_order_relaxed);
    question.done(std::move(*verdict));
    return;
  }
  const bool open = options_.policy == FailurePolicy::kFailOpen;
  const std::uint64_t failures =
      (open ? failed_open_ : failed_closed_).fetch_add(1, std::memory_order_relaxed) + 1;
  // One line per power of two: a backend down under load must not flood the log.
  if ((failures & (failures - 1)) == 0) {
    spdlog::warn("publish hook: no verdict for a message in room '{}' ({}); {} ({} {} so far)",
                 question.room, std::get<std::string>(outcome),
                 open ? "published (fail-open)" : "refused (fail-closed)", failures,
                 open ? "published unchecked" : "refused");
  }
  if (open) {
    question.done({});
    return;
  }
  question.done({std::string(chat::error_code::kUnavailable), std::string(kFailClosedReason), {}});
}

metrics::PublishHookState HttpPublishHook::stats() const {
  return {pending_.load(std::memory_order_relaxed),
          allowed_.load(std::memory_order_relaxed),
          rewritten_.load(std::memory_order_relaxed),
          denied_.load(std::memory_order_relaxed),
          failed_open_.load(std::memory_order_relaxed),
          failed_closed_.load(std::memory_order_relaxed),
          latency_.values()};
}

}  // namespace roomcast::hooks

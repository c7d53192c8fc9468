// roomcast-deflate-params: bytes and CPU of permessage-deflate on the server's own chat JSON
// (chat::encode_chat_message, ~200 bytes: a UUID user id, a short English text), compressed by
// ws::Deflater as the server does it:
//   - shared (each message alone, no context takeover) for a grid of zlib level, memory level
//     and strategy;
//   - shared on message_batch documents of N messages (chat::encode_message_batch), per message;
//   - dedicated (context takeover, the server's 2^12 window and memory level 4), per recipient.
// CPU is this thread's, best of several passes over the same messages (a shared machine adds,
// never removes, time). Prints a Markdown table. No sockets, no server.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "chat/protocol.h"
#include "ws/deflate.h"

namespace {

using roomcast::ws::Deflater;

double thread_cpu_us() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_nsec) / 1e3;
}

// Chat as a room sees it: a few users, sentences of 6-12 words of an everyday vocabulary.
std::vector<std::string> chat_messages(std::size_t count) {
  static constexpr const char* kWords[] = {
      "the",   "a",      "to",    "is",      "it",     "you",   "we",      "I",       "and",
      "of",    "in",     "that",  "for",     "on",     "this",  "be",      "are",     "with",
      "have",  "was",    "not",   "at",      "so",     "but",   "meeting", "today",   "tomorrow",
      "lunch", "deploy", "build", "test",    "review", "merge", "ok",      "thanks",  "sounds",
      "good",  "great",  "let",   "me",      "check",  "later", "can",     "someone", "look",
      "PR",    "please", "yes",   "no",      "maybe",  "think", "server",  "client",  "bug",
      "fix",   "room",   "chat",  "message", "soon",   "done"};
  static constexpr const char* kNames[] = {"alice", "bob",   "carol", "dave",
                                           "erin",  "frank", "grace"};
  std::mt19937_64 random(15);
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < std::size(kNames); ++i) {
    char id[37];
    const std::uint64_t a = random(), b = random();
    std::snprintf(id, sizeof id, "%08x-%04x-4%03x-a%03x-%012llx", static_cast<unsigned>(a >> 32),
                  static_cast<unsigned>(a >> 16) & 0xFFFF, static_cast<unsigned>(a) & 0xFFF,
                  static_cast<unsigned>(b >> 48) & 0xFFF,
                  static_cast<unsigned long long>(b & 0xFFFFFFFFFFFFULL));
    ids.emplace_back(id);
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t user = random() % std::size(kNames);
    std::string text;
    const std::size_t words = 6 + random() % 7;
    for (std::size_t w = 0; w < words; ++w) {
      if (w > 0) text += ' ';
      text += kWords[random() % std::size(kWords)];
    }
    out.push_back(roomcast::chat::encode_chat_message(
        "general", ids[user], kNames[user], text,
        1765000000000 + static_cast<std::int64_t>(i) * 1500, 1000 + i));
  }
  return out;
}

struct Measure {
  double bytes_per_message = 0;  // compressed payload per message (per delivery)
  double us_per_call = 0;  // CPU per compress() call
};

// Compresses every document once per pass; `messages_per_document` turns bytes per document
// into bytes per message.
template <typename MakeDeflater>
Measure measure(const std::vector<std::string>& documents, double messages_per_document,
                MakeDeflater make) {
  constexpr int kPasses = 5;
  Measure best{0, 1e18};
  for (int pass = 0; pass < kPasses; ++pass) {
    Deflater deflater = make();
    std::size_t bytes = 0;
    const double start = thread_cpu_us();
    for (const std::string& document : documents) bytes += deflater.compress(document).size();
    const double us = (thread_cpu_us() - start) / static_cast<double>(documents.size());
    best.us_per_call = std::min(best.us_per_call, us);
    best.bytes_per_message = static_cast<double>(bytes) /
                             (static_cast<double>(documents.size()) * messages_per_document);
  }
  return best;
}

const char* strategy_name(int strategy) {
  static constexpr const char* kNames[] = {"default", "filtered", "huffman-only", "rle", "fixed"};
  return kNames[strategy];
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t count = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--messages") == 0) count = std::strtoul(argv[i + 1], nullptr, 10);
  }
  if (count < 20) count = 20;
  const std::vector<std::string> messages = chat_messages(count);
  double plain = 0;
  for (const std::string& m : messages) plain += static_cast<double>(m.size());
  plain /= static_cast<double>(messages.size());
  std::printf("%zu chat_message events, %.1f bytes each on average; e.g.\n\n    %s\n\n", count,
              plain, messages.front().c_str());
  std::printf("| compressor | bytes per message | fewer bytes than plain | CPU us per call |\n");
  std::printf("| --- | --- | --- | --- |\n");
  const auto row = [&](const std::string& name, const Measure& m) {
    std::printf("| %s | %.1f | %.2fx | %.2f |\n", name.c_str(), m.bytes_per_message,
                plain / m.bytes_per_message, m.us_per_call);
  };
  row("plain (no compression)", {plain, 0});
  for (int strategy : {0, 1, 2, 3, 4}) {
    for (int level : {1, 6, 9}) {
      for (int mem_level : {1, 2, 4, 8, 9}) {
        if (strategy != 0 && (level != 6 || (mem_level != 8 && mem_level != 4))) continue;
        const Deflater::Tuning tuning{level, mem_level, strategy};
        char name[96];
        std::snprintf(name, sizeof name, "shared, level %d, memLevel %d, %s%s", level, mem_level,
                      strategy_name(strategy),
                      level == 6 && mem_level == 8 && strategy == 0 ? " (the server's)" : "");
        row(name, measure(messages, 1, [&] { return Deflater(tuning); }));
      }
    }
  }
  for (std::size_t n : {2, 5, 10, 20}) {
    std::vector<std::string> batches;
    for (std::size_t i = 0; i + n <= messages.size(); i += n) {
      batches.push_back(roomcast::chat::encode_message_batch(
          "general",
          std::vector<std::string>(messages.begin() + static_cast<std::ptrdiff_t>(i),
                                   messages.begin() + static_cast<std::ptrdiff_t>(i + n))));
    }
    double batch_plain = 0;
    for (const std::string& b : batches) batch_plain += static_cast<double>(b.size());
    const Measure m = measure(batches, static_cast<double>(n), [] { return Deflater(); });
    char name[96];
    std::snprintf(name, sizeof name, "shared, message_batch of %zu (plain %.1f B/message)", n,
                  batch_plain / static_cast<double>(batches.size() * n));
    row(name, m);
  }
  row("dedicated (context takeover, 2^12 window, memLevel 4)", measure(messages, 1, [] {
        return Deflater(Deflater::WithContext{12, 4});
      }));
  row("dedicated with a 2^15 window, memLevel 8", measure(messages, 1, [] {
        return Deflater(Deflater::WithContext{15, 8});
      }));
  return 0;
}

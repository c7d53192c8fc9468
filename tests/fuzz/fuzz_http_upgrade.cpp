// Fuzz target for the HTTP phase of a connection: Beast's request parser with the
// server's limits, then what net::Connection does with the request (see
// Connection::on_read_request and Connection::upgrade): route it, validate an upgrade
// with ws::check_upgrade, negotiate permessage-deflate and answer it with ws::accept_key, or
// answer a plain request with http::Service::handle. Keep-alive requests follow one another on the
// same bytes, and the bytes behind an accepted upgrade go to a ws::Reader, as on a real socket.
//
// Input layout: byte 0 holds options (bit 0: the /echo endpoint is enabled; bits 1-3: the
// size of the reads the bytes arrive in); the rest is what the client sends.
//
// Static files come from a web root made in a temp directory. Next to the root lies a
// file the server must never serve, with links to it from inside the root; no response
// may contain its text.
#include <stdlib.h>  // mkdtemp (POSIX)

#include <algorithm>
#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/service.h"
#include "metrics/metrics.h"
#include "net/upgrade.h"
#include "ws/deflate_negotiation.h"
#include "ws/handshake.h"
#include "ws/reader.h"

namespace roomcast {
namespace {

namespace bhttp = boost::beast::http;
namespace fs = std::filesystem;
using boost::system::error_code;

[[noreturn]] void violated(std::string_view what) {
  std::fprintf(stderr, "fuzz_http_upgrade: invariant violated: %.*s\n",
               static_cast<int>(what.size()), what.data());
  std::abort();
}

void require(bool ok, std::string_view what) {
  if (!ok) violated(what);
}

// The server's defaults (net::ServerOptions); the read buffer holds header and body.
constexpr std::uint32_t kMaxHeaderBytes = 16 << 10;
constexpr std::uint64_t kMaxBodyBytes = 64 << 10;
constexpr std::size_t kReadBufferBytes = kMaxHeaderBytes + kMaxBodyBytes;
constexpr std::size_t kMaxMessageSize = 1 << 20;
// Enough keep-alive requests on one connection to reach every route in one input.
constexpr std::size_t kMaxRequestsPerConnection = 8;
// Read sizes byte 0 can choose; 0 means everything that is left.
constexpr std::array<std::size_t, 8> kReadSizes{0, 1, 2, 7, 64, 512, 4096, 0};

constexpr std::string_view kSecret = "ROOMCAST-FUZZ-SECRET-OUTSIDE-THE-WEB-ROOT";

void write_file(const fs::path& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  require(out.good(), "cannot write the web root fixture");
}

// A web root with a few files and ways out of it, in a temp directory removed at exit.
class WebRoot {
 public:
  WebRoot() {
    std::string pattern = (fs::temp_directory_path() / "roomcast-fuzz-XXXXXX").string();
    require(mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
    dir_ = pattern;
    const fs::path root = dir_ / "root";
    fs::create_directories(root / "sub");
    write_file(root / "index.html", "<!doctype html><title>roomcast</title>\n");
    write_file(root / "app.js", "console.log('roomcast');\n");
    write_file(root / "style.css", "body { margin: 0 }\n");
    write_file(root / "sub" / "index.html", "<p>sub</p>\n");
    write_file(root / "a b%.txt", "spaces and percent\n");
    write_file(dir_ / "secret.txt", kSecret);
    fs::create_symlink("../secret.txt", root / "escape.txt");
    fs::create_directory_symlink("..", root / "up");
    fs::create_directory_symlink("sub", root / "inside");
    root_ = fs::canonical(root);
  }
  ~WebRoot() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  WebRoot(const WebRoot&) = delete;
  WebRoot& operator=(const WebRoot&) = delete;

  const fs::path& root() const { return root_; }

 private:
  fs::path dir_;
  fs::path root_;
};

metrics::Snapshot sample_snapshot() {
  metrics::Snapshot snapshot;
  snapshot.counters.fill(3);
  snapshot.connections_active = 2;
  snapshot.rooms = 1;
  snapshot.users = 2;
  snapshot.chat_errors["invalid_json"] = 1;
  snapshot.uptime_seconds = 12.5;
  return snapshot;
}

http::ServiceOptions service_options(const std::filesystem::path& web_root) {
  http::ServiceOptions options;
  options.web_root = web_root;
  options.max_static_file_bytes = 1 << 20;
  return options;
}

struct Fixture {
  WebRoot web_root;
  http::Service service{service_options(web_root.root()), sample_snapshot};
};

Fixture& fixture() {
  static Fixture instance;  // destroyed at exit, which removes the temp directory
  return instance;
}

void check_response(const http::Request& request, const http::Response& response) {
  require(response.body().find(kSecret) == std::string::npos,
          "served a file from outside the web root");
  require(response.version() == request.version(), "response version differs from request");
  if (request.method() == bhttp::verb::head) require(response.body().empty(), "HEAD with a body");
  const auto status = response.result_int();
  require(status >= 200 && status <= 599, "unexpected status");
}

bool is_base64(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=';
  });
}

class IgnoringHandler final : public ws::ReaderHandler {
 public:
  void on_message(std::string_view, bool) override {}
  void on_ping(std::string_view) override {}
  void on_pong(std::string_view) override {}
  void on_close(std::uint16_t, std::string_view) override {}
};

// The client's bytes as they arrive on the socket, in reads of a chosen size.
class Socket {
 public:
  Socket(std::string_view bytes, std::size_t read_size) : bytes_(bytes), read_size_(read_size) {}

  // Bytes received but not yet consumed by the parser.
  std::string_view buffered() const { return bytes_.substr(consumed_, received_ - consumed_); }
  void consume(std::size_t n) { consumed_ += n; }
  // Receives one more read into the buffer; false at end of stream or when the buffer is
  // full (Beast's flat_buffer at its max_size).
  bool read() {
    if (received_ == bytes_.size()) return false;
    const std::size_t room = kReadBufferBytes - (received_ - consumed_);
    if (room == 0) return false;
    const std::size_t n = read_size_ == 0 ? room : std::min(read_size_, room);
    received_ = std::min(bytes_.size(), received_ + n);
    return true;
  }
  bool at_eof() const { return received_ == bytes_.size(); }
  std::string_view rest() const { return bytes_.substr(consumed_); }

 private:
  std::string_view bytes_;
  std::size_t read_size_;
  std::size_t consumed_ = 0;
  std::size_t received_ = 0;
};

// http::async_read: feeds the parser until it has a whole message or fails.
error_code read_request(Socket& socket, bhttp::request_parser<bhttp::string_body>& parser) {
  error_code ec;
  bool need_read = socket.buffered().empty();
  while (!parser.is_done()) {
    if (need_read) {
      if (!socket.read()) {
        if (!socket.at_eof()) return bhttp::error::buffer_overflow;
        if (!parser.got_some()) return bhttp::error::end_of_stream;
        parser.put_eof(ec);
        return ec;
      }
    }
    const std::string_view buffered = socket.buffered();
    const std::size_t used = parser.put(boost::asio::buffer(buffered.data(), buffered.size()), ec);
    socket.consume(used);
    if (ec == bhttp::error::need_more) {
      ec = {};
      need_read = true;
      continue;
    }
    if (ec) return ec;
    need_read = used == 0 || socket.buffered().empty();
  }
  return ec;
}

// Connection::upgrade(), then the first frames. Either way the HTTP phase is over.
void upgrade(const http::Request& request, Socket& socket) {
  const ws::UpgradeRequest fields = net::upgrade_fields(request);
  const ws::HandshakeCheck check = ws::check_upgrade(fields);
  if (check.verdict != ws::HandshakeVerdict::kAccept) {
    require(!check.reason.empty(), "refused upgrade without a reason");
    check_response(request, net::handshake_refusal(request, check));
    return;
  }
  require(ws::is_upgrade_request(fields), "accepted a request that asks for no upgrade");
  require(fields.method == "GET" && fields.http_version >= 11, "accepted a non-GET or HTTP/1.0");
  const std::string accept = ws::accept_key(fields.key);
  require(accept.size() == 28 && accept.back() == '=' && is_base64(accept),
          "Sec-WebSocket-Accept is not base64 of a SHA-1 digest");

  // permessage-deflate, as Connection::upgrade() negotiates it: an accepted offer's answer
  // must read back as one valid offer of the same extension (RFC 7692 section 7.1).
  const auto deflate = ws::negotiate_deflate(net::extension_offers(request), ws::DeflatePolicy{});
  if (deflate) {
    const std::string answer = ws::deflate_response(*deflate);
    const auto reread = ws::parse_extensions(answer);
    require(reread && reread->size() == 1 && (*reread)[0].name == "permessage-deflate",
            "the permessage-deflate answer does not parse");
    require(ws::negotiate_deflate(answer, ws::DeflatePolicy{}).has_value(),
            "the permessage-deflate answer is not a valid offer");
  }

  // What follows the request on the socket is the first WebSocket frames.
  ws::Reader reader(ws::Role::kServer, kMaxMessageSize);
  if (deflate) reader.enable_inflate(!deflate->client_no_context_takeover);
  IgnoringHandler handler;
  const std::string_view rest = socket.rest();
  std::vector<std::uint8_t> frames(rest.begin(), rest.end());
  reader.feed(frames, handler);
}

void serve_connection(std::string_view bytes, std::size_t read_size, bool echo_endpoint) {
  const http::Service& service = fixture().service;
  Socket socket(bytes, read_size);
  for (std::size_t i = 0; i < kMaxRequestsPerConnection; ++i) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(kMaxHeaderBytes);
    parser.body_limit(kMaxBodyBytes);
    const error_code ec = read_request(socket, parser);
    if (ec == bhttp::error::end_of_stream) return;
    if (ec) {
      // Connection::on_read_request: a definite answer, then the connection ends.
      http::Request unparsed;
      unparsed.version(11);
      check_response(unparsed, net::parse_error_response(ec));
      return;
    }
    const http::Request& request = parser.get();
    const net::Route route = net::route_request(request, echo_endpoint);
    if (route == net::Route::kChat || route == net::Route::kEcho) {
      upgrade(request, socket);
      return;
    }
    if (route == net::Route::kNoWebSocketHere) {
      auto response = http::Service::error(request, bhttp::status::not_found,
                                           "No WebSocket endpoint here; connect to / or /ws");
      check_response(request, response);
      return;
    }
    // Without a history function every answer comes before handle() returns.
    std::optional<http::Response> answered;
    service.handle(request, [&](http::Response r) { answered = std::move(r); });
    if (!answered) __builtin_trap();
    const http::Response& response = *answered;
    check_response(request, response);
    if (!response.keep_alive() || response.need_eof()) return;
  }
}

}  // namespace
}  // namespace roomcast

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const bool echo_endpoint = (data[0] & 1) != 0;
  const std::size_t read_size = roomcast::kReadSizes[(data[0] >> 1) & 7];
  roomcast::serve_connection(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1),
                             read_size, echo_endpoint);
  return 0;
}

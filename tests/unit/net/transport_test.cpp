// Specification of the transports' outcome vocabulary (net/transport.h): what each answers for
// bytes moved, "would block", a peer that closed, and a broken stream. The plain transport runs
// on a socketpair; the TLS transport on two OpenSSL sessions joined by a memory BIO pair, with a
// certificate made in the test — neither needs the network.
#include "net/transport.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace roomcast::net {
namespace {

iovec piece(std::string_view bytes) {
  return {const_cast<char*>(bytes.data()), bytes.size()};
}

std::string as_string(std::span<const std::uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// ---- plain ---------------------------------------------------------------------------------

// Two connected, non-blocking stream sockets: ours (the transport's) and the peer's.
class PlainTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds_.data()), 0);
  }
  void TearDown() override {
    for (const int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }
  void close_peer() {
    ::close(fds_[1]);
    fds_[1] = -1;
  }

  int ours() const { return fds_[0]; }
  int peer() const { return fds_[1]; }

  std::array<int, 2> fds_{-1, -1};
  std::array<std::uint8_t, 256> buffer_{};
};

TEST_F(PlainTransportTest, ReadingNothingYetWouldBlock) {
  PlainTransport transport(ours());
  const IoResult result = transport.read(buffer_);
  EXPECT_EQ(result.status, IoStatus::kWantRead);
  EXPECT_EQ(result.bytes, 0u);
  EXPECT_FALSE(transport.has_unread_input());
}

TEST_F(PlainTransportTest, ReadsWhatThePeerSent) {
  ASSERT_EQ(::write(peer(), "hello", 5), 5);
  PlainTransport transport(ours());
  EXPECT_TRUE(transport.has_unread_input());
  const IoResult result = transport.read(buffer_);
  ASSERT_EQ(result.status, IoStatus::kDone);
  EXPECT_EQ(as_string(std::span(buffer_).first(result.bytes)), "hello");
}

TEST_F(PlainTransportTest, WritesThePiecesInOrderAsOneStream) {
  PlainTransport transport(ours());
  const std::array<iovec, 3> pieces{piece("one "), piece("two "), piece("three")};
  const IoResult result = transport.write(pieces);
  EXPECT_EQ(result.status, IoStatus::kDone);
  EXPECT_EQ(result.bytes, 13u);
  std::array<char, 64> got{};
  ASSERT_EQ(::read(peer(), got.data(), got.size()), 13);
  EXPECT_EQ(std::string_view(got.data(), 13), "one two three");
}

// A peer that does not read: the socket takes part of a write and then nothing. Both are
// kWantWrite, the first with the bytes it did take.
TEST_F(PlainTransportTest, AFullSocketTakesPartOfAWriteThenWouldBlock) {
  PlainTransport transport(ours());
  const std::string block(64 << 10, 'x');
  const std::array<iovec, 1> pieces{piece(block)};
  IoResult result{IoStatus::kDone};
  int writes = 0;
  // Bounded: a socket buffer is a few hundred kilobytes at most.
  while (result.status == IoStatus::kDone && writes < 10'000) {
    result = transport.write(pieces);
    ++writes;
  }
  ASSERT_EQ(result.status, IoStatus::kWantWrite);
  EXPECT_LT(result.bytes, block.size());
  const IoResult again = transport.write(pieces);
  EXPECT_EQ(again.status, IoStatus::kWantWrite);
  EXPECT_EQ(again.bytes, 0u);
}

TEST_F(PlainTransportTest, APeerThatClosedReadsAsClosed) {
  close_peer();
  PlainTransport transport(ours());
  EXPECT_EQ(transport.read(buffer_).status, IoStatus::kClosed);
}

// EPIPE, and no SIGPIPE: the test process would die of it.
TEST_F(PlainTransportTest, WritingToAPeerThatClosedFails) {
  close_peer();
  PlainTransport transport(ours());
  const std::array<iovec, 1> pieces{piece("anyone?")};
  EXPECT_EQ(transport.write(pieces).status, IoStatus::kFailed);
}

TEST(PlainTransport, AnInvalidDescriptorFails) {
  std::array<std::uint8_t, 8> buffer{};
  PlainTransport transport(-1);
  EXPECT_EQ(transport.read(buffer).status, IoStatus::kFailed);
  const std::array<iovec, 1> pieces{piece("x")};
  EXPECT_EQ(transport.write(pieces).status, IoStatus::kFailed);
  EXPECT_FALSE(transport.has_unread_input());
}

// ---- the TCP stream under both ---------------------------------------------------------------

// A loopback TCP connection: ours (the server's side) and the peer's, both non-blocking.
class TcpStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(listener, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), size), 0);
    ASSERT_EQ(::listen(listener, 1), 0);
    ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &size), 0);
    peer_ = ::socket(AF_INET, SOCK_STREAM, 0);
    // A small receive buffer, set before the handshake (the window scale is fixed then):
    // a peer that reads nothing fills it with little.
    const int small = 4096;
    ASSERT_EQ(::setsockopt(peer_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    ASSERT_EQ(::connect(peer_, reinterpret_cast<sockaddr*>(&address), size), 0);
    ours_ = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
    ::close(listener);
    ASSERT_GE(ours_, 0);
  }
  void TearDown() override {
    if (ours_ >= 0) ::close(ours_);
    if (peer_ >= 0) ::close(peer_);
  }

  // What the peer's kernel has acknowledged once it stops changing (loopback answers at once;
  // the wait is bounded and only serves a busy machine).
  std::uint64_t settled_acknowledged() const {
    std::uint64_t last = tcp_bytes_acknowledged(ours_);
    for (int i = 0; i < 100; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      const std::uint64_t now = tcp_bytes_acknowledged(ours_);
      if (now == last && i >= 5) break;
      last = now;
    }
    return last;
  }

  int ours_ = -1;
  int peer_ = -1;
};

TEST_F(TcpStreamTest, ThePeerAcknowledgesWhatItsKernelTakes) {
  EXPECT_EQ(tcp_bytes_acknowledged(ours_), 0u);
  const std::string hello(1000, 'x');
  ASSERT_EQ(::write(ours_, hello.data(), hello.size()), 1000);
  EXPECT_EQ(settled_acknowledged(), 1000u);
}

TEST_F(TcpStreamTest, APeerThatReadsNothingStopsTakingOnceItsBufferIsFull) {
  const std::string chunk(4096, 'x');
  std::uint64_t written = 0;
  while (true) {
    const ssize_t n = ::write(ours_, chunk.data(), chunk.size());
    if (n < 0) break;  // our send buffer is full too
    written += static_cast<std::uint64_t>(n);
  }
  const std::uint64_t taken = settled_acknowledged();
  EXPECT_LT(taken, written);
  EXPECT_EQ(tcp_bytes_acknowledged(ours_), taken);
  // The peer reads: its kernel takes more.
  std::array<char, 4096> sink{};
  ASSERT_GT(::read(peer_, sink.data(), sink.size()), 0);
  EXPECT_GT(settled_acknowledged(), taken);
}

TEST(TcpStream, ADescriptorThatIsNotTcpSaysNothing) {
  std::array<int, 2> fds{};
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds.data()), 0);
  EXPECT_EQ(tcp_bytes_acknowledged(fds[0]), 0u);
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_EQ(tcp_bytes_acknowledged(-1), 0u);
}

// ---- TLS -----------------------------------------------------------------------------------

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};

// A server and a client session joined in memory (BIO pair of `capacity` bytes each way),
// the server holding a self-signed certificate made here.
class TlsPair {
 public:
  explicit TlsPair(std::size_t capacity = 0) {
    std::unique_ptr<EVP_PKEY, PkeyFree> key(EVP_EC_gen("P-256"));
    std::unique_ptr<X509, X509Free> cert(X509_new());
    if (!key || !cert) return;
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return;

    server_ctx_.reset(SSL_CTX_new(TLS_server_method()));
    client_ctx_.reset(SSL_CTX_new(TLS_client_method()));
    if (!server_ctx_ || !client_ctx_) return;
    // As the server's own context does (net/tls.cpp).
    SSL_CTX_set_mode(server_ctx_.get(),
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_mode(client_ctx_.get(),
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate(server_ctx_.get(), cert.get()) != 1 ||
        SSL_CTX_use_PrivateKey(server_ctx_.get(), key.get()) != 1) {
      return;
    }
    server_.reset(SSL_new(server_ctx_.get()));
    client_.reset(SSL_new(client_ctx_.get()));
    BIO* server_end = nullptr;
    BIO* client_end = nullptr;
    if (!server_ || !client_ ||
        BIO_new_bio_pair(&server_end, capacity, &client_end, capacity) != 1) {
      return;
    }
    client_bio_ = client_end;
    SSL_set_bio(server_.get(), server_end, server_end);
    SSL_set_bio(client_.get(), client_end, client_end);
    SSL_set_accept_state(server_.get());
    SSL_set_connect_state(client_.get());
  }

  // Runs both handshakes to the end (a few round trips, bounded).
  bool handshake() {
    if (!server_ || !client_) return false;
    TlsTransport server = this->server();
    TlsTransport client = this->client();
    for (int round = 0; round < 20; ++round) {
      const IoStatus c = client.handshake();
      const IoStatus s = server.handshake();
      if (c == IoStatus::kDone && s == IoStatus::kDone) return true;
      if (c == IoStatus::kFailed || s == IoStatus::kFailed) return false;
    }
    return false;
  }

  TlsTransport server() { return TlsTransport(server_.get(), -1); }
  TlsTransport client() { return TlsTransport(client_.get(), -1); }
  // Raw bytes into the server's input, under TLS.
  void inject(std::string_view bytes) {
    BIO_write(client_bio_, bytes.data(), static_cast<int>(bytes.size()));
  }

 private:
  std::unique_ptr<SSL_CTX, SslCtxFree> server_ctx_;
  std::unique_ptr<SSL_CTX, SslCtxFree> client_ctx_;
  std::unique_ptr<SSL, SslFree> server_;
  std::unique_ptr<SSL, SslFree> client_;
  BIO* client_bio_ = nullptr;  // owned by client_
};

TEST(TlsTransport, ReadingBeforeAnythingArrivedWantsRead) {
  TlsPair pair;
  ASSERT_TRUE(pair.handshake());
  std::array<std::uint8_t, 64> buffer{};
  const IoResult result = pair.server().read(buffer);
  EXPECT_EQ(result.status, IoStatus::kWantRead);
  EXPECT_EQ(result.bytes, 0u);
}

TEST(TlsTransport, WritesPiecesAsOneStreamAndReadsThem) {
  TlsPair pair;
  ASSERT_TRUE(pair.handshake());
  const std::array<iovec, 3> pieces{piece("one "), piece("two "), piece("three")};
  const IoResult written = pair.client().write(pieces);
  EXPECT_EQ(written.status, IoStatus::kDone);
  EXPECT_EQ(written.bytes, 13u);
  std::array<std::uint8_t, 64> buffer{};
  const IoResult read = pair.server().read(buffer);
  ASSERT_EQ(read.status, IoStatus::kDone);
  EXPECT_EQ(as_string(std::span(buffer).first(read.bytes)), "one two three");
}

// One write is one chunk: more is left for the next write of the same flush.
TEST(TlsTransport, OneWriteMovesAtMostOneChunk) {
  TlsPair pair(256 << 10);
  ASSERT_TRUE(pair.handshake());
  const std::string first(TlsTransport::kChunkBytes - 10, 'a');
  const std::string second(100, 'b');
  const std::array<iovec, 2> pieces{piece(first), piece(second)};
  const IoResult written = pair.server().write(pieces);
  EXPECT_EQ(written.status, IoStatus::kDone);
  EXPECT_EQ(written.bytes, TlsTransport::kChunkBytes);
}

// Decrypted bytes left in the session are input the descriptor does not show.
TEST(TlsTransport, BytesLeftInTheSessionAreUnreadInput) {
  TlsPair pair;
  ASSERT_TRUE(pair.handshake());
  const std::array<iovec, 1> pieces{piece("a record of some length")};
  ASSERT_EQ(pair.client().write(pieces).status, IoStatus::kDone);
  std::array<std::uint8_t, 4> small{};
  ASSERT_EQ(pair.server().read(small).status, IoStatus::kDone);
  EXPECT_TRUE(pair.server().has_unread_input());
  std::array<std::uint8_t, 64> rest{};
  ASSERT_EQ(pair.server().read(rest).status, IoStatus::kDone);
  EXPECT_FALSE(pair.server().has_unread_input());
}

TEST(TlsTransport, APeerThatDoesNotReadMakesAWriteWantWrite) {
  TlsPair pair(32 << 10);
  ASSERT_TRUE(pair.handshake());
  const std::string block(TlsTransport::kChunkBytes, 'x');
  const std::array<iovec, 1> pieces{piece(block)};
  IoResult result{IoStatus::kDone};
  for (int writes = 0; result.status == IoStatus::kDone && writes < 100; ++writes) {
    result = pair.server().write(pieces);
  }
  EXPECT_EQ(result.status, IoStatus::kWantWrite);
}

TEST(TlsTransport, ThePeersCloseNotifyReadsAsClosed) {
  TlsPair pair;
  ASSERT_TRUE(pair.handshake());
  pair.client().shutdown();
  std::array<std::uint8_t, 64> buffer{};
  EXPECT_EQ(pair.server().read(buffer).status, IoStatus::kClosed);
}

TEST(TlsTransport, BytesThatAreNotTlsFailTheSession) {
  TlsPair pair;
  ASSERT_TRUE(pair.handshake());
  pair.inject("GET / HTTP/1.1\r\n\r\n");
  std::array<std::uint8_t, 64> buffer{};
  EXPECT_EQ(pair.server().read(buffer).status, IoStatus::kFailed);
  EXPECT_EQ(ERR_peek_error(), 0u);  // nothing left for the next connection to misread
}

TEST(TlsTransport, AHandshakeWithAPeerThatSpeaksNoTlsFails) {
  TlsPair pair;
  pair.inject("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(pair.server().handshake(), IoStatus::kFailed);
}

}  // namespace
}  // namespace roomcast::net

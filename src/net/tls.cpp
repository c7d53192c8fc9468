#include "net/tls.h"

#include <openssl/err.h>

#include <stdexcept>

namespace roomcast::net {
namespace {

// OpenSSL's most recent error, as text, and clears the queue.
std::string openssl_reason() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};

// A server context holding the certificate chain of `cert_file` and the key of `key_file`.
std::unique_ptr<SSL_CTX, SslCtxDeleter> load_context(const std::filesystem::path& cert_file,
                                                     const std::filesystem::path& key_file) {
  std::unique_ptr<SSL_CTX, SslCtxDeleter> ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) throw std::runtime_error("TLS: cannot create a context: " + openssl_reason());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // Writes may complete partly (like write(2)) and be retried from a queue that has moved in
  // memory; idle connections give their read and write buffers back.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
    throw std::runtime_error("TLS: cannot load certificate " + cert_file.string() + ": " +
                             openssl_reason());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    const std::string reason = openssl_reason();
    throw std::runtime_error("TLS: cannot load private key " + key_file.string() +
                             " (is it the key of " + cert_file.string() + "?): " + reason);
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    const std::string reason = openssl_reason();
    throw std::runtime_error("TLS: the private key " + key_file.string() +
                             " does not match the certificate " + cert_file.string() + ": " +
                             reason);
  }
  return ctx;
}

}  // namespace

TlsContext::TlsContext(std::filesystem::path cert_file, std::filesystem::path key_file)
    : cert_file_(std::move(cert_file)),
      key_file_(std::move(key_file)),
      ctx_(load_context(cert_file_, key_file_).release()) {}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
}

void TlsContext::reload() {
  auto fresh = load_context(cert_file_, key_file_);  // throws: the current one stays
  SSL_CTX* old = fresh.release();
  {
    std::lock_guard lock(mutex_);
    std::swap(old, ctx_);
  }
  SSL_CTX_free(old);  // live sessions hold their own references to it
}

SslSession TlsContext::new_session(int fd) const {
  SslSession ssl;
  {
    std::lock_guard lock(mutex_);
    ssl.reset(SSL_new(ctx_));
  }
  if (ssl && SSL_set_fd(ssl.get(), fd) != 1) ssl.reset();
  if (ssl) SSL_set_accept_state(ssl.get());
  ERR_clear_error();
  return ssl;
}

}  // namespace roomcast::net

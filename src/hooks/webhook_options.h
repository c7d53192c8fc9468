// WebhookOptions: where the backend's events go and how hard roomcast tries (--webhook-*).
// A header of its own so that config/ sets them without building the delivery thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace roomcast::hooks {

struct WebhookOptions {
  // http[s]://HOST[:PORT][/PATH]; empty: no webhooks.
  std::string url;
  // https://: the PEM file of the CA certificates the backend's must chain to; empty: the
  // system's (--backend-ca-file).
  std::string ca_file;
  // Signs every body (X-Roomcast-Signature: hex HMAC-SHA256); required with a url.
  std::string secret;
  // A token user whose last connection closed is reported user_offline only after this long
  // without a new one: a page reload or a short network change reconnects well within it.
  std::chrono::milliseconds offline_grace{10000};
  // Events waiting for delivery; beyond, a new event is dropped (counted, logged): a backend
  // that is down must cost bounded memory, and the chat must not wait for it.
  std::size_t queue_size = 10000;
  // Events in delivery at once, each on a connection of its own that is kept open between
  // events while the backend allows it. A room's events go one at a time, in order (they
  // always take the same of these lanes; user_offline takes its user's).
  std::size_t concurrency = 4;
  // One attempt (connect, send, answer) longer than this fails and is retried.
  std::chrono::milliseconds timeout{5000};
  // Attempts per event before it is dropped; between them the delay doubles from
  // retry_min up to retry_max (1 s, 2 s, 4 s ... by default: an event survives a backend
  // restart of about a minute).
  unsigned max_attempts = 8;
  std::chrono::milliseconds retry_min{1000};
  std::chrono::milliseconds retry_max{30000};
  // The node's name in each event (cluster mode: the cluster's instance name).
  std::string node = "standalone";
};

}  // namespace roomcast::hooks

#pragma once
// Alerts to a webhook: each is POSTed as a JSON body to an http:// or https:// URL (Slack,
// Alertmanager's webhook receiver, PagerDuty's events proxy, a script), by one sender thread
// outside the actor system — like the endpoints' threads, it belongs to the process that
// wires the node, never to a component: the monitor only calls post(), which never blocks.
//
// At most `queue_max` alerts wait; beyond, the newest is dropped and counted. Each POST has
// `timeout` in all (resolve, connect, TLS, write, read); one that fails is retried once, then
// dropped and counted. https verifies the server's certificate against the system's CAs.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "compute/status.hpp"
#include "messaging/metrics_registry.hpp"

namespace rml::messaging {

struct webhook_url {
  bool tls = false;
  std::string host, port, target;
};

/// Parses http://host[:port][/path] or https://…; the error names the URL and what is wrong.
result<webhook_url> parse_webhook_url(const std::string& url);

class alert_webhook {
 public:
  struct options {
    std::string url;
    std::chrono::milliseconds timeout{2000};
    std::size_t queue_max = 64;
  };
  /// Starts the sender thread; the URL must parse (check it with parse_webhook_url first).
  alert_webhook(options settings, std::shared_ptr<metrics::registry> metrics);
  /// Finishes the POST under way (within its timeout), drops the rest (counted), and stops
  /// the thread.
  ~alert_webhook();
  alert_webhook(const alert_webhook&) = delete;
  alert_webhook& operator=(const alert_webhook&) = delete;

  /// Queues one JSON body; false when the queue was full (the alert is dropped and counted).
  bool post(std::string json_body);

 private:
  options options_;
  webhook_url url_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  metrics::counter *sent_, *failed_, *dropped_;
  std::thread sender_;

  void run();
  status send_one(const std::string& body);
};

}  // namespace rml::messaging

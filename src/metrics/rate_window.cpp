#include "metrics/rate_window.h"

#include "metrics/metrics.h"

namespace roomcast::metrics {

RateWindow::Reading RateWindow::reading_of(const Snapshot& s, Clock::time_point at) {
  Reading r;
  r.at = at;
  r.messages = s.get(Counter::kMessagesReceived);
  r.deliveries = s.get(Counter::kDeliveries);
  // What went wrong for a client: an error reply, or its connection closed for an error.
  for (const auto& [code, n] : s.chat_errors) r.errors += n;
  r.errors += s.get(Counter::kProtocolErrors) + s.get(Counter::kInvalidPayloadErrors) +
              s.get(Counter::kMessageTooBigErrors) + s.get(Counter::kSlowConsumerCloses);
  r.delivery = s.histograms.delivery;
  return r;
}

RateWindow::RateWindow(Clock::time_point start) {
  ring_[0].at = start;
  size_ = 1;
}

void RateWindow::add(const Reading& reading) {
  std::lock_guard lock(mutex_);
  ring_[(oldest_ + size_) % kSlots] = reading;
  if (size_ < kSlots) {
    ++size_;
  } else {
    oldest_ = (oldest_ + 1) % kSlots;
  }
  // Keep one reading at or beyond the window's start, none older.
  while (size_ > 1 && reading.at - ring_[(oldest_ + 1) % kSlots].at >= kWindow) {
    oldest_ = (oldest_ + 1) % kSlots;
    --size_;
  }
}

LiveRates RateWindow::rates(const Reading& now) const {
  Reading oldest;
  {
    std::lock_guard lock(mutex_);
    // The newest reading at least a window old, else the oldest kept.
    std::size_t pick = 0;
    for (std::size_t i = 0; i < size_; ++i) {
      if (now.at - ring_[(oldest_ + i) % kSlots].at >= kWindow) pick = i;
    }
    oldest = ring_[(oldest_ + pick) % kSlots];
  }
  LiveRates out;
  const double seconds = std::chrono::duration<double>(now.at - oldest.at).count();
  if (seconds <= 0) return out;
  auto delta = [](std::uint64_t later, std::uint64_t earlier) {
    return static_cast<double>(later > earlier ? later - earlier : 0);
  };
  out.window_seconds = seconds;
  const double messages = delta(now.messages, oldest.messages);
  const double errors = delta(now.errors, oldest.errors);
  out.messages_per_second = messages / seconds;
  out.deliveries_per_second = delta(now.deliveries, oldest.deliveries) / seconds;
  out.errors_per_second = errors / seconds;
  out.error_rate = messages > 0 ? errors / messages : 0;
  const HistogramValues latency = now.delivery.since(oldest.delivery);
  if (const auto n = latency.count(); n > 0) {
    out.delivery_latency_avg_seconds = latency.sum_in_unit() / static_cast<double>(n);
    out.delivery_latency_p50_seconds = latency.quantile(0.5);
    out.delivery_latency_p99_seconds = latency.quantile(0.99);
  }
  return out;
}

}  // namespace roomcast::metrics

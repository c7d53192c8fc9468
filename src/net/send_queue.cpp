#include "net/send_queue.h"

#include <algorithm>
#include <iterator>
#include <string>

namespace roomcast::net {

// The queue's fields replaced Connection's one for one; an idle connection must not grow.
static_assert(sizeof(SendQueue) <= 48);

SendQueue::Push SendQueue::push_ahead(const base::SharedFrame& frame, std::size_t keep_bytes) {
  std::size_t at = head_ + (front_offset_ > 0 ? 1 : 0);
  std::size_t kept = 0;
  for (std::size_t i = head_; i < frames_.size() && kept < keep_bytes; ++i) {
    kept += frames_[i]->size() - (i == head_ ? front_offset_ : 0);
    at = i + 1;
  }
  frames_.insert(frames_.begin() + static_cast<std::ptrdiff_t>(at), frame);
  bytes_ += frame->size();
  pushed_since_sweep_ = true;
  return frames() == 1 ? Push::kFirst : Push::kQueued;
}

bool SendQueue::drop_unsent(const std::string* frame, std::size_t keep_bytes, std::size_t scan) {
  // The first frame that may go: after a partly written one and the bytes a retry repeats.
  std::size_t first = head_ + (front_offset_ > 0 ? 1 : 0);
  std::size_t kept = 0;
  for (std::size_t i = head_; i < frames_.size() && kept < keep_bytes; ++i) {
    kept += frames_[i]->size() - (i == head_ ? front_offset_ : 0);
    first = std::max(first, i + 1);
  }
  const std::size_t stop = frames_.size() > scan ? std::max(first, frames_.size() - scan) : first;
  for (std::size_t i = frames_.size(); i > stop; --i) {
    if (frames_[i - 1].get() != frame) continue;
    bytes_ -= frame->size();
    frames_.erase(frames_.begin() + static_cast<std::ptrdiff_t>(i - 1));
    return true;
  }
  return false;
}

void SendQueue::close_after_loop(const base::SharedFrame& last) {
  const std::size_t keep = front_offset_ > 0 ? 1 : 0;
  frames_.resize(head_ + keep);
  bytes_ = keep ? frames_[head_]->size() - front_offset_ : 0;
  frames_.push_back(last);
  bytes_ += last->size();
  pushed_since_sweep_ = true;
  slow_consumer_ = true;
}

void SendQueue::clear() {
  release();
  bytes_ = 0;
}

void SendQueue::sweep() {
  if (!pushed_since_sweep_ && frames_.empty() && frames_.capacity() != 0) {
    std::vector<base::SharedFrame>().swap(frames_);
  }
  pushed_since_sweep_ = false;
}

void SendQueue::release() {
  std::vector<base::SharedFrame>().swap(frames_);
  head_ = 0;
  front_offset_ = 0;
}

}  // namespace roomcast::net

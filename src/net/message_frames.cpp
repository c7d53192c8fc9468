#include "net/message_frames.h"

#include "http/service.h"
#include "net/connection.h"
#include "net/worker.h"
#include "ws/deflate.h"

namespace roomcast::net {

MessageFrames::MessageFrames(Worker& worker, ws::Opcode opcode, std::string_view payload)
    : worker_(worker),
      payload_(payload),
      opcode_(opcode),
      compressible_(worker.context().options.compression != Compression::kOff &&
                    payload.size() >= worker.context().options.compression_min_bytes &&
                    payload.size() <= ws::Deflater::kMaxMessageBytes) {}

const base::SharedFrame& MessageFrames::for_connection(const Connection& to) {
  if (to.is_event_stream()) {
    if (!event_) event_ = base::make_shared_frame(http::event_stream_event(payload_));
    return event_;
  }
  if (compressible_ && to.compresses_with_context()) {
    // Its own context: a frame for it alone, made now and kept only until the next call.
    dedicated_ = base::make_shared_frame(ws::make_frame(
        opcode_, worker_.dedicated_deflater(to.id(), to.deflate_window_bits()).compress(payload_),
        true, ws::kRsv1));
    worker_.metrics().add(metrics::Counter::kCompressedFrames);
    return dedicated_;
  }
  if (compressible_ && to.takes_compressed(payload_.size())) {
    if (!compressed_) {
      compressed_ = base::make_shared_frame(
          ws::make_frame(opcode_, worker_.deflater().compress(payload_), true, ws::kRsv1));
      worker_.metrics().add(metrics::Counter::kCompressedFrames);
    }
    return compressed_;
  }
  if (!plain_) plain_ = base::make_shared_frame(ws::make_frame(opcode_, payload_));
  return plain_;
}

}  // namespace roomcast::net

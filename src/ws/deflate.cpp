#include "ws/deflate.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <limits>
#include <new>

namespace roomcast::ws {

namespace {

// Section 7.2.1: a sender removes these four bytes (the end of an empty stored block that a
// sync flush writes) from the end of each compressed message; the receiver puts them back.
constexpr std::array<std::uint8_t, 4> kTail = {0x00, 0x00, 0xFF, 0xFF};

// Raw DEFLATE (negative window bits: no zlib header or checksum, section 7.2). Inflating with
// the largest window reads data compressed with any smaller one.
constexpr int kInflateWindowBits = -15;
constexpr int kDeflateWindowBits = -15;

Bytef* as_zbytes(const char* data) {
  // zlib's next_in is not const-qualified (older API) but is never written through.
  return reinterpret_cast<Bytef*>(const_cast<char*>(data));
}

}  // namespace

// ---- Inflater -------------------------------------------------------------------------------

Inflater::Inflater(bool context_takeover) : context_takeover_(context_takeover) {}

Inflater::~Inflater() {
  reset();
}

void Inflater::reset() {
  if (!stream_) return;
  inflateEnd(stream_.get());
  stream_.reset();
}

bool Inflater::ensure_stream() {
  if (stream_) return true;
  auto stream = std::make_unique<z_stream>();
  if (inflateInit2(stream.get(), kInflateWindowBits) != Z_OK) return false;
  stream_ = std::move(stream);
  at_stream_start_ = true;
  return true;
}

bool Inflater::restart_after_final_block() {
  at_stream_start_ = true;
  if (!context_takeover_) return inflateReset(stream_.get()) == Z_OK;
  // The window is the last 2^15 bytes of output; it becomes the new stream's dictionary.
  std::string window(std::size_t{1} << 15, '\0');
  uInt length = 0;
  if (inflateGetDictionary(stream_.get(), reinterpret_cast<Bytef*>(window.data()), &length) !=
      Z_OK) {
    return false;
  }
  if (inflateReset(stream_.get()) != Z_OK) return false;
  return length == 0 || inflateSetDictionary(stream_.get(), reinterpret_cast<Bytef*>(window.data()),
                                             length) == Z_OK;
}

Inflater::Result Inflater::run(const std::uint8_t* data, std::size_t len, std::size_t limit,
                               std::string& out) {
  if (!ensure_stream()) return Result::kCorrupt;
  z_stream& stream = *stream_;
  // A frame is bounded by the reader's message limit, far below 4 GiB (uInt).
  stream.next_in = const_cast<Bytef*>(data);
  stream.avail_in = static_cast<uInt>(len);
  while (true) {
    // Room for one byte past the limit: producing it proves the message is too big, before
    // anything larger is made.
    if (out.size() > limit) return Result::kTooBig;
    const std::size_t before = out.size();
    const uInt input_before = stream.avail_in;
    const std::size_t step = std::min(kStepBytes, limit - before + 1);
    out.resize(before + step);
    stream.next_out = reinterpret_cast<Bytef*>(out.data() + before);
    stream.avail_out = static_cast<uInt>(step);
    const int rc = ::inflate(&stream, Z_SYNC_FLUSH);
    if (stream.avail_in != input_before) at_stream_start_ = false;
    out.resize(before + step - stream.avail_out);
    if (out.size() > limit) return Result::kTooBig;
    switch (rc) {
      case Z_STREAM_END:
        if (!restart_after_final_block()) return Result::kCorrupt;
        if (stream.avail_in == 0) return Result::kOk;
        continue;
      case Z_OK:
        // Output space left over means zlib took all it could from the input.
        if (stream.avail_out != 0 && stream.avail_in == 0) return Result::kOk;
        // Never loop without progress, whatever zlib says.
        if (stream.avail_in == input_before && out.size() == before) return Result::kCorrupt;
        continue;
      case Z_BUF_ERROR:
        // No progress possible: every input byte is used and nothing more is pending.
        if (stream.avail_in == 0) return Result::kOk;
        return Result::kCorrupt;
      default:  // Z_DATA_ERROR (not DEFLATE), Z_NEED_DICT (a zlib header), Z_MEM_ERROR
        return Result::kCorrupt;
    }
  }
}

Inflater::Result Inflater::inflate(std::string_view compressed, std::size_t limit,
                                   std::string& out) {
  // zlib counts input in uInt: a frame past 4 GiB (a --max-message-size that allows one) is
  // given in slices.
  constexpr std::size_t kMaxSlice = std::size_t{1} << 30;
  while (!compressed.empty()) {
    const std::string_view slice = compressed.substr(0, kMaxSlice);
    compressed.remove_prefix(slice.size());
    const Result result =
        run(reinterpret_cast<const std::uint8_t*>(slice.data()), slice.size(), limit, out);
    if (result != Result::kOk) {
      reset();
      return result;
    }
  }
  return Result::kOk;
}

Inflater::Result Inflater::finish(std::size_t limit, std::string& out) {
  // After a final block the tail would start a stored block of a new stream, and leave that
  // stream waiting for its data.
  const bool ended_with_final_block = stream_ != nullptr && at_stream_start_;
  const Result result =
      ended_with_final_block ? Result::kOk : run(kTail.data(), kTail.size(), limit, out);
  if (result != Result::kOk || !context_takeover_) reset();
  return result;
}

// ---- Deflater -------------------------------------------------------------------------------

Deflater::Deflater(Tuning tuning) : stream_(std::make_unique<z_stream>()) {
  static_assert(Tuning{}.level == Z_DEFAULT_COMPRESSION && Tuning{}.strategy == Z_DEFAULT_STRATEGY);
  if (deflateInit2(stream_.get(), tuning.level, Z_DEFLATED, kDeflateWindowBits, tuning.mem_level,
                   tuning.strategy) != Z_OK) {
    throw std::bad_alloc();  // zlib fails here only when out of memory (or on a bad tuning)
  }
}

Deflater::Deflater(WithContext context)
    : stream_(std::make_unique<z_stream>()), context_takeover_(true) {
  // zlib refuses a raw window of 2^8 (it would write a 2^9 one): the caller never asks for it.
  if (deflateInit2(stream_.get(), Z_DEFAULT_COMPRESSION, Z_DEFLATED, -context.window_bits,
                   context.mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::bad_alloc();
  }
}

Deflater::~Deflater() {
  deflateEnd(stream_.get());
}

std::string Deflater::compress(std::string_view message) {
  z_stream& stream = *stream_;
  // Shared: each message on its own (server_no_context_takeover), nothing of the last one
  // remains. Dedicated: the window goes on; the sync flush ends the message on a byte.
  if (!context_takeover_) deflateReset(&stream);
  // deflateBound() covers the data; a sync flush adds at most an empty stored block (5 bytes)
  // and a few bits of padding.
  std::string out(deflateBound(&stream, static_cast<uLong>(message.size())) + 16, '\0');
  stream.next_in = as_zbytes(message.data());
  stream.avail_in = static_cast<uInt>(message.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  // With the bound's room, one call consumes everything.
  ::deflate(&stream, Z_SYNC_FLUSH);
  out.resize(out.size() - stream.avail_out);
  // Section 7.2.1: a sync flush ends with 00 00 FF FF, which the sender removes.
  if (out.size() >= kTail.size()) out.resize(out.size() - kTail.size());
  return out;
}

}  // namespace roomcast::ws

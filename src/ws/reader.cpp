#include "ws/reader.h"

#include <algorithm>
#include <cstdint>

namespace roomcast::ws {

namespace {

enum class HeaderParse { kIncomplete, kComplete, kBadLength };

// Header size implied by the second header byte: the MASK bit and the 7-bit length,
// which says whether a 16- or 64-bit extended length follows.
std::size_t header_length_for(std::uint8_t second_byte) {
  std::size_t length = 2;
  const std::uint8_t length7 = second_byte & 0x7F;
  if (length7 == 126) length += 2;
  if (length7 == 127) length += 8;
  if ((second_byte & 0x80) != 0) length += 4;
  return length;
}

HeaderParse parse_header(const std::uint8_t* data, std::size_t len, FrameHeader& header) {
  if (len < 2) return HeaderParse::kIncomplete;
  header.header_length = header_length_for(data[1]);
  if (len < header.header_length) return HeaderParse::kIncomplete;

  header.fin = (data[0] & 0x80) != 0;
  header.rsv = static_cast<std::uint8_t>((data[0] >> 4) & 0x07);
  // Opcode has a fixed underlying type, so every 4-bit value is representable; unknown
  // ones are rejected by check_header().
  header.opcode = static_cast<Opcode>(data[0] & 0x0F);
  header.masked = (data[1] & 0x80) != 0;

  std::size_t pos = 2;
  const std::uint8_t length7 = data[1] & 0x7F;
  if (length7 < 126) {
    header.payload_length = length7;
  } else {
    // Non-minimal length forms are accepted: RFC 6455 asks senders to use the shortest
    // form but does not ask receivers to enforce it.
    const std::size_t bytes = length7 == 126 ? 2 : 8;
    std::uint64_t length = 0;
    for (std::size_t i = 0; i < bytes; ++i) length = (length << 8) | data[pos + i];
    pos += bytes;
    if ((length >> 63) != 0) return HeaderParse::kBadLength;  // section 5.2: MSB must be 0
    header.payload_length = length;
  }
  if (header.masked) std::copy_n(data + pos, header.mask.size(), header.mask.begin());
  return HeaderParse::kComplete;
}

bool is_known_opcode(Opcode opcode) {
  switch (opcode) {
    case Opcode::kContinuation:
    case Opcode::kText:
    case Opcode::kBinary:
    case Opcode::kClose:
    case Opcode::kPing:
    case Opcode::kPong:
      return true;
  }
  return false;
}

// The state a header is judged against: what has been received before it.
struct HeaderContext {
  Role role;
  bool in_fragmented_message;
  std::size_t buffered_message_bytes;
  std::size_t message_wire_bytes;  // the fragmented message's frames so far, headers included
  std::size_t max_message_size;
  bool inflates;  // permessage-deflate was negotiated: RSV1 marks a compressed message
  bool message_is_compressed;  // the fragmented message in progress is compressed
};

// The largest compressed frame of a message limited to `max_message_size` once inflated:
// incompressible data grows by 5 bytes per stored block of up to 64 KiB (RFC 1951 section
// 3.2.4), and other encoders than zlib's may choose worse blocks; 1/64 and 1 KiB cover them.
std::size_t max_compressed_frame(std::size_t max_message_size) {
  const std::size_t slack = max_message_size / 64 + 1024;
  return max_message_size > SIZE_MAX - slack ? SIZE_MAX : max_message_size + slack;
}

// Every rule that can be decided from the header alone, so a bad or oversized frame
// fails before its payload is read, let alone buffered.
ReadResult check_header(const FrameHeader& header, const HeaderContext& context) {
  // RSV1 means "compressed" once permessage-deflate is negotiated (RFC 7692 section 6); no
  // other reserved bit ever has a meaning here (RFC 6455 section 5.2).
  if ((header.rsv & ~kRsv1) != 0 || (header.rsv != 0 && !context.inflates)) {
    return ReadResult::failure(CloseCode::kProtocolError, "reserved bits set");
  }
  if (header.rsv != 0) {
    // RFC 7692 section 6: only a message's first frame says it is compressed; control
    // frames never are.
    if (is_control(header.opcode)) {
      return ReadResult::failure(CloseCode::kProtocolError, "RSV1 set on a control frame");
    }
    if (header.opcode == Opcode::kContinuation) {
      return ReadResult::failure(CloseCode::kProtocolError, "RSV1 set on a continuation frame");
    }
  }
  if (!is_known_opcode(header.opcode)) {
    return ReadResult::failure(CloseCode::kProtocolError, "unknown opcode");
  }
  // Section 5.1: clients always mask, servers never do.
  if (context.role == Role::kServer && !header.masked) {
    return ReadResult::failure(CloseCode::kProtocolError, "client frame not masked");
  }
  if (context.role == Role::kClient && header.masked) {
    return ReadResult::failure(CloseCode::kProtocolError, "server frame masked");
  }
  if (is_control(header.opcode)) {
    // Section 5.5: control frames are never fragmented and carry at most 125 bytes.
    if (!header.fin)
      return ReadResult::failure(CloseCode::kProtocolError, "fragmented control frame");
    if (header.payload_length > kMaxControlPayload) {
      return ReadResult::failure(CloseCode::kProtocolError, "control frame too long");
    }
    if (header.opcode == Opcode::kClose && header.payload_length == 1) {
      return ReadResult::failure(CloseCode::kProtocolError, "close frame with 1-byte payload");
    }
    return ReadResult::success();
  }
  // Section 5.4: a continuation needs a message to continue, and a new message may not
  // start until the previous one is finished.
  if (header.opcode == Opcode::kContinuation) {
    if (!context.in_fragmented_message) {
      return ReadResult::failure(CloseCode::kProtocolError, "continuation without a message");
    }
  } else if (context.in_fragmented_message) {
    return ReadResult::failure(CloseCode::kProtocolError, "new message inside a fragmented one");
  }
  // A compressed message's buffered bytes are inflated ones, bounded as they are made; its
  // frames are bounded on their own, with room for what deflate adds to data it cannot shrink
  // (a few bytes per block), so a message of the limit that does not compress still passes.
  const bool compressed =
      header.rsv != 0 || (header.opcode == Opcode::kContinuation && context.message_is_compressed);
  const std::size_t room = compressed ? max_compressed_frame(context.max_message_size)
                                      : context.max_message_size - context.buffered_message_bytes;
  if (header.payload_length > room) {
    return ReadResult::failure(CloseCode::kMessageTooBig, "message too big");
  }
  // Each frame above is bounded; their number is not, so a message in endless empty or tiny
  // fragments would keep us inflating or validating for ever: its frames are bounded together.
  // A first frame passed the checks above, which are tighter.
  if (header.opcode == Opcode::kContinuation &&
      header.payload_length > max_message_wire_bytes(context.max_message_size) -
                                  std::min(max_message_wire_bytes(context.max_message_size),
                                           context.message_wire_bytes + header.header_length)) {
    return ReadResult::failure(CloseCode::kMessageTooBig, "message too big on the wire");
  }
  return ReadResult::success();
}

std::string_view as_chars(const std::uint8_t* data, std::size_t len) {
  return {reinterpret_cast<const char*>(data), len};
}

std::uint8_t* as_bytes(char* data) {
  return reinterpret_cast<std::uint8_t*>(data);
}

}  // namespace

std::size_t max_message_wire_bytes(std::size_t max_message_size) {
  constexpr std::size_t kSlack = 1024;
  return max_message_size > (SIZE_MAX - kSlack) / 2 ? SIZE_MAX : 2 * max_message_size + kSlack;
}

ReadResult Reader::feed(std::span<std::uint8_t> input, ReaderHandler& handler) {
  if (failed_) return error();
  if (closed_) return ReadResult::success();
  if (held_) {
    // Behind what is held, in order (an owner that holds does not read; this is for safety).
    pending_.append(as_chars(input.data(), input.size()));
    return ReadResult::success();
  }

  std::uint8_t* data = input.data();
  std::size_t len = input.size();

  if (!pending_.empty()) {
    // Finish the carried-over frame by moving in only the bytes it still lacks, so the
    // rest of `input` is parsed in place like any other read.
    std::size_t taken = 0;
    const auto top_up = [&](std::size_t wanted) {
      if (pending_.size() < wanted) {
        const std::size_t n = std::min(wanted - pending_.size(), len - taken);
        pending_.append(as_chars(data + taken, n));
        taken += n;
      }
      return pending_.size() >= wanted;
    };
    if (!top_up(2)) return ReadResult::success();
    if (!top_up(header_length_for(static_cast<std::uint8_t>(pending_[1])))) {
      return ReadResult::success();
    }
    FrameHeader header;
    if (parse_header(as_bytes(pending_.data()), pending_.size(), header) ==
        HeaderParse::kBadLength) {
      fail(CloseCode::kProtocolError, "64-bit payload length with the high bit set");
      pending_.release();
      return error();
    }
    const ReadResult verdict =
        check_header(header, {role_, in_fragmented_message_, message_.size(), message_.tally(),
                              max_message_size_, inflater_ != nullptr, message_is_compressed_});
    if (!verdict.ok) {
      fail(verdict.close_code, verdict.reason.data());  // check_header's reasons are literals
      pending_.release();
      return error();
    }
    // check_header() bounded the payload by max_message_size_ or 125, so this fits.
    const std::size_t frame_length =
        header.header_length + static_cast<std::size_t>(header.payload_length);
    pending_.reserve(frame_length);
    if (!top_up(frame_length)) return ReadResult::success();

    // Views handed to the handler point into pending_, so it is released only after.
    consume_frames(as_bytes(pending_.data()), pending_.size(), handler);
    pending_.release();
    if (failed_) return error();
    if (closed_) return ReadResult::success();
    data += taken;
    len -= taken;
    if (len > 0 && handler.holding()) return hold(data, len);
  }

  const std::size_t consumed = consume_frames(data, len, handler);
  if (failed_) return error();
  if (closed_ || consumed == len) return ReadResult::success();
  if (handler.holding()) return hold(data + consumed, len - consumed);

  // An incomplete frame remains. consume_frames() has already vetted its header if the
  // header is complete, so reserving the whole frame here cannot exceed the limits.
  pending_.assign(as_chars(data + consumed, len - consumed));
  FrameHeader header;
  if (parse_header(data + consumed, len - consumed, header) == HeaderParse::kComplete) {
    pending_.reserve(header.header_length + static_cast<std::size_t>(header.payload_length));
  }
  return ReadResult::success();
}

ReadResult Reader::hold(const std::uint8_t* data, std::size_t len) {
  // Still masked: consume_frames() unmasks a frame only as it dispatches it.
  pending_.assign(as_chars(data, len));
  held_ = true;
  return ReadResult::success();
}

ReadResult Reader::resume(ReaderHandler& handler) {
  if (!held_) return failed_ ? error() : ReadResult::success();
  if (handler.holding()) return ReadResult::success();
  held_ = false;
  // Out of pending_ first: feed() may keep an incomplete frame (or hold again) there.
  std::string input = std::move(pending_.get());
  pending_.release();
  return feed({as_bytes(input.data()), input.size()}, handler);
}

std::size_t Reader::consume_frames(std::uint8_t* data, std::size_t len, ReaderHandler& handler) {
  std::size_t pos = 0;
  while (pos < len) {
    FrameHeader header;
    const HeaderParse parsed = parse_header(data + pos, len - pos, header);
    if (parsed == HeaderParse::kIncomplete) break;
    if (parsed == HeaderParse::kBadLength) {
      fail(CloseCode::kProtocolError, "64-bit payload length with the high bit set");
      break;
    }
    const ReadResult verdict =
        check_header(header, {role_, in_fragmented_message_, message_.size(), message_.tally(),
                              max_message_size_, inflater_ != nullptr, message_is_compressed_});
    if (!verdict.ok) {
      fail(verdict.close_code, verdict.reason.data());  // check_header's reasons are literals
      break;
    }
    const std::size_t available = len - pos - header.header_length;
    if (header.payload_length > available) break;

    const auto payload_length = static_cast<std::size_t>(header.payload_length);
    std::uint8_t* payload = data + pos + header.header_length;
    if (header.masked) apply_mask(payload, payload_length, header.mask);
    pos += header.header_length + payload_length;
    if (!on_frame(header, payload, handler) || closed_ || handler.holding()) break;
  }
  return pos;
}

bool Reader::on_frame(const FrameHeader& header, std::uint8_t* payload, ReaderHandler& handler) {
  const std::string_view bytes = as_chars(payload, static_cast<std::size_t>(header.payload_length));
  // A fragment of a message still to be finished: counted against the message's wire bound (the
  // buffer is released with the message, and its tally with it).
  if (!is_control(header.opcode) && (!header.fin || header.opcode == Opcode::kContinuation)) {
    message_.add_to_tally(header.header_length + bytes.size());
  }
  switch (header.opcode) {
    case Opcode::kPing:
      handler.on_ping(bytes);
      return true;
    case Opcode::kPong:
      handler.on_pong(bytes);
      return true;
    case Opcode::kClose: {
      std::uint16_t code = static_cast<std::uint16_t>(CloseCode::kNoStatus);
      std::string_view reason;
      if (bytes.size() >= 2) {
        code = static_cast<std::uint16_t>((payload[0] << 8) | payload[1]);
        if (!is_valid_received_close_code(code)) {
          return fail(CloseCode::kProtocolError, "invalid close code");
        }
        reason = bytes.substr(2);
        if (!is_valid_utf8(reason)) {
          return fail(CloseCode::kInvalidPayload, "close reason is not valid UTF-8");
        }
      }
      closed_ = true;
      release_message_buffer();
      handler.on_close(code, reason);
      return true;
    }
    case Opcode::kText:
    case Opcode::kBinary: {
      const bool binary = header.opcode == Opcode::kBinary;
      if (header.rsv != 0) {  // check_header() let RSV1 through: compressed
        utf8_.reset();
        message_is_binary_ = binary;
        message_is_compressed_ = true;
        in_fragmented_message_ = !header.fin;
        return inflate_piece(bytes, header.fin, handler);
      }
      if (header.fin) {
        // The common case: a whole message in one frame, delivered straight from the
        // caller's buffer.
        if (!binary && !is_valid_utf8(bytes)) {
          return fail(CloseCode::kInvalidPayload, "text is not valid UTF-8");
        }
        handler.on_message(bytes, binary);
        return true;
      }
      utf8_.reset();
      // Judged per fragment, so garbage fails now rather than after the whole message.
      if (!binary && !utf8_.feed(bytes)) {
        return fail(CloseCode::kInvalidPayload, "text is not valid UTF-8");
      }
      in_fragmented_message_ = true;
      message_is_binary_ = binary;
      message_.assign(bytes);
      return true;
    }
    case Opcode::kContinuation: {
      if (message_is_compressed_) return inflate_piece(bytes, header.fin, handler);
      message_.append(bytes);
      return message_piece_added(bytes, header.fin, handler);
    }
  }
  // check_header() lets no other opcode through.
  return fail(CloseCode::kProtocolError, "unknown opcode");
}

void Reader::enable_inflate(bool context_takeover) {
  inflater_ = std::make_unique<Inflater>(context_takeover);
}

bool Reader::inflate_piece(std::string_view compressed, bool fin, ReaderHandler& handler) {
  std::string& out = message_.get();
  const std::size_t validated = out.size();
  Inflater::Result result = inflater_->inflate(compressed, max_message_size_, out);
  if (result == Inflater::Result::kOk && fin) result = inflater_->finish(max_message_size_, out);
  switch (result) {
    case Inflater::Result::kOk:
      break;
    case Inflater::Result::kTooBig:
      return fail(CloseCode::kMessageTooBig, "message too big once inflated");
    case Inflater::Result::kCorrupt:
      // RFC 7692: data that does not inflate fails the connection; 1007 is "data
      // inconsistent with the type of the message", as other servers answer.
      return fail(CloseCode::kInvalidPayload, "compressed data does not inflate");
  }
  return message_piece_added(std::string_view(out).substr(validated), fin, handler);
}

bool Reader::message_piece_added(std::string_view piece, bool fin, ReaderHandler& handler) {
  // Judged per piece, so garbage fails now rather than after the whole message.
  if (!message_is_binary_ && !utf8_.feed(piece)) {
    return fail(CloseCode::kInvalidPayload, "text is not valid UTF-8");
  }
  if (!fin) return true;
  if (!message_is_binary_ && !utf8_.complete()) {
    return fail(CloseCode::kInvalidPayload, "text ends inside a UTF-8 sequence");
  }
  in_fragmented_message_ = false;
  handler.on_message(message_.view(), message_is_binary_);
  release_message_buffer();
  return true;
}

bool Reader::fail(CloseCode code, const char* reason) {
  failed_ = true;
  error_code_ = code;
  error_reason_ = reason;
  // The connection is finished; keep no buffers for it. pending_ is released by
  // feed(), which may still be parsing from it.
  release_message_buffer();
  if (inflater_) inflater_->reset();
  return false;
}

void Reader::release_message_buffer() {
  // Free it, not clear() it: an idle connection should hold no heap memory.
  message_.release();
  in_fragmented_message_ = false;
  message_is_compressed_ = false;
  utf8_.reset();
}

}  // namespace roomcast::ws

#include "ws/utf8.h"

#include <array>
#include <cstddef>
#include <cstring>

namespace roomcast::ws {

namespace {

// The validator is a DFA over byte classes, built from the table of well-formed byte
// sequences in RFC 3629 section 4. The two fixed states (accept = 0, reject = 1) are
// the ones utf8.h names; the others remember what the next continuation byte must be.
enum State : std::uint8_t {
  kStateAccept = 0,
  kStateReject = 1,
  kNeedOne = 2,  // one more 80..BF
  kNeedTwo = 3,  // two more 80..BF
  kNeedThree = 4,  // three more 80..BF
  kAfterE0 = 5,  // A0..BF then one more (rules out overlong 3-byte forms)
  kAfterED = 6,  // 80..9F then one more (rules out surrogates D800..DFFF)
  kAfterF0 = 7,  // 90..BF then two more (rules out overlong 4-byte forms)
  kAfterF4 = 8,  // 80..8F then two more (rules out code points above 10FFFF)
  kStateCount = 9,
};

enum ByteClass : std::uint8_t {
  kAscii,  // 00..7F
  kCont80to8F,  // continuation bytes, split where E0/ED/F0/F4 draw their lines
  kCont90to9F,
  kContA0toBF,
  kInvalid,  // C0, C1 (always overlong) and F5..FF (beyond U+10FFFF)
  kLead2,  // C2..DF
  kLeadE0,
  kLead3,  // E1..EC, EE..EF
  kLeadED,
  kLeadF0,
  kLead4,  // F1..F3
  kLeadF4,
  kClassCount,
};

constexpr ByteClass classify(unsigned byte) {
  if (byte <= 0x7F) return kAscii;
  if (byte <= 0x8F) return kCont80to8F;
  if (byte <= 0x9F) return kCont90to9F;
  if (byte <= 0xBF) return kContA0toBF;
  if (byte <= 0xC1) return kInvalid;
  if (byte <= 0xDF) return kLead2;
  if (byte == 0xE0) return kLeadE0;
  if (byte == 0xED) return kLeadED;
  if (byte <= 0xEF) return kLead3;
  if (byte == 0xF0) return kLeadF0;
  if (byte <= 0xF3) return kLead4;
  if (byte == 0xF4) return kLeadF4;
  return kInvalid;
}

constexpr std::array<std::uint8_t, 256> kByteClass = [] {
  std::array<std::uint8_t, 256> table{};
  for (unsigned b = 0; b < 256; ++b) table[b] = classify(b);
  return table;
}();

constexpr State next_state(State state, ByteClass cls) {
  const bool is_cont = cls == kCont80to8F || cls == kCont90to9F || cls == kContA0toBF;
  switch (state) {
    case kStateAccept:
      switch (cls) {
        case kAscii:
          return kStateAccept;
        case kLead2:
          return kNeedOne;
        case kLeadE0:
          return kAfterE0;
        case kLead3:
          return kNeedTwo;
        case kLeadED:
          return kAfterED;
        case kLeadF0:
          return kAfterF0;
        case kLead4:
          return kNeedThree;
        case kLeadF4:
          return kAfterF4;
        default:
          return kStateReject;
      }
    case kNeedOne:
      return is_cont ? kStateAccept : kStateReject;
    case kNeedTwo:
      return is_cont ? kNeedOne : kStateReject;
    case kNeedThree:
      return is_cont ? kNeedTwo : kStateReject;
    case kAfterE0:
      return cls == kContA0toBF ? kNeedOne : kStateReject;
    case kAfterED:
      return cls == kCont80to8F || cls == kCont90to9F ? kNeedOne : kStateReject;
    case kAfterF0:
      return cls == kCont90to9F || cls == kContA0toBF ? kNeedTwo : kStateReject;
    case kAfterF4:
      return cls == kCont80to8F ? kNeedTwo : kStateReject;
    default:
      return kStateReject;
  }
}

constexpr std::array<std::array<std::uint8_t, kClassCount>, kStateCount> kTransition = [] {
  std::array<std::array<std::uint8_t, kClassCount>, kStateCount> table{};
  for (unsigned s = 0; s < kStateCount; ++s) {
    for (unsigned c = 0; c < kClassCount; ++c) {
      table[s][c] = next_state(static_cast<State>(s), static_cast<ByteClass>(c));
    }
  }
  return table;
}();

constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

// Runs the DFA from `state` over `bytes`; returns the final state (kStateReject as soon
// as the input is known to be invalid). Between code points, runs of ASCII are skipped
// eight bytes at a time, which is what most chat text is.
std::uint8_t run(std::uint8_t state, std::string_view bytes) {
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  while (p != end) {
    if (state == kStateAccept) {
      while (end - p >= 8) {
        std::uint64_t block = 0;
        std::memcpy(&block, p, sizeof(block));
        if ((block & kHighBits) != 0) break;
        p += 8;
      }
      if (p == end) break;
    }
    state = kTransition[state][kByteClass[static_cast<unsigned char>(*p)]];
    if (state == kStateReject) return state;
    ++p;
  }
  return state;
}

}  // namespace

bool Utf8Validator::feed(std::string_view bytes) {
  static_assert(kAccept == kStateAccept && kReject == kStateReject,
                "the DFA's fixed states must be the ones utf8.h names");
  if (state_ == kReject) return false;
  state_ = run(state_, bytes);
  return state_ != kReject;
}

bool is_valid_utf8(std::string_view bytes) {
  return run(kStateAccept, bytes) == kStateAccept;
}

}  // namespace roomcast::ws

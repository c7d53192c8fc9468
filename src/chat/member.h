// MemberInfo: who a room member is. Immutable once made, and shared: one record per
// connection, however many parts of the node list it.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "chat/authenticator.h"

namespace roomcast::chat {

// A member's user id, name and name skeleton, and whether a token vouches for them.
//
// A connection's Hub makes the record when the connection opens and again when its first join
// names it; after that it never changes, so every part of the node that lists the member holds
// the same record instead of a copy: the connection's own session, the Exchange, and the Hub of
// each other worker following one of its rooms. With N workers a member costs one record and
// a pointer per worker (bench/CORE.md, S1-t2), not N copies. Members of other nodes get one
// record each from the cluster. Thread-safe: immutable (shared_ptr's count is atomic).
class MemberInfo {
 public:
  // `user_id` is cut at kMaxUserIdChars (the authenticator refuses longer subjects, and an
  // anonymous id is a 36-character UUID). `username` is in NFC (see to_nfc), empty while the
  // connection is unnamed.
  MemberInfo(std::string_view user_id, std::string username, bool authenticated);

  std::string_view user_id() const { return {user_id_.data(), user_id_size_}; }
  const std::string& username() const { return username_; }
  // confusable_skeleton(username()): names that look alike have the same skeleton.
  const std::string& name_skeleton() const { return name_skeleton_; }
  // Holds a verified token (user_id is then the token's subject): nobody anonymous passes
  // for such a member by taking the name.
  bool authenticated() const { return authenticated_; }

 private:
  // Inline, no heap block: most user ids are UUIDs.
  std::array<char, kMaxUserIdChars> user_id_{};
  std::uint8_t user_id_size_ = 0;
  bool authenticated_ = false;
  std::string username_;
  std::string name_skeleton_;
};

// Members are compared by record: the same record is the same member's stay in a room.
using MemberRef = std::shared_ptr<const MemberInfo>;

}  // namespace roomcast::chat

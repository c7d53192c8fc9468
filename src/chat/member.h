// MemberInfo: who a room member is. Immutable once made, and shared: one record per
// connection, however many parts of the node list it.
#pragma once

#include <array>
#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <boost/smart_ptr/intrusive_ref_counter.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "chat/authenticator.h"

namespace roomcast::chat {

class MemberInfo;
// Members are compared by record: the same record is the same member.
using MemberRef = boost::intrusive_ptr<const MemberInfo>;

// A member's user id and name, and whether a token vouches for them.
//
// A connection's Hub makes the record when the connection opens and again when its first join
// names it; after that it never changes, so every part of the node that lists the member holds
// the same record instead of a copy: the connection's own session, the Exchange, and the Hub of
// each other worker following one of its rooms. With N workers a member costs one record and
// a pointer per worker (bench/CORE.md, "Shared member records"), not N copies. Members of other
// nodes get one record each from the cluster.
//
// Thread-safe: immutable, with an atomic count. The count is intrusive and the name's skeleton
// kept as a hash so that the record costs a connection no more than the fields a session held
// inline before it was shared (S1, --threads 1: bytes per idle connection).
class MemberInfo : public boost::intrusive_ref_counter<MemberInfo, boost::thread_safe_counter> {
 public:
  // `user_id` is cut at kMaxUserIdChars (the authenticator refuses longer subjects, and an
  // anonymous id is a 36-character UUID). `username` is in NFC (see to_nfc), empty while the
  // connection is unnamed.
  static MemberRef make(std::string_view user_id, std::string username, bool authenticated);

  std::string_view user_id() const { return {user_id_.data(), user_id_size_}; }
  const std::string& username() const { return username_; }
  // Holds a verified token (user_id is then the token's subject): nobody anonymous passes
  // for such a member by taking the name.
  bool authenticated() const { return authenticated_; }
  // Whether the two names look alike: the same confusable skeleton (see confusable_skeleton).
  // Compares hashes first; only equal hashes compute the skeletons.
  bool name_looks_like(const MemberInfo& other) const;

 private:
  MemberInfo(std::string_view user_id, std::string username, bool authenticated);

  // Inline, no heap block: most user ids are UUIDs. Packed with the flag behind the count.
  std::uint8_t user_id_size_ = 0;
  bool authenticated_ = false;
  std::array<char, kMaxUserIdChars> user_id_{};
  std::string username_;
  std::uint64_t name_skeleton_hash_ = 0;
};

}  // namespace roomcast::chat

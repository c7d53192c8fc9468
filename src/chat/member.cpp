#include "chat/member.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "chat/unicode_text.h"

namespace roomcast::chat {

MemberRef MemberInfo::make(std::string_view user_id, std::string username, bool authenticated) {
  return MemberRef(new MemberInfo(user_id, std::move(username), authenticated));
}

MemberInfo::MemberInfo(std::string_view user_id, std::string username, bool authenticated)
    : user_id_size_(static_cast<std::uint8_t>(std::min(user_id.size(), kMaxUserIdChars))),
      authenticated_(authenticated),
      username_(std::move(username)),
      name_skeleton_hash_(std::hash<std::string>{}(confusable_skeleton(username_))) {
  std::copy_n(user_id.begin(), user_id_size_, user_id_.begin());
}

bool MemberInfo::name_looks_like(const MemberInfo& other) const {
  if (name_skeleton_hash_ != other.name_skeleton_hash_) return false;
  return username_ == other.username_ ||
         confusable_skeleton(username_) == confusable_skeleton(other.username_);
}

}  // namespace roomcast::chat

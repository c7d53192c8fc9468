#include "chat/member.h"

#include <utility>

#include "chat/unicode_text.h"

namespace roomcast::chat {

MemberInfo::MemberInfo(std::string_view user_id, std::string username, bool authenticated)
    : user_id_size_(static_cast<std::uint8_t>(std::min(user_id.size(), kMaxUserIdChars))),
      authenticated_(authenticated),
      username_(std::move(username)),
      name_skeleton_(username_.empty() ? std::string() : confusable_skeleton(username_)) {
  std::copy_n(user_id.begin(), user_id_size_, user_id_.begin());
}

}  // namespace roomcast::chat

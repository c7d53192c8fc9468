#include "http/credentials.h"

#include <boost/beast/core/string.hpp>
#include <string_view>

namespace roomcast::http {

std::string request_token(const Request& request) {
  const std::string_view target(request.target().data(), request.target().size());
  if (const auto query_start = target.find('?'); query_start != std::string_view::npos) {
    std::string_view query = target.substr(query_start + 1);
    while (!query.empty()) {
      const auto amp = query.find('&');
      const std::string_view param = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      if (!param.starts_with("token=")) continue;
      std::string token;
      if (!percent_decode(param.substr(6), token)) return {};
      return token;
    }
  }
  const auto header = request[beast_http::field::authorization];
  const std::string_view authorization(header.data(), header.size());
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() > kBearer.size() &&
      boost::beast::iequals(authorization.substr(0, kBearer.size()), kBearer)) {
    return std::string(authorization.substr(kBearer.size()));
  }
  return {};
}

Credentials check_credentials(const Request& request, const chat::Authenticator* authenticator,
                              bool require_auth) {
  using Verdict = Credentials::Verdict;
  const std::string token = request_token(request);
  if (token.empty()) return {require_auth ? Verdict::kMissing : Verdict::kAnonymous, {}, {}};
  if (authenticator == nullptr) return {};  // no key configured: every user is anonymous
  auto verdict = authenticator->verify(token);
  if (auto* failure = std::get_if<chat::AuthFailure>(&verdict)) {
    return {Verdict::kInvalid, std::nullopt, std::move(failure->reason)};
  }
  return {Verdict::kVerified, std::get<chat::Identity>(std::move(verdict)), {}};
}

}  // namespace roomcast::http

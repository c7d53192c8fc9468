// Specification of permessage-deflate negotiation (RFC 7692 section 7.1).
#include "ws/deflate_negotiation.h"

#include <gtest/gtest.h>

namespace roomcast::ws {
namespace {

const DeflatePolicy kHonourClient{.require_client_no_context_takeover = false};
const DeflatePolicy kNoClientContext{.require_client_no_context_takeover = true};

std::optional<DeflateAgreement> negotiate(std::string_view header,
                                          const DeflatePolicy& policy = kHonourClient) {
  return negotiate_deflate(header, policy);
}

// --- the extension list grammar (RFC 6455 section 9.1) ---

TEST(ParseExtensions, ReadsNamesParametersAndValues) {
  const auto offers =
      parse_extensions("permessage-deflate; client_max_window_bits, x-foo;a=1;b=\"two\"");
  ASSERT_TRUE(offers);
  ASSERT_EQ(offers->size(), 2u);
  EXPECT_EQ((*offers)[0].name, "permessage-deflate");
  ASSERT_EQ((*offers)[0].params.size(), 1u);
  EXPECT_EQ((*offers)[0].params[0].name, "client_max_window_bits");
  EXPECT_FALSE((*offers)[0].params[0].value);
  EXPECT_EQ((*offers)[1].name, "x-foo");
  ASSERT_EQ((*offers)[1].params.size(), 2u);
  EXPECT_EQ((*offers)[1].params[0].value, "1");
  EXPECT_EQ((*offers)[1].params[1].value, "two");
}

TEST(ParseExtensions, UnescapesQuotedValues) {
  const auto offers = parse_extensions(R"(e; p="1\0")");
  ASSERT_TRUE(offers);
  EXPECT_EQ((*offers)[0].params[0].value, "10");
}

TEST(ParseExtensions, AcceptsWhitespaceAroundSeparatorsAndEmptyElements) {
  const auto offers = parse_extensions(" , a ;\tp = 9 ,, b ,");
  ASSERT_TRUE(offers);
  ASSERT_EQ(offers->size(), 2u);
  EXPECT_EQ((*offers)[0].params[0].value, "9");
  EXPECT_EQ((*offers)[1].name, "b");
}

TEST(ParseExtensions, AnEmptyHeaderHasNoOffers) {
  const auto offers = parse_extensions("");
  ASSERT_TRUE(offers);
  EXPECT_TRUE(offers->empty());
}

TEST(ParseExtensions, RefusesEveryBrokenForm) {
  for (const std::string_view header : {
           "a;",  // a parameter without a name
           "a; =1",  // a value without a name
           "a; p=",  // "=" without a value
           "a; p=\"1",  // an unclosed quoted string
           "a; p=\"\"",  // a quoted value that is not a token once unescaped
           "a; p=\"1 2\"",  // likewise (a space)
           "a; p=\"1\\",  // an escape at the end
           "a b",  // two tokens without a separator
           ";p",  // a parameter without an extension
           "a; p=1 2",  // junk after a value
           "a; p=(1)",  // a separator where a token belongs
           "a\x01",  // a control character
       }) {
    EXPECT_FALSE(parse_extensions(header)) << header;
  }
}

// --- accepting an offer (RFC 7692 section 7.1) ---

TEST(NegotiateDeflate, AcceptsABareOffer) {
  const auto agreement = negotiate("permessage-deflate");
  ASSERT_TRUE(agreement);
  EXPECT_TRUE(agreement->server_no_context_takeover);  // always ours to choose (7.1.1.1)
  EXPECT_FALSE(agreement->client_no_context_takeover);
  EXPECT_FALSE(agreement->server_max_window_bits);
  EXPECT_FALSE(agreement->client_max_window_bits);
  EXPECT_EQ(agreement->server_window_bytes(), 32768u);
  EXPECT_EQ(deflate_response(*agreement), "permessage-deflate; server_no_context_takeover");
}

TEST(NegotiateDeflate, DeclinesWithoutAnOffer) {
  EXPECT_FALSE(negotiate(""));
  EXPECT_FALSE(negotiate("x-webkit-deflate-frame"));
  EXPECT_FALSE(negotiate("permessage-deflate-x"));
}

TEST(NegotiateDeflate, ServerNoContextTakeover) {
  const auto agreement = negotiate("permessage-deflate; server_no_context_takeover");
  ASSERT_TRUE(agreement);
  EXPECT_TRUE(agreement->server_no_context_takeover);
  EXPECT_FALSE(negotiate("permessage-deflate; server_no_context_takeover=1"));
  EXPECT_FALSE(negotiate("permessage-deflate; server_no_context_takeover=\"x\""));
}

TEST(NegotiateDeflate, ClientNoContextTakeover) {
  const auto agreement = negotiate("permessage-deflate; client_no_context_takeover");
  ASSERT_TRUE(agreement);
  EXPECT_TRUE(agreement->client_no_context_takeover);
  EXPECT_EQ(deflate_response(*agreement),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  EXPECT_FALSE(negotiate("permessage-deflate; client_no_context_takeover=15"));
}

TEST(NegotiateDeflate, ThePolicyMayAskForClientNoContextTakeoverUnoffered) {
  const auto agreement = negotiate("permessage-deflate", kNoClientContext);
  ASSERT_TRUE(agreement);
  EXPECT_TRUE(agreement->client_no_context_takeover);
}

TEST(NegotiateDeflate, ServerMaxWindowBitsIsAnsweredAsOffered) {
  for (unsigned bits = 8; bits <= 15; ++bits) {
    const auto agreement =
        negotiate("permessage-deflate; server_max_window_bits=" + std::to_string(bits));
    ASSERT_TRUE(agreement) << bits;
    EXPECT_EQ(agreement->server_max_window_bits, bits);
    EXPECT_EQ(agreement->server_window_bytes(), std::size_t{1} << bits);
    EXPECT_EQ(deflate_response(*agreement),
              "permessage-deflate; server_no_context_takeover; server_max_window_bits=" +
                  std::to_string(bits));
  }
}

TEST(NegotiateDeflate, ServerMaxWindowBitsNeedsAValidValue) {
  for (const std::string_view header : {
           "permessage-deflate; server_max_window_bits",  // a value is required
           "permessage-deflate; server_max_window_bits=7",
           "permessage-deflate; server_max_window_bits=16",
           "permessage-deflate; server_max_window_bits=010",  // a leading zero
           "permessage-deflate; server_max_window_bits=08",
           "permessage-deflate; server_max_window_bits=1a",
           "permessage-deflate; server_max_window_bits=-9",
           "permessage-deflate; server_max_window_bits=100",
           "permessage-deflate; server_max_window_bits=\"16\"",
       }) {
    EXPECT_FALSE(negotiate(header)) << header;
  }
}

TEST(NegotiateDeflate, ClientMaxWindowBitsWithAndWithoutAValue) {
  auto agreement = negotiate("permessage-deflate; client_max_window_bits");
  ASSERT_TRUE(agreement);
  EXPECT_FALSE(agreement->client_max_window_bits);  // we need no bound: we inflate any window
  EXPECT_EQ(deflate_response(*agreement), "permessage-deflate; server_no_context_takeover");

  agreement = negotiate("permessage-deflate; client_max_window_bits=10");
  ASSERT_TRUE(agreement);
  EXPECT_EQ(agreement->client_max_window_bits, 10);
  EXPECT_EQ(deflate_response(*agreement),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10");

  for (const std::string_view header : {
           "permessage-deflate; client_max_window_bits=7",
           "permessage-deflate; client_max_window_bits=16",
           "permessage-deflate; client_max_window_bits=09",
           "permessage-deflate; client_max_window_bits=x",
       }) {
    EXPECT_FALSE(negotiate(header)) << header;
  }
}

TEST(NegotiateDeflate, QuotedValuesAreReadUnquoted) {
  auto agreement = negotiate(R"(permessage-deflate; server_max_window_bits="10")");
  ASSERT_TRUE(agreement);
  EXPECT_EQ(agreement->server_max_window_bits, 10);
  agreement = negotiate(R"(permessage-deflate; client_max_window_bits="1\2")");
  ASSERT_TRUE(agreement);
  EXPECT_EQ(agreement->client_max_window_bits, 12);
  EXPECT_FALSE(negotiate(R"(permessage-deflate; client_max_window_bits="")"));
}

TEST(NegotiateDeflate, DeclinesAnOfferWithARepeatedParameter) {
  for (const std::string_view header : {
           "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
           "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
           "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
           "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
       }) {
    EXPECT_FALSE(negotiate(header)) << header;
  }
}

TEST(NegotiateDeflate, DeclinesAnOfferWithAnUnknownParameter) {
  EXPECT_FALSE(negotiate("permessage-deflate; mystery"));
  EXPECT_FALSE(negotiate("permessage-deflate; Server_No_Context_Takeover"));
}

TEST(NegotiateDeflate, TakesTheFirstValidOfSeveralOffers) {
  // Section 5.1: offers come in the client's order of preference; an invalid one is skipped.
  auto agreement = negotiate(
      "permessage-deflate; server_max_window_bits=7, "
      "permessage-deflate; server_max_window_bits=10, permessage-deflate");
  ASSERT_TRUE(agreement);
  EXPECT_EQ(agreement->server_max_window_bits, 10);
  agreement = negotiate("permessage-deflate; client_no_context_takeover, permessage-deflate");
  ASSERT_TRUE(agreement);
  EXPECT_TRUE(agreement->client_no_context_takeover);
}

TEST(NegotiateDeflate, SkipsUnknownExtensionsBeforeAndAfter) {
  auto agreement =
      negotiate("x-foo; a=1, permessage-deflate; client_max_window_bits, x-bar; b=\"c\"");
  ASSERT_TRUE(agreement);
  agreement = negotiate("permessage-deflate;server_no_context_takeover,x-bar");
  ASSERT_TRUE(agreement);
}

TEST(NegotiateDeflate, DeclinesAWholeHeaderThatBreaksTheGrammar) {
  EXPECT_FALSE(negotiate("permessage-deflate, x-foo; a=\"unclosed"));
  EXPECT_FALSE(negotiate("permessage-deflate; ; client_max_window_bits"));
}

TEST(NegotiateDeflate, WhatChromiumAndFirefoxOffer) {
  const auto agreement = negotiate("permessage-deflate; client_max_window_bits", kNoClientContext);
  ASSERT_TRUE(agreement);
  EXPECT_EQ(deflate_response(*agreement),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
}

TEST(NegotiateDeflate, DedicatedKeepsServerContextUnlessTheClientAsks) {
  const DeflatePolicy dedicated{.require_client_no_context_takeover = true,
                                .server_context_takeover = true};
  auto agreement = negotiate_deflate("permessage-deflate; client_max_window_bits", dedicated);
  ASSERT_TRUE(agreement);
  EXPECT_FALSE(agreement->server_no_context_takeover);
  EXPECT_EQ(deflate_response(*agreement), "permessage-deflate; client_no_context_takeover");
  agreement = negotiate_deflate("permessage-deflate; server_no_context_takeover", dedicated);
  ASSERT_TRUE(agreement);
  EXPECT_TRUE(agreement->server_no_context_takeover);
  // zlib cannot write a 2^8 window: such a peer gets messages compressed on their own.
  agreement = negotiate_deflate("permessage-deflate; server_max_window_bits=8", dedicated);
  ASSERT_TRUE(agreement);
  EXPECT_TRUE(agreement->server_no_context_takeover);
  agreement = negotiate_deflate("permessage-deflate; server_max_window_bits=9", dedicated);
  ASSERT_TRUE(agreement);
  EXPECT_FALSE(agreement->server_no_context_takeover);
}

}  // namespace
}  // namespace roomcast::ws

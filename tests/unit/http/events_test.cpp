// The bytes of a server-sent event (http/events.cpp): what an EventSource parses.
#include <gtest/gtest.h>

#include "chat/protocol.h"
#include "http/service.h"

namespace roomcast::http {
namespace {

TEST(EventStreamEvent, AChatMessageCarriesItsSeqAsTheId) {
  const std::string json = chat::encode_chat_message("r", "u-1", "ann", "hi", 1000, 42);
  EXPECT_EQ(event_stream_event(json), "id: 42\nevent: chat_message\ndata: " + json + "\n\n");
}

TEST(EventStreamEvent, TextThatLooksLikeASeqOrALineBreakChangesNothing) {
  const std::string json =
      chat::encode_chat_message("r", "u-1", "ann", "a,\"seq\":7\nid: 9\n\ndata: x", 1000, 3);
  const std::string event = event_stream_event(json);
  EXPECT_TRUE(event.starts_with("id: 3\nevent: chat_message\ndata: {")) << event;
  // One data line: the JSON escapes the message's line breaks.
  EXPECT_EQ(event.find('\n', event.find("data: ")), event.size() - 2) << event;
}

TEST(EventStreamEvent, OtherMessagesHaveTheirTypeAndNoId) {
  const std::string json = chat::encode_system_message("r", "ann joined the chat", 1000);
  EXPECT_EQ(event_stream_event(json), "event: system_message\ndata: " + json + "\n\n");
}

}  // namespace
}  // namespace roomcast::http

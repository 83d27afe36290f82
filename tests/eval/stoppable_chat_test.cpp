// make_stoppable_chat: the inner model answers in slices, the stop is polled before each, and a stop throws
// chatmill::Interrupted with the inner model's name and how far it got; without a stop every reply comes back
// in order, under the inner model's name.
#include <gtest/gtest.h>

#include "common/interrupted.h"
#include "common/scripted_chat.h"
#include "eval/chat_model.h"

namespace chatmill {
namespace {

std::vector<eval::ChatRequest> numbered(int n) {
  std::vector<eval::ChatRequest> reqs(n);
  for (int i = 0; i < n; ++i) reqs[i].user = std::to_string(i);
  return reqs;
}

TEST(StoppableChat, AnswersInSlicesInOrderUnderTheInnerName) {
  testing::ScriptedChat inner("judge@api", [](const eval::ChatRequest& r) { return "re " + r.user; });
  int polls = 0;
  auto chat = eval::make_stoppable_chat(inner, [&] { return ++polls > 100; }, 16);
  EXPECT_EQ(chat->name(), "judge@api");
  const auto replies = chat->complete(numbered(40));
  ASSERT_EQ(replies.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(replies[i].text, "re " + std::to_string(i));
  EXPECT_EQ(polls, 3);  // slices of 16, 16 and 8
}

TEST(StoppableChat, StopsBeforeTheNextSlice) {
  testing::ScriptedChat inner("judge@api", [](const eval::ChatRequest& r) { return r.user; });
  int polls = 0;
  auto chat = eval::make_stoppable_chat(inner, [&] { return ++polls > 2; }, 16);
  try {
    chat->complete(numbered(40));
    ADD_FAILURE() << "no Interrupted";
  } catch (const Interrupted& e) {
    EXPECT_EQ(std::string(e.what()), "judge@api stopped as asked after 32 of 40 requests");
  }
  EXPECT_EQ(inner.seen.size(), 32u);
}

}  // namespace
}  // namespace chatmill
